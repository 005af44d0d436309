"""Key management jobs, run from the command line (`shelfkeeper keys ...`) while the service
runs: data-key rotation, rewrapping under a new master key, status, pruning key shares.

Cross-tenant by nature (they visit every tenant in turn, each in transactions bound to it),
and in one place. Rotating a tenant's data key:

1. insert version n+1, wrapped under the current master key and the tenant's share; it is
   current from its commit on (`service.sealer` reads the newest key);
2. wait until every transaction open at that commit has ended: a transaction that read
   version n before the commit may still be about to write a value sealed under it. The
   wait watches virtual transaction ids (`pg_locks`), which every transaction holds from its
   start, rather than `pg_snapshot_xmin`, which misses a transaction that has read the key
   but not yet written anything (it has no transaction id yet);
3. re-seal every value sealed under an older version, in every `bytea` column of every
   tenant table (found in the catalog, so a new sealed column cannot be missed), in
   batches, each value replaced only if it is still the value read (compare-and-set: a
   concurrent writer is never overwritten; a row it changed is found by the next pass);
   passes repeat until one finds nothing left;
4. in one transaction, check that nothing sealed under an older version remains and
   delete the older versions.

A value that names an older version but does not open (altered, or bytes that only look
sealed) stops the rotation before step 4 (RotationIncomplete): old keys are kept, nothing
becomes unreadable.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from shelfkeeper.db.database import PLATFORM_SCOPE, Database
from shelfkeeper.privacy import crypto, repository
from shelfkeeper.privacy import service as privacy_service
from shelfkeeper.privacy.service import DataKeyUnavailable as DataKeyUnavailable
from shelfkeeper.tenant import service as tenant_service

DEFAULT_BATCH_SIZE = 500


class RotationIncomplete(RuntimeError):
    """The rotation stopped before deleting the old keys (they are kept, every value still
    opens): values that do not open, or transactions that outlasted the wait."""


@dataclass(frozen=True)
class Rotation:
    """What rotating one tenant's data key did."""

    tenant_id: str
    version: int | None
    """The new current version; None when the tenant had no data key (nothing sealed)."""
    resealed: dict[str, int] = field(default_factory=dict)
    """Values re-sealed, by field (`table.column`)."""
    deleted_versions: list[int] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant_id,
            "version": self.version,
            "resealed": self.resealed,
            "deleted_versions": self.deleted_versions,
        }


async def tenant_ids(database: Database) -> list[str]:
    async with database.tenant_transaction(PLATFORM_SCOPE) as db:
        return await tenant_service.all_ids(db)


async def wait_for_older_transactions(
    database: Database, *, poll_seconds: float = 0.1, timeout_seconds: float | None = None
) -> None:
    """Return once every transaction open in the database now (but the caller's) has
    ended. Raises RotationIncomplete after `timeout_seconds`."""
    async with database.transaction(readonly=True) as db:
        waiting = await repository.open_transactions(db)
    deadline = None if timeout_seconds is None else time.monotonic() + timeout_seconds
    while waiting:
        if deadline is not None and time.monotonic() > deadline:
            raise RotationIncomplete(
                f"{len(waiting)} transaction(s) older than the new data key are still open"
            )
        await asyncio.sleep(poll_seconds)
        async with database.transaction(readonly=True) as db:
            waiting = await repository.still_open(db, waiting)


async def _reseal(
    database: Database, *, tenant_id: str, version: int, batch_size: int
) -> dict[str, int]:
    """Re-seal the tenant's values sealed under versions older than `version`, pass after
    pass until a pass finds none. Raises RotationIncomplete for values that do not open."""
    async with database.tenant_transaction(tenant_id) as db:
        columns = await repository.bytea_columns(db)
    resealed: dict[str, int] = {}
    while True:
        found, changed, unreadable = 0, 0, []
        for column in columns:
            after: tuple[int, int] | None = None
            while True:
                async with database.tenant_transaction(tenant_id) as db:
                    rows = await repository.sealed_before(
                        db,
                        tenant_id=tenant_id,
                        column=column,
                        version=version,
                        after=after,
                        limit=batch_size,
                    )
                    if not rows:
                        break
                    sealer = await privacy_service.sealer(db, tenant_id=tenant_id)
                    for row in rows:
                        found += 1
                        old: bytes = row["value"]
                        try:
                            plaintext = await privacy_service.open_bytes(
                                db, tenant_id=tenant_id, field=column.field, sealed=old
                            )
                        except DataKeyUnavailable:
                            unreadable.append(f"{column.field} at {tuple(row['ctid'])}")
                            continue
                        if await repository.replace_sealed(
                            db,
                            tenant_id=tenant_id,
                            column=column,
                            ctid=row["ctid"],
                            old=old,
                            new=sealer.seal_bytes(column.field, plaintext),
                        ):
                            changed += 1
                            resealed[column.field] = resealed.get(column.field, 0) + 1
                    after = tuple(rows[-1]["ctid"])
        if found == 0:
            return resealed
        if unreadable and changed == 0 and len(unreadable) == found:
            raise RotationIncomplete(
                f"tenant {tenant_id}: {len(unreadable)} value(s) naming an older data key do "
                f"not open (old keys kept): {', '.join(unreadable[:10])}"
            )


