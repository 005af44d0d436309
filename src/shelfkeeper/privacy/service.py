"""Sealing and opening tenants' personal data (envelope encryption), and their data keys.

Other domains seal what they store with `sealer(db, tenant_id=...)` and open it with
`open_json`/`open_bytes`, naming the field (`table.column`) each value belongs to. A
tenant's first data key is created on first use. Unwrapped keys are cached in the process
per (tenant, version); a cached key that no longer opens a value (the tenant was deleted
and created again under the same id, in another process) is read again from the database
once before giving up. `forget` drops a tenant's cached keys.

The master key comes from `Settings.master_key_bytes`. `use_master_key(settings)` (called
by `create_app`) names the settings whose master key wraps new data keys; with none named,
the environment's `Settings()` is used. Each wrapped key records its master key's
fingerprint, so a process that knows several master keys (tests build several apps)
unwraps each key with the right one; their retired master keys
(`SHELFKEEPER_RETIRED_MASTER_KEYS`) unwrap too, but never wrap.

New data keys are wrapped under scheme 2: the master key and the tenant's key share, kept
outside the database in the key store of the named settings (`privacy.keystore`; shares are
looked up in every named settings' store, newest first, and cached like the data keys).
`destroy_keys` deletes the tenant's keys in the caller's transaction and destroys its share
once that transaction has committed, so a database backup taken before cannot be opened
either (docs/privacy.md).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shelfkeeper.config import Settings
from shelfkeeper.db.database import PLATFORM_SCOPE, Connection, Record
from shelfkeeper.kit import recording
from shelfkeeper.privacy import crypto, repository
from shelfkeeper.privacy.keystore import DirectoryKeyStore, KeyStore, UnreadableShare

logger = logging.getLogger("shelfkeeper.privacy")


class DataKeyUnavailable(RuntimeError):
    """A sealed value names a data key that is gone (destroyed with its tenant) or that no
    master key this process knows unwraps, or the value does not open. Not a client error:
    it surfaces as a 500."""


class _MasterKeys:
    """The master keys this process knows, read lazily from their settings."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sources: list[Settings] = []
        self._known: dict[str, bytes] = {}

    def use(self, settings: Settings) -> None:
        with self._lock:
            self._sources = [source for source in self._sources if source is not settings]
            self._sources.append(settings)

    def _named(self) -> list[Settings]:
        """The settings named, oldest first; the environment's when none was named."""
        with self._lock:
            if not self._sources:
                self._sources.append(Settings())
            return list(self._sources)

    def current(self) -> tuple[str, bytes]:
        """The master key that wraps new data keys: the last one named."""
        master = self._named()[-1].master_key_bytes
        name = crypto.fingerprint(master)
        self._known[name] = master
        return name, master

    def find(self, name: str) -> bytes | None:
        """The known master key with that fingerprint, reading the named settings' keys
        (newest first, each one's current key before its retired ones) until it turns up."""
        master = self._known.get(name)
        if master is not None:
            return master
        for source in reversed(self._named()):
            for candidate in (source.master_key_bytes, *source.retired_master_key_bytes):
                fingerprint = crypto.fingerprint(candidate)
                self._known[fingerprint] = candidate
                if fingerprint == name:
                    return candidate
        return None

    def retired(self) -> list[str]:
        """The fingerprints of the retired master keys of the current settings."""
        return [crypto.fingerprint(key) for key in self._named()[-1].retired_master_key_bytes]

    def stores(self) -> list[KeyStore]:
        """The key stores of the named settings, newest first (the first creates shares)."""
        stores: list[KeyStore] = []
        seen: set[str] = set()
        for source in reversed(self._named()):
            path = source.keystore_path.resolve()
            if str(path) not in seen:
                seen.add(str(path))
                stores.append(DirectoryKeyStore(path))
        return stores


_masters = _MasterKeys()
_data_keys: dict[tuple[str, int], tuple[bytes, AESGCM]] = {}
"""(tenant, version) → (the wrapped key as stored, the unwrapped key)."""
_shares: dict[str, bytes] = {}
"""tenant → its key share, as last read from (or written to) the key store."""


def use_master_key(settings: Settings) -> None:
    """New data keys are wrapped under these settings' master key (read when first needed)."""
    _masters.use(settings)


def key_stores() -> list[KeyStore]:
    """The key stores this process knows, the one that creates shares first."""
    return _masters.stores()


def forget(tenant_id: str) -> None:
    """Drop the tenant's unwrapped keys and its share from this process's cache."""
    for cached in [cached for cached in _data_keys if cached[0] == tenant_id]:
        _data_keys.pop(cached, None)
    _shares.pop(tenant_id, None)


