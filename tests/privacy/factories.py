"""A customer with every kind of personal data, and raw-SQL reads of a tenant's rows."""

from __future__ import annotations

from typing import Any

import httpx

from shelfkeeper.db.database import Connection
from tests.conftest import TenantWorld
from tests.db.test_tenancy import tenant_tables

GRACE = {"email": "Grace.Hopper@Example.com", "name": "Grace Hopper", "phone": "+1 555 0100"}
GRACE_ADDRESS = {
    "name": "Grace Hopper",
    "line1": "42 Harbor Lane",
    "city": "Arlington",
    "postal_code": "22201",
    "country": "US",
}
GRACE_NEEDLES = ("Grace.Hopper@Example.com", "Grace Hopper", "+1 555 0100", "42 Harbor Lane")
"""What must never be readable in the database: email, name, phone, address."""
ADA = {"email": "ada@example.com", "name": "Ada Lovelace"}


def privacy_url(tenant: str, what: str) -> str:
    return f"/api/v1/{tenant}/privacy/{what}"


async def rows_as_text(owner: Connection, *, tenant: str) -> dict[str, list[str]]:
    """Every row of every tenant-owned table of `tenant`, cast to text (bytea as hex), read
    as the database owner (row-level security does not hide anything from it)."""
    return {
        table: [
            row["text"]
            for row in await owner.fetch(
                f'SELECT t::text AS text FROM "{table}" AS t WHERE tenant_id = $1', tenant
            )
        ]
        for table in await tenant_tables(owner)
    }


def plaintext_hits(rows: dict[str, list[str]], needles: tuple[str, ...]) -> list[tuple[str, str]]:
    """(table, needle) for each row holding a needle as text, or as the hex of its UTF-8
    (how a `bytea` column holding it unencrypted reads as text)."""
    hits: list[tuple[str, str]] = []
    for table, texts in rows.items():
        for text in texts:
            lowered = text.lower()
            for needle in needles:
                forms = (needle.lower(), needle.encode().hex(), needle.lower().encode().hex())
                if any(form in lowered for form in forms):
                    hits.append((table, needle))
    return hits


async def customer_export(
    client: httpx.AsyncClient, world: TenantWorld, *, tenant: str, email: str
) -> dict[str, Any]:
    response = await client.get(
        privacy_url(tenant, "export"), params={"email": email}, headers=world.headers(tenant)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def tenant_export_text(client: httpx.AsyncClient, world: TenantWorld, *, tenant: str) -> str:
    """The platform export of the tenant (every row, sealed values opened), as text."""
    response = await client.get(f"/api/v1/tenants/{tenant}/export", headers=world.platform)
    assert response.status_code == 200, response.text
    return response.text
