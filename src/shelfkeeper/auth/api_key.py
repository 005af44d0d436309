"""API key format: `sk_<tenant>_<secret>`, stored as a SHA-256 hash.

The tenant is part of the key so the key can be looked up under row-level security with
its own tenant bound (no cross-tenant lookup exists). Tenant ids cannot contain `_`, so the
first `_` after `sk_` ends the tenant. The secret carries 256 bits of entropy, which is why
a fast hash is the right one here (as for GitHub's and Stripe's tokens): a slow password
hash would add latency to every request without adding security.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass

PREFIX = "sk_"
SHOWN_PREFIX_LENGTH = 8
TENANT_PATTERN = re.compile(r"[a-z0-9][a-z0-9-]{1,62}")
SECRET_PATTERN = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass(frozen=True)
class GeneratedKey:
    key: str
    hash: str
    shown_prefix: str


@dataclass(frozen=True)
class PresentedKey:
    tenant_id: str
    hash: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def generate(tenant_id: str) -> GeneratedKey:
    key = f"{PREFIX}{tenant_id}_{secrets.token_urlsafe(32)}"
    shown = key[: len(PREFIX) + len(tenant_id) + 1 + SHOWN_PREFIX_LENGTH]
    return GeneratedKey(key=key, hash=hash_key(key), shown_prefix=shown)


def looks_like_key(token: str) -> bool:
    return token.startswith(PREFIX)


def parse(token: str) -> PresentedKey | None:
    """The tenant and hash of a presented key, or None when it is not shaped like one.

    The patterns must match whole strings: `$` would also accept a trailing newline.
    """
    if not looks_like_key(token):
        return None
    tenant_id, _, secret = token.removeprefix(PREFIX).partition("_")
    if not TENANT_PATTERN.fullmatch(tenant_id) or not SECRET_PATTERN.fullmatch(secret):
        return None
    return PresentedKey(tenant_id=tenant_id, hash=hash_key(token))