def stored_share(tenant_id: str) -> bytes | None:
    """The tenant's share from the key stores (not the cache), cached. Raises
    DataKeyUnavailable for an unreadable share file."""
    for store in key_stores():
        try:
            share = store.get(tenant_id)
        except UnreadableShare as error:
            raise DataKeyUnavailable(f"tenant {tenant_id}: {error}") from error
        if share is not None:
            _shares[tenant_id] = share
            return share
    _shares.pop(tenant_id, None)
    return None


def _unwrap(tenant_id: str, version: int, row: Record) -> bytes:
    """The data key in `row`, unwrapped under its master key (and the tenant's share for
    scheme 2; a cached share that fails is read again once). Raises DataKeyUnavailable."""
    master = _masters.find(row["master_key"])
    if master is None:
        raise DataKeyUnavailable(
            f"tenant {tenant_id}: data key {version} is wrapped by master key "
            f"{row['master_key']}, which this process does not have"
        )
    wrapped: bytes = row["wrapped_key"]

    def unwrap(share: bytes | None) -> bytes:
        return crypto.unwrap(
            master, tenant_id=tenant_id, version=version, wrapped=wrapped, share=share
        )

    share = None
    if row["scheme"] != crypto.MASTER_ONLY:
        cached = _shares.get(tenant_id)
        if cached is not None:
            try:
                return unwrap(cached)
            except crypto.CannotOpen:
                pass  # a share replaced since (the tenant was created again): read it again
        share = stored_share(tenant_id)
        if share is None:
            raise DataKeyUnavailable(
                f"tenant {tenant_id}: data key {version} needs the tenant's key share, "
                "which is gone"
            )
    try:
        return unwrap(share)
    except crypto.CannotOpen as error:
        raise DataKeyUnavailable(
            f"tenant {tenant_id}: data key {version} does not unwrap"
        ) from error


def _unwrapped(tenant_id: str, version: int, row: Record) -> AESGCM:
    wrapped: bytes = row["wrapped_key"]
    cached = _data_keys.get((tenant_id, version))
    if cached is not None and cached[0] == wrapped:
        return cached[1]
    key = AESGCM(_unwrap(tenant_id, version, row))
    _data_keys[(tenant_id, version)] = (wrapped, key)
    return key


async def share_for_wrapping(db: Connection, *, tenant_id: str) -> bytes:
    """The share to wrap a new or rewrapped key of the tenant with, in `db` (bound to the
    tenant), holding the tenant's share lock until `db` ends.

    While a committed key of the tenant uses its share, that share; otherwise a new one,
    replacing any share left behind (by a rolled-back creation, or a deleted tenant of the
    same id whose share was not destroyed yet), so a tenant created again never takes
    over its predecessor's share. Raises DataKeyUnavailable when the share in use is gone.
    """
    await repository.lock_share(db, tenant_id=tenant_id)
    if await repository.has_share_keys(db, tenant_id=tenant_id):
        share = stored_share(tenant_id)
        if share is None:
            raise DataKeyUnavailable(f"tenant {tenant_id}: its key share is gone")
        return share
    share = key_stores()[0].create(tenant_id)
    _shares[tenant_id] = share
    return share


async def add_key(db: Connection, *, tenant_id: str, version: int) -> Record | None:
    """Store a new random data key `version` for the tenant, wrapped under scheme 2 with
    the current master key, in `db` (bound to the tenant). None if that version exists."""
    share = await share_for_wrapping(db, tenant_id=tenant_id)
    name, master = _masters.current()
    return await repository.insert_key(
        db,
        tenant_id=tenant_id,
        version=version,
        wrapped_key=crypto.wrap(
            master,
            tenant_id=tenant_id,
            version=version,
            data_key=crypto.new_data_key(),
            share=share,
        ),
        master_key=name,
        scheme=crypto.MASTER_AND_SHARE,
    )


def current_master_key() -> str:
    """The fingerprint of the master key new data keys are wrapped under."""
    return _masters.current()[0]


def retired_master_keys() -> list[str]:
    return _masters.retired()


def unwrap_key(tenant_id: str, row: Record) -> bytes:
    """The raw data key of a `tenant_data_key` row (for rewrapping). Raises
    DataKeyUnavailable."""
    return _unwrap(tenant_id, row["version"], row)


def wrap_key(tenant_id: str, *, version: int, data_key: bytes, share: bytes) -> tuple[bytes, str]:
    """(wrapped, master fingerprint): `data_key` wrapped under the current master key and
    `share` (scheme 2)."""
    name, master = _masters.current()
    wrapped = crypto.wrap(
        master, tenant_id=tenant_id, version=version, data_key=data_key, share=share
    )
    return wrapped, name


