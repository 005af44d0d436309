"""ASGI middleware: request ids, the request body limit, and the last-resort 500."""

from __future__ import annotations

import json
import logging
import re
import uuid
from contextvars import ContextVar

from starlette.datastructures import Headers, MutableHeaders
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shelfkeeper.kit import context
from shelfkeeper.kit.problems import PROBLEM_MEDIA_TYPE, InternalError, PayloadTooLarge

logger = logging.getLogger("shelfkeeper")

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
REQUEST_ID_PATTERN = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")


class RequestContextMiddleware:
    """Outermost middleware of the app.

    - Gives every request an id (the client's `X-Request-ID` when well-formed) and returns it
      in `X-Request-ID` on every response, errors included; binds it to every log line
      written while serving the request (`kit.context`).
    - Adds the headers the request asked for with `context.add_response_headers` (the
      rate-limit headers) to its response, whatever the response is.
    - Refuses bodies over `max_body_bytes` with 413, by `Content-Length` up front or by
      counting the bytes of a streamed body.
    - Turns an unexpected exception into a generic 500 problem, logged with the request id.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        offered = headers.get("x-request-id", "")
        request_id = offered if REQUEST_ID_PATTERN.match(offered) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        token = request_id_var.set(request_id)
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                response_headers = MutableHeaders(scope=message)
                for name, value in context.response_headers(scope).items():
                    response_headers[name] = value
                response_headers["X-Request-ID"] = request_id
            await send(message)

        received = 0

        async def receive_limited() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise HTTPException(413)
            return message

        with context.request_log_context(request_id=request_id):
            try:
                declared = headers.get("content-length", "")
                if declared.isdigit() and int(declared) > self.max_body_bytes:
                    await self._problem(send_with_id, scope, PayloadTooLarge(self._limit_text()))
                    return
                await self.app(scope, receive_limited, send_with_id)
            except Exception:
                logger.exception(
                    "unhandled error in request %s", request_id, extra={"request_id": request_id}
                )
                if not response_started:
                    problem = InternalError("Something went wrong.")
                    await self._problem(send_with_id, scope, problem)
            finally:
                request_id_var.reset(token)

    def _limit_text(self) -> str:
        return f"Request bodies are limited to {self.max_body_bytes} bytes."

    @staticmethod
    async def _problem(send: Send, scope: Scope, problem: InternalError | PayloadTooLarge) -> None:
        body = json.dumps(problem.document(scope.get("path"))).encode()
        await send(
            {
                "type": "http.response.start",
                "status": problem.status,
                "headers": [
                    (b"content-type", PROBLEM_MEDIA_TYPE.encode()),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
