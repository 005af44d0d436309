"""SQL for `tenant_data_key`, and the catalog walk over sealed columns for key rotation.

Every statement filters by tenant; RLS stands behind each. The re-sealing statements are
the one place this domain writes other domains' tables: generically, found in the catalog
(every `bytea` column of a tenant table), changing only a sealed value for the same value
sealed under a newer key, and only if it is still the value that was read.
"""

from __future__ import annotations

from dataclasses import dataclass

from shelfkeeper.db.database import Connection, Record, quote_identifier

COLUMNS = "version, wrapped_key, master_key, scheme"
KEY_TABLE = "tenant_data_key"


async def current_key(db: Connection, *, tenant_id: str) -> Record | None:
    """The tenant's newest data key (the one new values are sealed under)."""
    return await db.fetchrow(
        f"""
        SELECT {COLUMNS} FROM tenant_data_key
        WHERE tenant_id = $1 ORDER BY version DESC LIMIT 1
        """,
        tenant_id,
    )


async def key(db: Connection, *, tenant_id: str, version: int) -> Record | None:
    return await db.fetchrow(
        f"SELECT {COLUMNS} FROM tenant_data_key WHERE tenant_id = $1 AND version = $2",
        tenant_id,
        version,
    )


async def keys(db: Connection, *, tenant_id: str) -> list[Record]:
    """Every data key of the tenant, oldest first."""
    return await db.fetch(
        f"SELECT {COLUMNS} FROM tenant_data_key WHERE tenant_id = $1 ORDER BY version",
        tenant_id,
    )


async def insert_key(
    db: Connection,
    *,
    tenant_id: str,
    version: int,
    wrapped_key: bytes,
    master_key: str,
    scheme: int,
) -> Record | None:
    """Store a wrapped key; None when that version exists already (a concurrent first use
    or rotation stored its own: the caller reads that one)."""
    return await db.fetchrow(
        f"""
        INSERT INTO tenant_data_key (tenant_id, version, wrapped_key, master_key, scheme)
        VALUES ($1, $2, $3, $4, $5)
        ON CONFLICT (tenant_id, version) DO NOTHING
        RETURNING {COLUMNS}
        """,
        tenant_id,
        version,
        wrapped_key,
        master_key,
        scheme,
    )


async def replace_wrapping(
    db: Connection,
    *,
    tenant_id: str,
    version: int,
    old_wrapped_key: bytes,
    wrapped_key: bytes,
    master_key: str,
    scheme: int,
) -> bool:
    """Store a key wrapped anew, if it is still wrapped as read (compare-and-set)."""
    status = await db.execute(
        """
        UPDATE tenant_data_key SET wrapped_key = $4, master_key = $5, scheme = $6
        WHERE tenant_id = $1 AND version = $2 AND wrapped_key = $3
        """,
        tenant_id,
        version,
        old_wrapped_key,
        wrapped_key,
        master_key,
        scheme,
    )
    return status.split()[-1] == "1"


async def has_share_keys(db: Connection, *, tenant_id: str) -> bool:
    """Whether a committed key of the tenant is wrapped with its share (scheme 2)."""
    return bool(
        await db.fetchval(
            "SELECT EXISTS (SELECT FROM tenant_data_key WHERE tenant_id = $1 AND scheme = 2)",
            tenant_id,
        )
    )


async def lock_share(db: Connection, *, tenant_id: str) -> None:
    """Serialize, until the transaction ends, whoever creates or prunes the tenant's share."""
    await db.execute(
        "SELECT pg_advisory_xact_lock(hashtextextended('shelfkeeper/key-share/' || $1, 0))",
        tenant_id,
    )


async def delete_keys(db: Connection, *, tenant_id: str) -> int:
    status = await db.execute("DELETE FROM tenant_data_key WHERE tenant_id = $1", tenant_id)
    return int(status.split()[-1])


async def delete_keys_before(db: Connection, *, tenant_id: str, version: int) -> list[int]:
    """Delete the tenant's keys older than `version`; their versions."""
    rows = await db.fetch(
        "DELETE FROM tenant_data_key WHERE tenant_id = $1 AND version < $2 RETURNING version",
        tenant_id,
        version,
    )
    return sorted(row["version"] for row in rows)


async def key_counts(db: Connection, *, tenant_id: str) -> list[Record]:
    """(master_key, scheme, keys) for the tenant."""
    return await db.fetch(
        """
        SELECT master_key, scheme, count(*) AS keys FROM tenant_data_key
        WHERE tenant_id = $1 GROUP BY master_key, scheme
        """,
        tenant_id,
    )


