"""A blind index of customer emails: find orders by email without reading the email.

Customer data will be encrypted at rest (the privacy work), so `WHERE customer->>'email' =
$1` cannot stay. Instead each order stores `customer_email_index`, an HMAC-SHA256 of the
normalised email (surrounding space removed, lower-cased) under a key of the tenant's own,
and a search computes the same HMAC of the email it looks for. The index reveals which
orders share an email, nothing more; without the key it cannot be reversed or checked
against a guess, and two tenants' indexes of the same email differ.

The per-tenant keys are derived with HKDF-SHA256 from the service's master key
(`Settings.master_key_bytes`: `SHELFKEEPER_MASTER_KEY`, or else a key generated once
into `<data_dir>/master-key`, as the JWT secret is). Changing the master key changes
every index: rebuild them then.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shelfkeeper.config import Settings

PURPOSE = b"shelfkeeper/blind-index/customer-email/v1/"


def normalize_email(email: str) -> str:
    return email.strip().lower()


class BlindIndex:
    """Computes blind-index values under keys derived from one master key."""

    def __init__(self, master: bytes) -> None:
        self._master = master
        self._keys: dict[str, bytes] = {}

    def _key(self, tenant_id: str) -> bytes:
        key = self._keys.get(tenant_id)
        if key is None:
            key = HKDF(
                algorithm=hashes.SHA256(),
                length=32,
                salt=None,
                info=PURPOSE + tenant_id.encode(),
            ).derive(self._master)
            self._keys[tenant_id] = key
        return key

    def email(self, tenant_id: str, email: str) -> str:
        """The index value of `email` in `tenant_id` (64 hex digits)."""
        digest = hmac.new(
            self._key(tenant_id), normalize_email(email).encode(), hashlib.sha256
        ).hexdigest()
        return digest


@lru_cache(maxsize=16)
def _index(master: bytes) -> BlindIndex:
    return BlindIndex(master)


def for_settings(settings: Settings) -> BlindIndex:
    """The blind index of the service these settings describe (cached per master key)."""
    return _index(settings.master_key_bytes)