@dataclass(frozen=True)
class Sealer:
    """Seals values under a tenant's current data key (no database access)."""

    tenant_id: str
    version: int
    key: AESGCM

    def seal_bytes(self, field: str, plaintext: bytes) -> bytes:
        return crypto.seal(
            self.key,
            version=self.version,
            tenant_id=self.tenant_id,
            field=field,
            plaintext=plaintext,
        )

    def seal_json(self, field: str, value: Any) -> bytes:
        """`value` as compact JSON, sealed."""
        return self.seal_bytes(field, json.dumps(value, separators=(",", ":")).encode())


async def sealer(db: Connection, *, tenant_id: str) -> Sealer:
    """A sealer under the tenant's current data key, creating the tenant's first key if it
    has none (so `db` must be a writable transaction bound to the tenant)."""
    row = await repository.current_key(db, tenant_id=tenant_id)
    if row is None:
        row = await add_key(db, tenant_id=tenant_id, version=1)
        if row is None:
            row = await repository.current_key(db, tenant_id=tenant_id)
            assert row is not None
    version: int = row["version"]
    return Sealer(tenant_id, version, _unwrapped(tenant_id, version, row))


def is_sealed(value: object) -> bool:
    return isinstance(value, bytes) and crypto.is_sealed(value)


async def open_bytes(db: Connection, *, tenant_id: str, field: str, sealed: bytes) -> bytes:
    """The plaintext of a value sealed for the tenant's `field`. Raises DataKeyUnavailable."""
    try:
        version = crypto.key_version(sealed)
    except crypto.NotSealed as error:
        raise DataKeyUnavailable(f"tenant {tenant_id}: {field} holds no sealed value") from error
    cached = _data_keys.get((tenant_id, version))
    if cached is not None:
        try:
            return crypto.open_sealed(cached[1], tenant_id=tenant_id, field=field, sealed=sealed)
        except crypto.CannotOpen:
            _data_keys.pop((tenant_id, version), None)
    row = await repository.key(db, tenant_id=tenant_id, version=version)
    if row is None:
        raise DataKeyUnavailable(f"tenant {tenant_id}: data key {version} is gone")
    key = _unwrapped(tenant_id, version, row)
    try:
        return crypto.open_sealed(key, tenant_id=tenant_id, field=field, sealed=sealed)
    except crypto.CannotOpen as error:
        raise DataKeyUnavailable(f"tenant {tenant_id}: {field} does not open") from error


async def open_json(db: Connection, *, tenant_id: str, field: str, sealed: bytes) -> Any:
    """The JSON value sealed with `Sealer.seal_json`. Raises DataKeyUnavailable."""
    return json.loads(await open_bytes(db, tenant_id=tenant_id, field=field, sealed=sealed))


def destroy_share(tenant_id: str) -> bool:
    """Destroy the tenant's key share in every key store and forget its keys here;
    whether there was one."""
    destroyed = False
    for store in key_stores():
        destroyed = store.destroy(tenant_id) or destroyed
    forget(tenant_id)
    return destroyed


async def destroy_keys(db: Connection, *, tenant_id: str) -> int:
    """Delete the tenant's data keys (in `db`, bound to the tenant) and forget them here,
    and destroy its key share once the current unit of work (`kit.recording`) has
    committed: every value sealed under its scheme-2 keys becomes unreadable, in the
    database and in every backup of it, taken before or after. If the transaction rolls
    back, keys and share stay. Outside a unit of work nothing tells when the transaction
    commits: the share stays until `shelfkeeper keys prune`. Returns how many keys were
    deleted."""
    destroyed = await repository.delete_keys(db, tenant_id=tenant_id)
    forget(tenant_id)
    if recording.current() is None:
        logger.warning(
            "tenant %s: keys deleted outside a unit of work; its key share stays until "
            "`shelfkeeper keys prune`",
            tenant_id,
        )
    recording.after_commit(lambda: _destroy_share_after_commit(tenant_id))
    return destroyed


def _destroy_share_after_commit(tenant_id: str) -> None:
    destroy_share(tenant_id)
    logger.info("tenant %s: key share destroyed", tenant_id)


IDEMPOTENT_RESPONSE_FIELD = "idempotency_key.response_body"


class IdempotentResponses:
    """Seals the responses stored for `Idempotency-Key` (`kit.idempotency.ResponseSealer`):
    an order's response holds its customer's data. Platform responses (tenant
    administration, no personal data) have no tenant key and are stored as they are."""

    async def seal(self, connection: Connection, *, scope: str, body: bytes) -> bytes:
        if scope == PLATFORM_SCOPE:
            return body
        return (await sealer(connection, tenant_id=scope)).seal_bytes(
            IDEMPOTENT_RESPONSE_FIELD, body
        )

    async def open(self, connection: Connection, *, scope: str, stored: bytes) -> bytes:
        if scope == PLATFORM_SCOPE or not crypto.is_sealed(stored):
            return stored
        return await open_bytes(
            connection, tenant_id=scope, field=IDEMPOTENT_RESPONSE_FIELD, sealed=stored
        )
