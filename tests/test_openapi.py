"""The API against its own OpenAPI document, and the human docs.

`test_api_conforms_to_its_openapi_document` is a bounded property-based fuzz (schemathesis):
every operation of the in-process app gets generated inputs, valid and schema-violating,
sent with an admin token of a real tenant (a platform operator's for `/api/v1/tenants`) and
the tenant path parameter pinned to that tenant, so requests get past authentication. Every
response must be below 500, with a documented status code, content type and schema, and
every schema-violating request must be refused. Half of the generated ids are swapped for
ids of real objects, so the fuzz reaches the code behind the 404s too.

Bounded and reproducible: a fixed seed, deterministic generation, 30 fuzzed inputs per
operation plus schemathesis' examples and coverage cases.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.python.asgi import shutdown_lifespans
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from shelfkeeper.app import OPENAPI_URL, create_app
from shelfkeeper.config import Settings
from shelfkeeper.kit.problems import PROBLEM_MEDIA_TYPE
from tests.conftest import TenantWorld

FUZZ_CONFIG = schemathesis.Config.from_dict(
    {
        # A fixed seed and deterministic generation: every run fuzzes the same inputs.
        "seed": 20_261_204,
        "generation": {
            "max-examples": 30,
            "deterministic": True,
            "database": "none",
            # The test sends its own bearer token; authentication has tests of its own.
            "with-security-parameters": False,
        },
        # One request per case; sequences of calls are the endpoint tests' business.
        "phases": {"stateful": {"enabled": False}},
    }
)
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    negative_data_rejection,
]

# The document `/api/v1/openapi.json` serves (`test_the_served_document_is_the_apps`).
SCHEMA = schemathesis.openapi.from_dict(
    create_app(Settings(database_url="postgresql://unused", jwt_secret="unused")).openapi(),
    config=FUZZ_CONFIG,
)


@pytest.fixture(scope="module")
def fuzz_app(settings: Settings) -> Iterator[FastAPI]:
    """An app with a pool of its own, opened by its lifespan on schemathesis' event loop."""
    yield create_app(settings)
    shutdown_lifespans()


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@dataclass(frozen=True)
class Creation:
    """How to create a real object whose id a parameter takes (from the ids of the objects
    created before it), where to read it back, and where its id is in the answer."""

    path: str
    body: Callable[[dict[str, str]], dict[str, Any]]
    read_path: str | None = None
    id_of: Callable[[dict[str, Any]], str] = lambda created: str(created["id"])


def order_of(ids: dict[str, str]) -> dict[str, Any]:
    """An order for one unit of the fuzz's variant (its item allows backorders)."""
    return {
        "customer": {"email": "fuzz@example.com"},
        "currency": "USD",
        "lines": [{"variant_id": ids["variant_id"], "quantity": 1, "unit_price": "1.00"}],
    }


# In creation order: a variant needs an item, an order a variant.
CREATIONS = {
    "location_id": Creation(
        "/api/v1/{tenant_id}/locations",
        lambda ids: {"code": unique("L"), "name": "Fuzz target", "kind": "store"},
        "/api/v1/{tenant_id}/locations/{location_id}",
    ),
    "key_id": Creation(
        "/api/v1/{tenant_id}/api-keys", lambda ids: {"name": "fuzz target", "role": "viewer"}
    ),
    "item_id": Creation(
        "/api/v1/{tenant_id}/inventory",
        lambda ids: {"sku": unique("I"), "name": "Fuzz target", "allow_backorder": True},
        "/api/v1/{tenant_id}/inventory/{item_id}",
    ),
    "variant_id": Creation(
        "/api/v1/{tenant_id}/inventory/{item_id}/variants",
        lambda ids: {"sku": unique("V")},
        "/api/v1/{tenant_id}/inventory/{item_id}/variants/{variant_id}",
    ),
    "order_id": Creation(
        "/api/v1/{tenant_id}/orders", order_of, "/api/v1/{tenant_id}/orders/{order_id}"
    ),
    # A second line of that order, added again on every call (a line cannot be read back;
    # the order is still pending whenever objects are replenished).
    "line_id": Creation(
        "/api/v1/{tenant_id}/orders/{order_id}/items",
        lambda ids: order_of(ids)["lines"][0],
        id_of=lambda created: str(created["lines"][-1]["id"]),
    ),
}
ID_FIELDS = frozenset({*CREATIONS, "from_location_id", "to_location_id"})


@dataclass
class Targets:
    """The tenants the fuzz acts in, and real objects for half of the generated ids."""

    app: FastAPI
    tenant: str
    tenant_headers: dict[str, str]
    platform_tenant: str
    platform_headers: dict[str, str]
    ids: dict[str, str] = field(default_factory=dict)

    def replenish(self) -> None:
        """Create every real object that is missing (the fuzz deletes some).

        An object that cannot be read back (an API key) is replaced on every call.
        """
        for name, creation in CREATIONS.items():
            if name in self.ids and creation.read_path:
                if self.call("GET", creation.read_path).status_code == 200:
                    continue
            created = self.call("POST", creation.path, body=creation.body(self.ids))
            assert created.status_code == 201, created.text
            self.ids[name] = creation.id_of(created.json())

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        """Call an operation of the tenant with the parameters the path names."""
        known = {"tenant_id": self.tenant, **self.ids}
        parameters = {key: value for key, value in known.items() if "{" + key + "}" in path}
        case = SCHEMA[path][method].Case(path_parameters=parameters, **kwargs)
        return case.call(app=self.app, headers=self.tenant_headers)

    def aim(self, name: str, generated: object) -> object:
        """The real id instead of a generated valid one, for half of them (by their data)."""
        real = self.ids.get(name.removeprefix("from_").removeprefix("to_"))
        if real is not None and is_uuid(generated) and str(generated)[:1] in "01234567":
            return real
        return generated