# --- sealed columns, and re-sealing them -------------------------------------------------


@dataclass(frozen=True)
class Column:
    table: str
    column: str

    @property
    def field(self) -> str:
        """The name a value of this column is sealed for (`table.column`)."""
        return f"{self.table}.{self.column}"


async def bytea_columns(db: Connection) -> list[Column]:
    """Every `bytea` column of every tenant table (a table with a `tenant_id`) of the
    schema, but the data keys themselves: where sealed values can be."""
    rows = await db.fetch(
        """
        SELECT c.relname AS table_name, a.attname AS column_name
        FROM pg_class c
        JOIN pg_namespace n ON n.oid = c.relnamespace
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
        WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p')
          AND a.atttypid = 'bytea'::regtype
          AND c.relname <> $1
          AND EXISTS (
              SELECT FROM pg_attribute t
              WHERE t.attrelid = c.oid AND t.attname = 'tenant_id' AND NOT t.attisdropped
          )
        ORDER BY c.relname, a.attname
        """,
        KEY_TABLE,
    )
    return [Column(row["table_name"], row["column_name"]) for row in rows]


def _older_than(column: str, version: str) -> str:
    """SQL: the column holds a sealed value (format 1) naming a key version below the
    parameter `version` (4 big-endian bytes: byte order is numeric order)."""
    return (
        f"length({column}) > 17 AND get_byte({column}, 0) = 1 "
        f"AND substring({column} FROM 2 FOR 4) < {version}"
    )


async def sealed_before(
    db: Connection,
    *,
    tenant_id: str,
    column: Column,
    version: int,
    after: tuple[int, int] | None,
    limit: int,
) -> list[Record]:
    """(ctid, value) of the next `limit` rows, in physical order after `after`, whose
    `column` is sealed under a key older than `version`."""
    table, name = quote_identifier(column.table), quote_identifier(column.column)
    return await db.fetch(
        f"""
        SELECT ctid, {name} AS value FROM {table}
        WHERE tenant_id = $1 AND ctid > $2::tid AND {_older_than(name, "$3")}
        ORDER BY ctid LIMIT $4
        """,
        tenant_id,
        after or (0, 0),
        version.to_bytes(4, "big"),
        limit,
    )


async def count_sealed_before(
    db: Connection, *, tenant_id: str, column: Column, version: int
) -> int:
    table, name = quote_identifier(column.table), quote_identifier(column.column)
    count = await db.fetchval(
        f"""
        SELECT count(*) FROM {table}
        WHERE tenant_id = $1 AND {_older_than(name, "$2")}
        """,
        tenant_id,
        version.to_bytes(4, "big"),
    )
    return int(count)


async def replace_sealed(
    db: Connection,
    *,
    tenant_id: str,
    column: Column,
    ctid: tuple[int, int],
    old: bytes,
    new: bytes,
) -> bool:
    """Compare-and-set: store `new` if the row still holds `old` (a concurrent writer's
    value is never overwritten; a row it moved is found again by the next scan)."""
    table, name = quote_identifier(column.table), quote_identifier(column.column)
    status = await db.execute(
        f"UPDATE {table} SET {name} = $4 WHERE tenant_id = $1 AND ctid = $2::tid AND {name} = $3",
        tenant_id,
        ctid,
        old,
        new,
    )
    return status.split()[-1] == "1"


# --- waiting for older transactions ------------------------------------------------------


async def open_transactions(db: Connection) -> list[str]:
    """The virtual transaction ids of every transaction open now in this database but the
    caller's. Every transaction holds a lock on its virtual id from its start (whether or
    not it has written anything, which a transaction id would need), and `pg_locks` shows
    it to any role."""
    rows = await db.fetch(
        """
        SELECT l.virtualtransaction FROM pg_locks l
        JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'virtualxid' AND l.granted
          AND a.datid = (SELECT oid FROM pg_database WHERE datname = current_database())
          AND l.pid <> pg_backend_pid()
        """
    )
    return [row["virtualtransaction"] for row in rows]


async def still_open(db: Connection, transactions: list[str]) -> list[str]:
    """Those of `transactions` that have not ended yet."""
    rows = await db.fetch(
        """
        SELECT DISTINCT virtualtransaction FROM pg_locks
        WHERE locktype = 'virtualxid' AND granted AND virtualtransaction = ANY($1::text[])
        """,
        transactions,
    )
    return [row["virtualtransaction"] for row in rows]
