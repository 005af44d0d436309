"""Tenants' key shares, kept outside PostgreSQL.

A key share is 32 random bytes per tenant that, with the master key, derives the key that
wraps the tenant's data keys (scheme 2, `privacy.crypto`). It is never stored in the
database, so a database backup holds no share: once the share is destroyed (tenant
offboarding), the wrapped keys in every backup are useless, whatever else survives.

`KeyStore` is the interface (a KMS could stand in); `DirectoryKeyStore` keeps one file per
tenant in a directory (`Settings.keystore_path`): named by the SHA-256 of the tenant id (so
no tenant id can name a path), mode 0600, holding the tenant id and the share as JSON.
Writes are atomic and durable: a private temporary file, fsync, rename over the old file,
fsync of the directory; destroying unlinks the file and fsyncs the directory.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import secrets
from pathlib import Path
from typing import Protocol

from shelfkeeper.privacy import crypto

SUFFIX = ".share"


class UnreadableShare(RuntimeError):
    """A share file exists but does not hold a share for that tenant (altered or torn)."""


class KeyStore(Protocol):
    """Where tenants' key shares live. Every method is synchronous and durable on return."""

    def get(self, tenant_id: str) -> bytes | None:
        """The tenant's share, None when it has none. Raises UnreadableShare."""
        ...

    def create(self, tenant_id: str) -> bytes:
        """Make a new random share the tenant's, replacing any it had; return it."""
        ...

    def destroy(self, tenant_id: str) -> bool:
        """Destroy the tenant's share; False when it had none."""
        ...

    def list(self) -> list[str]:
        """The ids of the tenants that have a share."""
        ...


class DirectoryKeyStore:
    """One file per tenant in `directory` (created 0700 on first write)."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def __repr__(self) -> str:
        return f"DirectoryKeyStore({str(self.directory)!r})"

    def path(self, tenant_id: str) -> Path:
        return self.directory / (hashlib.sha256(tenant_id.encode()).hexdigest() + SUFFIX)

    def _read(self, path: Path) -> tuple[str, bytes]:
        try:
            document = json.loads(path.read_bytes())
            share = base64.b64decode(document["share"], validate=True)
            tenant_id = document["tenant_id"]
        except (ValueError, KeyError, TypeError) as error:
            raise UnreadableShare(f"{path} holds no key share") from error
        if not isinstance(tenant_id, str) or len(share) != crypto.SHARE_BYTES:
            raise UnreadableShare(f"{path} holds no key share")
        return tenant_id, share

    def get(self, tenant_id: str) -> bytes | None:
        path = self.path(tenant_id)
        try:
            stored_tenant, share = self._read(path)
        except FileNotFoundError:
            return None
        if stored_tenant != tenant_id:
            raise UnreadableShare(f"{path} holds another tenant's share")
        return share

    def create(self, tenant_id: str) -> bytes:
        share = crypto.new_share()
        document = json.dumps(
            {"tenant_id": tenant_id, "share": base64.b64encode(share).decode()}
        ).encode()
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.path(tenant_id)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            try:
                os.write(fd, document)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, path)
        except BaseException:
            temporary.unlink(missing_ok=True)
            raise
        self._sync_directory()
        return share

    def destroy(self, tenant_id: str) -> bool:
        try:
            self.path(tenant_id).unlink()
        except FileNotFoundError:
            return False
        self._sync_directory()
        return True

    def list(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        tenants: list[str] = []
        for path in sorted(self.directory.glob("*" + SUFFIX)):
            try:
                tenant_id, _ = self._read(path)
            except (FileNotFoundError, UnreadableShare):
                continue  # destroyed meanwhile, or not ours
            if path == self.path(tenant_id):
                tenants.append(tenant_id)
        return tenants

    def _sync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
