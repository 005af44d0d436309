"""Authentication comes first: without a valid credential the answer is 401, whatever else
is wrong with the request (content type, malformed or invalid body)."""

from __future__ import annotations

import httpx
import pytest

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b"hello"),
        ("application/x-www-form-urlencoded", b"code=x"),
        ("application/json", b"{not json"),
        ("application/json", b'{"code": 5}'),
    ],
)
@pytest.mark.parametrize("authorization", [None, "Bearer not-a-token", "Basic dXNlcjpwdw=="])
async def test_bad_requests_without_a_valid_credential_are_401(
    client: httpx.AsyncClient,
    world: TenantWorld,
    owner_connection: Connection,
    content_type: str,
    body: bytes,
    authorization: str | None,
) -> None:
    headers = {"Content-Type": content_type}
    if authorization is not None:
        headers["Authorization"] = authorization

    response = await client.post(f"/api/v1/{world.a}/locations", content=body, headers=headers)

    assert response.status_code == 401, response.text
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["type"].endswith("/unauthorized")
    count = await owner_connection.fetchval(
        "SELECT count(*) FROM location WHERE tenant_id = $1", world.a
    )
    assert count == 0


async def test_with_a_valid_credential_the_content_type_is_judged(
    client: httpx.AsyncClient, world: TenantWorld
) -> None:
    response = await client.post(
        f"/api/v1/{world.a}/locations",
        content=b"hello",
        headers=world.headers(world.a) | {"Content-Type": "text/plain"},
    )

    assert response.status_code == 415, response.text
    assert response.json()["type"].endswith("/unsupported-media-type")