async def rotate_data_key(
    database: Database,
    *,
    tenant_id: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    wait_timeout_seconds: float | None = None,
) -> Rotation:
    """Give the tenant a new current data key, re-seal everything under it, delete the
    old keys (see the module's docstring). Safe while the service runs. Raises
    RotationIncomplete (the old keys are kept) or DataKeyUnavailable."""
    async with database.tenant_transaction(tenant_id) as db:
        current = await repository.current_key(db, tenant_id=tenant_id)
        if current is None:
            return Rotation(tenant_id, None)
        version = int(current["version"]) + 1
        if await privacy_service.add_key(db, tenant_id=tenant_id, version=version) is None:
            raise RotationIncomplete(f"tenant {tenant_id}: another rotation made version {version}")
    await wait_for_older_transactions(database, timeout_seconds=wait_timeout_seconds)
    resealed = await _reseal(database, tenant_id=tenant_id, version=version, batch_size=batch_size)
    async with database.tenant_transaction(tenant_id) as db:
        for column in await repository.bytea_columns(db):
            left = await repository.count_sealed_before(
                db, tenant_id=tenant_id, column=column, version=version
            )
            if left:
                raise RotationIncomplete(
                    f"tenant {tenant_id}: {left} value(s) of {column.field} still sealed "
                    "under an older key (old keys kept)"
                )
        deleted = await repository.delete_keys_before(db, tenant_id=tenant_id, version=version)
    privacy_service.forget(tenant_id)
    return Rotation(tenant_id, version, resealed, deleted)


@dataclass(frozen=True)
class Rewrap:
    tenant_id: str
    rewrapped: int


async def rewrap(database: Database, *, tenant_id: str) -> Rewrap:
    """Wrap each of the tenant's data keys that is not yet under the current master key and
    scheme 2 anew (the data keys themselves, and so every sealed value, stay), creating the
    tenant's share if it has none. Raises DataKeyUnavailable (a key no known master key
    unwraps: give the old master key in `SHELFKEEPER_RETIRED_MASTER_KEYS`)."""
    current = privacy_service.current_master_key()
    rewrapped = 0
    async with database.tenant_transaction(tenant_id) as db:
        rows = [
            row
            for row in await repository.keys(db, tenant_id=tenant_id)
            if row["master_key"] != current or row["scheme"] != crypto.MASTER_AND_SHARE
        ]
        if not rows:
            return Rewrap(tenant_id, 0)
        data_keys = [privacy_service.unwrap_key(tenant_id, row) for row in rows]
        share = await privacy_service.share_for_wrapping(db, tenant_id=tenant_id)
        for row, data_key in zip(rows, data_keys, strict=True):
            wrapped, master = privacy_service.wrap_key(
                tenant_id, version=row["version"], data_key=data_key, share=share
            )
            if await repository.replace_wrapping(
                db,
                tenant_id=tenant_id,
                version=row["version"],
                old_wrapped_key=row["wrapped_key"],
                wrapped_key=wrapped,
                master_key=master,
                scheme=crypto.MASTER_AND_SHARE,
            ):
                rewrapped += 1
    return Rewrap(tenant_id, rewrapped)


async def status(database: Database) -> dict[str, Any]:
    """How the tenants' data keys are wrapped: counts by master key and scheme, the tenants
    with keys but no share, and the shares whose tenant is gone. A retired master key can
    be dropped once no data key names it."""
    current = privacy_service.current_master_key()
    retired = privacy_service.retired_master_keys()
    counts: dict[tuple[str, int], int] = {}
    without_share: list[str] = []
    tenants = await tenant_ids(database)
    for tenant_id in tenants:
        async with database.tenant_transaction(tenant_id) as db:
            rows = await repository.key_counts(db, tenant_id=tenant_id)
        for row in rows:
            counts[(row["master_key"], row["scheme"])] = (
                counts.get((row["master_key"], row["scheme"]), 0) + row["keys"]
            )
        if rows and privacy_service.stored_share(tenant_id) is None:
            without_share.append(tenant_id)
    existing = set(tenants)
    orphaned = sorted(
        {tenant for store in privacy_service.key_stores() for tenant in store.list()} - existing
    )

    def role(master: str) -> str:
        return "current" if master == current else "retired" if master in retired else "unknown"

    data_keys = [
        {"master_key": master, "master_key_role": role(master), "scheme": scheme, "keys": count}
        for (master, scheme), count in sorted(counts.items())
    ]
    return {
        "current_master_key": current,
        "retired_master_keys": retired,
        "data_keys": data_keys,
        "tenants": len(tenants),
        "tenants_without_share": without_share,
        "shares_without_tenant": orphaned,
        "rewrap_needed": any(
            entry["master_key"] != current or entry["scheme"] != crypto.MASTER_AND_SHARE
            for entry in data_keys
        ),
    }


async def prune(database: Database) -> list[str]:
    """Destroy the key shares of tenants that no longer exist (left by a crash between a
    deletion's commit and its share's destruction); returns their tenant ids. Each is
    checked under the tenant's share lock, so a tenant being created (its first key's
    share written, its transaction not yet committed) is waited for, not pruned."""
    stored = sorted({tenant for store in privacy_service.key_stores() for tenant in store.list()})
    pruned: list[str] = []
    for tenant_id in stored:
        async with database.tenant_transaction(PLATFORM_SCOPE) as db:
            await repository.lock_share(db, tenant_id=tenant_id)
            try:
                await tenant_service.get(db, tenant_id=tenant_id)
                continue
            except tenant_service.TenantNotFound:
                pass
            if privacy_service.destroy_share(tenant_id):
                pruned.append(tenant_id)
    return pruned
