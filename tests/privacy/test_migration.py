"""Migration 0011 seals the customer data and callback secrets a database already holds."""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import asyncpg
import pytest
from alembic import command
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shelfkeeper.db import migrate
from shelfkeeper.privacy import crypto
from tests.database import _execute, server_url, with_database

MASTER = "migration-test-master-key-0123456789"
CUSTOMER = {"email": "grace.hopper@example.com", "name": "Grace Hopper"}
ADDRESS = {"line1": "42 Harbor Lane", "country": "US"}


async def test_existing_rows_are_sealed_on_upgrade_and_opened_on_downgrade(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHELFKEEPER_MASTER_KEY", MASTER)
    url = server_url(tmp_path)
    name = f"shelfkeeper_test_{uuid.uuid4().hex[:12]}"
    await _execute(url, f'CREATE DATABASE "{name}"')
    dsn = with_database(url, name)
    try:
        await asyncio.to_thread(migrate.upgrade, dsn, "0010")
        owner = await asyncpg.connect(dsn)
        try:
            await owner.execute("INSERT INTO tenant (id, name) VALUES ('old-shop', 'Old')")
            order_id = await owner.fetchval(
                """
                INSERT INTO sales_order (tenant_id, number, status, payment_status, currency,
                    total, customer, customer_email_index, shipping_address, created_by,
                    updated_by)
                VALUES ('old-shop', 1, 'pending', 'unpaid', 'USD', 10, $1::jsonb, 'index',
                        $2::jsonb, 'tester', 'tester')
                RETURNING id
                """,
                json.dumps(CUSTOMER),
                json.dumps(ADDRESS),
            )
            await owner.execute(
                "INSERT INTO integration_secret (tenant_id, provider, secret, created_by) "
                "VALUES ('old-shop', 'manual', 'whsec_c2VjcmV0', 'tester')"
            )

            await asyncio.to_thread(migrate.upgrade, dsn)

            row = await owner.fetchrow(
                "SELECT customer, shipping_address FROM sales_order WHERE id = $1", order_id
            )
            secret = await owner.fetchval("SELECT secret FROM integration_secret")
            key_row = await owner.fetchrow("SELECT * FROM tenant_data_key")
            assert (key_row["tenant_id"], key_row["version"]) == ("old-shop", 1)
            assert key_row["master_key"] == crypto.fingerprint(MASTER.encode())
            key = AESGCM(
                crypto.unwrap(
                    MASTER.encode(), tenant_id="old-shop", version=1, wrapped=key_row["wrapped_key"]
                )
            )

            def opened(field: str, value: bytes) -> object:
                return json.loads(
                    crypto.open_sealed(key, tenant_id="old-shop", field=field, sealed=value)
                )

            assert b"Grace" not in row["customer"]
            assert b"Harbor" not in row["shipping_address"]
            assert opened("sales_order.customer", row["customer"]) == CUSTOMER
            assert opened("sales_order.shipping_address", row["shipping_address"]) == ADDRESS
            assert b"c2VjcmV0" not in secret
            assert opened("integration_secret.secret", secret) == "whsec_c2VjcmV0"

            await asyncio.to_thread(command.downgrade, migrate.alembic_config(dsn), "0010")

            row = await owner.fetchrow(
                "SELECT customer, shipping_address FROM sales_order WHERE id = $1", order_id
            )
            assert json.loads(row["customer"]) == CUSTOMER
            assert json.loads(row["shipping_address"]) == ADDRESS
            assert await owner.fetchval("SELECT secret FROM integration_secret") == (
                "whsec_c2VjcmV0"
            )
        finally:
            await owner.close()
    finally:
        await _execute(url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
