"""Structured logs: one access line per request, the request's context on every line written
while serving it, and no personal data or secrets anywhere."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import quote

import httpx
import pytest
import structlog
from fastapi import APIRouter, FastAPI

from shelfkeeper.auth.dependencies import Reader
from shelfkeeper.config import Settings
from shelfkeeper.db.database import Database
from shelfkeeper.kit.routing import TransactionalRoute
from shelfkeeper.observability.logging import REDACTED, formatter, redact, scrub
from tests.conftest import TenantWorld, new_tenant_id
from tests.location.factories import create_location, location_url, locations_url
from tests.observability.conftest import CapturedLogs, app_with, captured_logs, client_of

# --- the access line --------------------------------------------------------------------


async def test_one_access_line_per_request_names_the_route_template(
    client: httpx.AsyncClient, world: TenantWorld, logs: CapturedLogs
) -> None:
    location = await create_location(client, world, tenant=world.a, code="LOG-1")

    response = await client.get(
        location_url(world.a, location["id"]),
        headers=world.headers(world.a, "viewer") | {"X-Request-ID": "access-1"},
    )

    assert response.status_code == 200
    [line] = [line for line in logs.access_lines() if line["request_id"] == "access-1"]
    assert line["event"] == "request"
    assert line["level"] == "info"
    assert line["route"] == "/api/v1/{tenant_id}/locations/{location_id}"
    assert (line["method"], line["status"]) == ("GET", 200)
    assert line["tenant"] == world.a
    assert line["actor"] == "user:tester"
    assert isinstance(line["duration_ms"], float)
    assert line["duration_ms"] >= 0
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$", line["timestamp"])
    assert location["id"] not in logs.text  # the template, never the path with its ids


async def test_requests_that_end_early_are_logged_too(
    client: httpx.AsyncClient, world: TenantWorld, logs: CapturedLogs
) -> None:
    anonymous = await client.get(locations_url(world.a), headers={"X-Request-ID": "early-1"})
    unknown = await client.get("/no/such/place/42", headers={"X-Request-ID": "early-2"})
    too_big = await client.post(
        locations_url(world.a),
        content=b"x" * (1024 * 1024 + 1),
        headers=world.headers(world.a) | {"X-Request-ID": "early-3"},
    )

    assert [anonymous.status_code, unknown.status_code, too_big.status_code] == [401, 404, 413]
    lines = {line["request_id"]: line for line in logs.access_lines()}
    assert (lines["early-1"]["route"], lines["early-1"]["status"]) == (
        "/api/v1/{tenant_id}/locations",
        401,
    )
    assert (lines["early-1"]["tenant"], lines["early-1"]["actor"]) == (None, None)
    assert (lines["early-2"]["route"], lines["early-2"]["status"]) == ("unmatched", 404)
    assert "/no/such/place" not in logs.text
    assert lines["early-3"]["status"] == 413


@pytest.fixture(scope="module")
def probing_app(settings: Settings, database: Database) -> FastAPI:
    """An app with a tenant-scoped route that logs while it serves."""
    app = app_with(settings, database)
    router = APIRouter(prefix="/api/v1/{tenant_id}/log-probe", route_class=TransactionalRoute)

    @router.get("")
    async def probe(principal: Reader) -> dict[str, str]:
        logging.getLogger("shelfkeeper.probe").info("standard library line %d", 1)
        structlog.stdlib.get_logger("shelfkeeper.probe").info("structlog line", step=2)
        return {"ok": "yes"}

    app.include_router(router)
    return app


async def test_lines_written_while_serving_carry_the_request_id_tenant_and_actor(
    probing_app: FastAPI, world: TenantWorld, logs: CapturedLogs
) -> None:
    async with client_of(probing_app) as client:
        response = await client.get(
            f"/api/v1/{world.a}/log-probe",
            headers=world.headers(world.a, "viewer") | {"X-Request-ID": "probe-1"},
        )
    logging.getLogger("shelfkeeper.probe").info("after the request")

    assert response.status_code == 200
    lines = logs.lines()
    probes = {line["event"]: line for line in lines if line["logger"] == "shelfkeeper.probe"}
    for event in ("standard library line 1", "structlog line"):
        assert probes[event]["request_id"] == "probe-1"
        assert probes[event]["tenant"] == world.a
        assert probes[event]["actor"] == "user:tester"
    assert probes["structlog line"]["step"] == 2
    # the request's context ends with it
    after = probes["after the request"]
    assert "request_id" not in after
    assert "tenant" not in after
    assert "actor" not in after
    [access] = [line for line in logs.access_lines() if line["request_id"] == "probe-1"]
    assert access["route"] == "/api/v1/{tenant_id}/log-probe"


# --- no personal data, no secrets -------------------------------------------------------

TENANT_NAME = "Zebulon Quaintance Holdings"
LOCATION_NAME = "Casa Privada Fenwick"
STREET = "17 Larkspur Crescent"
CITY = "Wigglesworth"
POSTAL_CODE = "9Q7 XZ4"
KEY_NAME = "scanner of Ottoline Brack"
EMAIL = "jane.doe+orders@example.com"


@pytest.mark.parametrize("log_format", ["json", "console"])
async def test_no_personal_data_or_secrets_reach_the_logs(
    client: httpx.AsyncClient, world: TenantWorld, log_format: str
) -> None:
    tenant_id = new_tenant_id()
    admin = world.headers(tenant_id)
    with captured_logs("json" if log_format == "json" else "console") as logs:
        # given: a tenant with a name, a location with a name and an address
        responses = [
            await client.post(
                "/api/v1/tenants",
                json={"id": tenant_id, "name": TENANT_NAME},
                headers=world.platform,
            ),
            await client.post(
                locations_url(tenant_id),
                json={
                    "code": "PII-1",
                    "name": LOCATION_NAME,
                    "kind": "store",
                    "address": {"line1": STREET, "city": CITY, "postal_code": POSTAL_CODE},
                },
                headers=admin,
            ),
        ]
        # an API key whose secret is in the response
        created_key = await client.post(
            f"/api/v1/{tenant_id}/api-keys",
            json={"name": KEY_NAME, "role": "viewer"},
            headers=admin,
        )
        secret = created_key.json()["key"]
        responses += [
            created_key,
            # the secret as a credential, and e-mail addresses in query strings
            await client.get(
                locations_url(tenant_id) + f"?customer_email={quote(EMAIL)}&q={EMAIL}",
                headers={"Authorization": f"Bearer {secret}"},
            ),
            await client.get(
                f"/api/v1/{tenant_id}/orders?customer_email={quote(EMAIL)}", headers=admin
            ),
            # a bad credential, and an e-mail address in an invalid body
            await client.get(
                locations_url(tenant_id), headers={"Authorization": f"Bearer {secret}x"}
            ),
            await client.post(
                locations_url(tenant_id),
                json={"code": "bad code", "name": EMAIL, "kind": "store"},
                headers=admin,
            ),
        ]

    # then: every request was logged, and none of what it carried
    assert [response.status_code for response in responses] == [201, 201, 201, 200, 200, 401, 422]
    text = logs.text
    assert text.count("shelfkeeper.access") == len(responses)
    assert tenant_id in text
    for private in (
        TENANT_NAME,
        LOCATION_NAME,
        STREET,
        CITY,
        POSTAL_CODE,
        KEY_NAME,
        secret,
        secret.rsplit("_", 1)[1],
        admin["Authorization"].removeprefix("Bearer "),
        world.platform["Authorization"].removeprefix("Bearer "),
        EMAIL,
        quote(EMAIL),
        "customer_email",
        "Bearer",
        "Authorization",
    ):
        assert private not in text, private


# --- the backstop -----------------------------------------------------------------------


def test_redact_blanks_fields_named_like_secrets_or_personal_data() -> None:
    event = {
        "event": "something happened",
        "Authorization": "Bearer abc",
        "api_key": "whatever",
        "password": "hunter2",
        "customer_email": "someone",
        "phone": "+31 20 123 4567",
        "shipping_address": {"line1": "1 Road"},
        "headers": {"x": "y"},
        "body": "{}",
        "query_string": "a=b",
        "name": "Jane",
        "tenant": "acme",
        "route": "/api/v1/{tenant_id}/locations",
        "status": 200,
        "nested": {"token": "t0ken", "ok": "fine", "list": [{"email": "x"}, "plain"]},
    }

    redacted = redact(None, "info", dict(event))

    for key in (
        "Authorization",
        "api_key",
        "password",
        "customer_email",
        "phone",
        "shipping_address",
        "headers",
        "body",
        "query_string",
        "name",
    ):
        assert redacted[key] == REDACTED, key
    assert redacted["nested"] == {
        "token": REDACTED,
        "ok": "fine",
        "list": [{"email": REDACTED}, "plain"],
    }
    for kept in ("event", "tenant", "route", "status"):
        assert redacted[kept] == event[kept], kept


@pytest.mark.parametrize(
    ("text", "hidden"),
    [
        ("mail me at jane.doe@example.com please", "jane.doe@example.com"),
        ("GET /orders?customer_email=jane.doe%40example.com", "jane.doe%40example.com"),
        ("header Authorization: Bearer abc.def-ghi", "abc.def-ghi"),
        ("token eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl seen", "eyJhbGciOiJIUzI1NiJ9"),
        ("key sk_acme-home_3q2Yh7KXyPZ4Jv0R1s9Wq8mN5bT6cD2eF4gH1iJ0kLm used", "3q2Yh7KXyPZ4"),
        ("secret whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw here", "MfKQ9r8GKYqrTwjUPD8"),
        ("connecting to redis://:s3cr3t@cache:6379/0", "s3cr3t"),
    ],
)
def test_scrub_removes_secrets_and_addresses_from_text(text: str, hidden: str) -> None:
    scrubbed = scrub(text)

    assert hidden not in scrubbed
    assert REDACTED in scrubbed


def test_standard_library_lines_are_rendered_as_json_and_scrubbed() -> None:
    with captured_logs() as logs:
        logging.getLogger("uvicorn.error").info("Started server process [%d]", 42)
        try:
            raise ValueError(f"duplicate key (email)=({EMAIL})")
        except ValueError:
            logging.getLogger("shelfkeeper").exception("it failed for %s", EMAIL)

    started, failed = logs.lines()
    assert started["event"] == "Started server process [42]"
    assert (started["logger"], started["level"]) == ("uvicorn.error", "info")
    assert failed["level"] == "error"
    assert failed["event"] == f"it failed for {REDACTED}"
    assert "ValueError: duplicate key (email)=" in failed["exception"]
    assert EMAIL not in logs.text


def test_console_format_is_one_readable_line_per_event() -> None:
    handler_formatter = formatter("console")
    record = logging.LogRecord(
        "shelfkeeper", logging.WARNING, __file__, 1, "hello %s", ("you",), None
    )

    line = handler_formatter.format(record)

    assert "hello you" in line
    assert "warning" in line
    assert "\n" not in line
    with pytest.raises(json.JSONDecodeError):
        json.loads(line)


async def test_routes_that_are_not_api_routes_are_named_too(
    client: httpx.AsyncClient, logs: CapturedLogs
) -> None:
    pages = {
        "openapi": "/api/v1/openapi.json",
        "docs": "/docs",
        "asset": "/docs/assets/swagger-ui.css",
        "metrics": "/metrics",
    }
    for name, path in pages.items():
        assert (await client.get(path, headers={"X-Request-ID": name})).status_code == 200
    wrong_method = await client.put("/healthz", headers={"X-Request-ID": "page-put"})

    assert wrong_method.status_code == 405
    routes = {line["request_id"]: line["route"] for line in logs.access_lines()}
    assert routes == {
        "openapi": "/api/v1/openapi.json",
        "docs": "/docs",
        "asset": "/docs/assets",
        "metrics": "/metrics",
        "page-put": "/healthz",
    }