def is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def aim_body(value: Any, targets: Targets) -> None:
    """Swap generated ids in a JSON body for real ones, in place."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in ID_FIELDS:
                value[key] = targets.aim(key, item)
            else:
                aim_body(item, targets)
    elif isinstance(value, list):
        for item in value:
            aim_body(item, targets)


@pytest.fixture
def targets(fuzz_app: FastAPI, world: TenantWorld) -> Targets:
    created = Targets(
        app=fuzz_app,
        tenant=world.a,
        tenant_headers=world.headers(world.a),
        # Tenant lifecycle operations act on the second tenant, so a fuzzed suspension
        # never locks the first one out of the tenant-scoped operations.
        platform_tenant=world.b,
        platform_headers=world.platform,
    )
    created.replenish()
    return created


# The event stream never ends by itself, and an in-process client cannot read a response
# before it ends: tests/event/test_stream.py reads it from a real server instead.
@SCHEMA.exclude(path_regex=r"/events/stream$").parametrize()
# One world (two tenants and their objects) serves all inputs of an operation, on purpose.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_api_conforms_to_its_openapi_document(case: Any, targets: Targets) -> None:
    platform = case.path.startswith("/api/v1/tenants")
    parameters = case.path_parameters if case.path_parameters is not None else {}
    for name, generated in parameters.items():
        if name == "tenant_id":
            parameters[name] = targets.platform_tenant if platform else targets.tenant
        else:
            parameters[name] = targets.aim(name, generated)
    aim_body(case.body, targets)
    # Reading `meta` revalidates what was edited: a schema-violating case whose violation
    # was swapped away is judged as the valid request it has become.
    assert case.meta is not None
    headers = targets.platform_headers if platform else targets.tenant_headers

    response = case.call_and_validate(app=targets.app, headers=headers, checks=CHECKS)

    if case.method == "DELETE" and response.status_code == 204:
        targets.replenish()


async def test_the_served_document_is_the_apps(app: FastAPI, client: httpx.AsyncClient) -> None:
    response = await client.get(OPENAPI_URL)

    assert response.status_code == 200
    assert response.json() == SCHEMA.raw_schema == app.openapi()


async def test_openapi_document_declares_bearer_auth_idempotency_and_problem_errors(
    client: httpx.AsyncClient,
) -> None:
    document = (await client.get(OPENAPI_URL)).json()

    scheme = document["components"]["securitySchemes"]["bearer"]
    assert (scheme["type"], scheme["scheme"]) == ("http", "bearer")
    error_responses = 0
    for path, path_item in document["paths"].items():
        for method, operation in path_item.items():
            if path.endswith("/integrations/{provider}/callback"):
                # authenticated by its Standard Webhooks signature, not a bearer token
                assert operation["security"] == [], (method, path)
                assert "Idempotency-Key" not in str(operation.get("parameters")), path
            elif path.startswith("/api/v1/"):
                assert operation["security"] == [{"bearer": []}], (method, path)
                headers = [
                    p["name"] for p in operation.get("parameters", []) if p["in"] == "header"
                ]
                assert ("Idempotency-Key" in headers) == (method in ("post", "patch")), (
                    method,
                    path,
                )
            for status, answer in operation["responses"].items():
                if status.startswith(("4", "5")):
                    error_responses += 1
                    assert list(answer["content"]) == [PROBLEM_MEDIA_TYPE], (method, path, status)
                    schema = answer["content"][PROBLEM_MEDIA_TYPE]["schema"]
                    assert schema == {"$ref": "#/components/schemas/ProblemDocument"}
    assert error_responses > 0


async def test_docs_are_served_from_local_assets_only(client: httpx.AsyncClient) -> None:
    response = await client.get("/docs")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert not re.search(r"https?://|//[a-z0-9-]+\.[a-z]", response.text), response.text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", response.text)
    assert len(assets) >= 2
    assert OPENAPI_URL in response.text
    assert '"validatorUrl": null' in response.text  # no calls to validator.swagger.io either
    for url in assets:
        assert url.startswith("/docs/assets/"), url
        asset = await client.get(url)
        assert asset.status_code == 200, url
        assert asset.content, url


async def test_healthz_answers(client: httpx.AsyncClient) -> None:
    response = await client.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_answers_when_the_database_does(client: httpx.AsyncClient) -> None:
    response = await client.get("/readyz")

    assert response.status_code == 200
    assert response.json() == {"status": "ready"}
