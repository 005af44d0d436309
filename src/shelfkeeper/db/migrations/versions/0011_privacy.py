"""Per-tenant data keys and encrypted customer data.

`tenant_data_key` holds each tenant's data keys, wrapped by the master key (see
docs/privacy.md). `sales_order.customer` and `sales_order.shipping_address` (JSON) and
`integration_secret.secret` (text) become `bytea` holding values sealed under the tenant's
data key. Rows that exist already are sealed here, one tenant at a time (each bound in
turn, so row-level security stays on), under a data key wrapped by the master key of the
environment's settings (`SHELFKEEPER_MASTER_KEY`, or `<SHELFKEEPER_DATA_DIR>/master-key`):
run the migration with the settings the service runs with. Downgrading opens them again.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import sqlalchemy as sa
from alembic import op
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy.dialects import postgresql

from shelfkeeper.db.rls import tenant_table_statements
from shelfkeeper.privacy import crypto

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TIMESTAMPTZ = postgresql.TIMESTAMP(timezone=True)
ORDER_FIELDS = ("customer", "shipping_address")


def _master() -> bytes:
    from shelfkeeper.config import Settings

    return Settings().master_key_bytes


def _tenants(connection: sa.Connection) -> list[str]:
    return [row[0] for row in connection.execute(sa.text("SELECT id FROM tenant ORDER BY id"))]


def _bind(connection: sa.Connection, tenant_id: str) -> None:
    connection.execute(
        sa.text("SELECT set_config('app.tenant_id', :tenant, true)"), {"tenant": tenant_id}
    )


def _tenant_key(connection: sa.Connection, tenant_id: str, master: bytes) -> AESGCM:
    """The tenant's data key 1, created (and stored wrapped) when it has none."""
    wrapped = connection.execute(
        sa.text(
            "SELECT wrapped_key FROM tenant_data_key WHERE tenant_id = :tenant AND version = 1"
        ),
        {"tenant": tenant_id},
    ).scalar()
    if wrapped is None:
        data_key = crypto.new_data_key()
        connection.execute(
            sa.text(
                "INSERT INTO tenant_data_key (tenant_id, version, wrapped_key, master_key) "
                "VALUES (:tenant, 1, :wrapped, :master)"
            ),
            {
                "tenant": tenant_id,
                "wrapped": crypto.wrap(master, tenant_id=tenant_id, version=1, data_key=data_key),
                "master": crypto.fingerprint(master),
            },
        )
        return AESGCM(data_key)
    return AESGCM(crypto.unwrap(master, tenant_id=tenant_id, version=1, wrapped=bytes(wrapped)))


def _convert_rows(connection: sa.Connection, *, seal: bool) -> None:
    """Seal (or open) every existing customer, address and callback secret, per tenant."""
    master: bytes | None = None
    for tenant_id in _tenants(connection):
        _bind(connection, tenant_id)
        orders = connection.execute(
            sa.text(
                "SELECT id, customer, shipping_address FROM sales_order WHERE tenant_id = :tenant"
            ),
            {"tenant": tenant_id},
        ).all()
        secrets = connection.execute(
            sa.text("SELECT provider, secret FROM integration_secret WHERE tenant_id = :tenant"),
            {"tenant": tenant_id},
        ).all()
        if not orders and not secrets:
            continue
        master = master or _master()
        key = _tenant_key(connection, tenant_id, master)

        def convert(
            field: str,
            value: bytes | None,
            *,
            text: bool = False,
            key: AESGCM = key,
            tenant_id: str = tenant_id,
        ) -> bytes | None:
            """Every sealed value is JSON: a secret's text is sealed as a JSON string."""
            if value is None:
                return None
            if seal:
                plaintext = json.dumps(bytes(value).decode()).encode() if text else bytes(value)
                return crypto.seal(
                    key, version=1, tenant_id=tenant_id, field=field, plaintext=plaintext
                )
            opened = crypto.open_sealed(key, tenant_id=tenant_id, field=field, sealed=bytes(value))
            return str(json.loads(opened)).encode() if text else opened

        for order_id, customer, address in orders:
            connection.execute(
                sa.text(
                    "UPDATE sales_order SET customer = :customer, shipping_address = :address "
                    "WHERE tenant_id = :tenant AND id = :id"
                ),
                {
                    "customer": convert("sales_order.customer", customer),
                    "address": convert("sales_order.shipping_address", address),
                    "tenant": tenant_id,
                    "id": order_id,
                },
            )
        for provider, secret in secrets:
            connection.execute(
                sa.text(
                    "UPDATE integration_secret SET secret = :secret "
                    "WHERE tenant_id = :tenant AND provider = :provider"
                ),
                {
                    "secret": convert("integration_secret.secret", secret, text=True),
                    "tenant": tenant_id,
                    "provider": provider,
                },
            )
    _bind(connection, "")


def _alter(table: str, column: str, type_: str, using: Callable[[str], str]) -> None:
    op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {type_} USING {using(column)}")


def upgrade() -> None:
    op.create_table(
        "tenant_data_key",
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("wrapped_key", sa.LargeBinary, nullable=False),
        sa.Column("master_key", sa.Text, nullable=False),
        sa.Column("created_at", TIMESTAMPTZ, nullable=False, server_default=sa.text("now()")),
        sa.PrimaryKeyConstraint("tenant_id", "version", name="pk_tenant_data_key"),
        sa.ForeignKeyConstraint(
            ["tenant_id"],
            ["tenant.id"],
            ondelete="CASCADE",
            name="fk_tenant_data_key_tenant_id_tenant",
        ),
        sa.CheckConstraint("version >= 1", name="ck_tenant_data_key_version_positive"),
    )
    for statement in tenant_table_statements("tenant_data_key"):
        op.execute(statement)
    # As bytes first (the JSON's or secret's UTF-8), then sealed in place.
    for column in ORDER_FIELDS:
        _alter("sales_order", column, "bytea", lambda name: f"convert_to({name}::text, 'UTF8')")
    _alter("integration_secret", "secret", "bytea", lambda name: f"convert_to({name}, 'UTF8')")
    _convert_rows(op.get_bind(), seal=True)


def downgrade() -> None:
    _convert_rows(op.get_bind(), seal=False)
    for column in ORDER_FIELDS:
        _alter("sales_order", column, "jsonb", lambda name: f"convert_from({name}, 'UTF8')::jsonb")
    _alter("integration_secret", "secret", "text", lambda name: f"convert_from({name}, 'UTF8')")
    op.drop_table("tenant_data_key")
