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
unwraps each key with the right one.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shelfkeeper.config import Settings
from shelfkeeper.db.database import PLATFORM_SCOPE, Connection, Record
from shelfkeeper.privacy import crypto, repository


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
        (newest first) until it turns up."""
        master = self._known.get(name)
        if master is not None:
            return master
        for source in reversed(self._named()):
            candidate = source.master_key_bytes
            fingerprint = crypto.fingerprint(candidate)
            self._known[fingerprint] = candidate
            if fingerprint == name:
                return candidate
        return None


_masters = _MasterKeys()
_data_keys: dict[tuple[str, int], tuple[bytes, AESGCM]] = {}
"""(tenant, version) → (the wrapped key as stored, the unwrapped key)."""


def use_master_key(settings: Settings) -> None:
    """New data keys are wrapped under these settings' master key (read when first needed)."""
    _masters.use(settings)


def forget(tenant_id: str) -> None:
    """Drop the tenant's unwrapped keys from this process's cache."""
    for cached in [cached for cached in _data_keys if cached[0] == tenant_id]:
        _data_keys.pop(cached, None)


def _unwrapped(tenant_id: str, version: int, row: Record) -> AESGCM:
    wrapped: bytes = row["wrapped_key"]
    cached = _data_keys.get((tenant_id, version))
    if cached is not None and cached[0] == wrapped:
        return cached[1]
    master = _masters.find(row["master_key"])
    if master is None:
        raise DataKeyUnavailable(
            f"tenant {tenant_id}: data key {version} is wrapped by master key "
            f"{row['master_key']}, which this process does not have"
        )
    try:
        data_key = crypto.unwrap(master, tenant_id=tenant_id, version=version, wrapped=wrapped)
    except crypto.CannotOpen as error:
        raise DataKeyUnavailable(
            f"tenant {tenant_id}: data key {version} does not unwrap"
        ) from error
    key = AESGCM(data_key)
    _data_keys[(tenant_id, version)] = (wrapped, key)
    return key


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
        name, master = _masters.current()
        row = await repository.insert_key(
            db,
            tenant_id=tenant_id,
            version=1,
            wrapped_key=crypto.wrap(
                master, tenant_id=tenant_id, version=1, data_key=crypto.new_data_key()
            ),
            master_key=name,
        )
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


async def destroy_keys(db: Connection, *, tenant_id: str) -> int:
    """Delete the tenant's data keys (in `db`, bound to the tenant) and forget them here:
    every value sealed under them becomes unreadable, in the database and in its backups
    taken from now on. Returns how many keys were destroyed."""
    destroyed = await repository.delete_keys(db, tenant_id=tenant_id)
    forget(tenant_id)
    return destroyed


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
