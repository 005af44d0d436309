"""`/api/v1/{tenantId}/events`: the tenant's relayed events, polled or streamed.

Polling runs like every other read, in the request's transaction. The stream is long-lived,
so it must not hold a pooled connection: it authenticates and authorizes in a short
transaction of its own, then reads new events in short transactions bound to the tenant,
woken by this process's relay or every `SHELFKEEPER_EVENTS_STREAM_POLL_SECONDS`.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse

from shelfkeeper.auth.dependencies import (
    TENANT_SCOPED_PROBLEMS,
    Reader,
    TenantSession,
    authorize_briefly,
    bearer,
)
from shelfkeeper.auth.principal import Permission
from shelfkeeper.config import Settings
from shelfkeeper.db.database import Database
from shelfkeeper.event import relay
from shelfkeeper.event import service as event_service
from shelfkeeper.event.schemas import CloudEvent, EventPage
from shelfkeeper.kit.problems import validation_error
from shelfkeeper.kit.routing import TransactionalRoute
from shelfkeeper.tenant import service as tenant_service

router = APIRouter(
    prefix="/{tenant_id}/events",
    tags=["Events"],
    route_class=TransactionalRoute,
    responses=TENANT_SCOPED_PROBLEMS,
)
stream_router = APIRouter(
    prefix="/{tenant_id}/events",
    tags=["Events"],
    responses=TENANT_SCOPED_PROBLEMS,
    dependencies=[Depends(bearer)],  # the security scheme, in the OpenAPI document
)

STREAM_BATCH = 200
SSE_EVENT_SCHEMA = {
    "type": "object",
    "description": "One Server-Sent Event per Shelfkeeper event.",
    "properties": {
        "id": {"type": "string", "description": "The event's `sequence`."},
        "event": {"type": "string", "description": "The event's `type`."},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "description": "The CloudEvent envelope, JSON.",
        },
    },
    "required": ["id", "event", "data"],
}
AfterParam = Annotated[
    int, Query(ge=0, description="Return events with a `sequence` above this (a cursor).")
]


@router.get("", summary="List events after a cursor")
async def list_events(
    principal: Reader,
    db: TenantSession,
    after: AfterParam = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> EventPage:
    """The tenant's events with a `sequence` above `after`, in sequence order. Events appear
    once the relay has numbered them (normally within milliseconds of their commit); an
    event never appears behind a cursor already returned."""
    assert principal.tenant_id is not None
    events = await event_service.list_after(
        db, tenant_id=principal.tenant_id, after=after, limit=limit
    )
    last = events[-1].sequence if events else None
    return EventPage(data=events, next_cursor=after if last is None else last)


@stream_router.get(
    "/stream",
    summary="Stream events (Server-Sent Events)",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT_SCHEMA}}}},
)
async def stream_events(
    request: Request,
    tenant_id: str,
    after: Annotated[int | None, Query(ge=0, description="Start after this sequence.")] = None,
    last_event_id: Annotated[
        str | None,
        Header(
            alias="Last-Event-ID",
            description="Resume after this sequence (sent by EventSource when it reconnects; "
            "wins over `after`).",
        ),
    ] = None,
) -> StreamingResponse:
    """`text/event-stream`: each event as `id: <sequence>`, `event: <type>`, `data: <the
    CloudEvent JSON>`; a comment line every `SHELFKEEPER_EVENTS_STREAM_HEARTBEAT_SECONDS`
    while idle. Reconnect with `Last-Event-ID` to resume."""
    cursor = after or 0
    if last_event_id is not None:
        if not last_event_id.strip().isdigit():
            raise validation_error(
                ["header", "Last-Event-ID"], "A sequence (a non-negative integer).", "int_parsing"
            )
        cursor = int(last_event_id.strip())
    await authorize_briefly(request, tenant_id, Permission.READ)
    settings: Settings = request.app.state.settings
    return StreamingResponse(
        sse(
            request,
            request.app.state.database,
            tenant_id=tenant_id,
            cursor=cursor,
            heartbeat_seconds=settings.events_stream_heartbeat_seconds,
            poll_seconds=settings.events_stream_poll_seconds,
        ),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
    )


def sse_message(event: CloudEvent) -> str:
    return f"id: {event.sequence}\nevent: {event.type.value}\ndata: {event.model_dump_json()}\n\n"


async def sse(
    request: Request,
    database: Database,
    *,
    tenant_id: str,
    cursor: int,
    heartbeat_seconds: float,
    poll_seconds: float,
) -> AsyncIterator[str]:
    """The stream's messages, read in short transactions bound to the tenant; ends when the
    client goes away or the tenant is suspended or deleted."""
    clock = asyncio.get_running_loop().time
    yield ": connected\n\n"
    last_sent = clock()
    while not await request.is_disconnected():
        async with database.transaction(readonly=True) as db:
            try:
                await tenant_service.enter(db, tenant_id)  # binds the tenant
            except (tenant_service.TenantNotFound, tenant_service.TenantSuspended):
                return
            events = await event_service.list_after(
                db, tenant_id=tenant_id, after=cursor, limit=STREAM_BATCH
            )
        for event in events:
            yield sse_message(event)
            cursor = event.sequence or cursor
        if events:
            last_sent = clock()
            if len(events) == STREAM_BATCH:
                continue
        until_heartbeat = last_sent + heartbeat_seconds - clock()
        if until_heartbeat <= 0:
            yield ": heartbeat\n\n"
            last_sent = clock()
            continue
        await relay.sequenced.wait(tenant_id, seconds=min(poll_seconds, until_heartbeat))
