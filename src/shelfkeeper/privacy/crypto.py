"""Envelope encryption: AES-256-GCM under per-tenant data keys, wrapped by the master key.

Pure functions, no database. Each tenant has random 256-bit data keys (one per `version`);
a data key is stored only wrapped: encrypted with AES-256-GCM under a key-encryption key
that HKDF-SHA256 derives from the master key and the tenant id, with the tenant and the
version as associated data (a wrapped key copied to another tenant or version does not
unwrap). Two wrapping schemes:

- scheme 1 (`MASTER_ONLY`): KEK = HKDF(master, info = purpose v1 + tenant id);
- scheme 2 (`MASTER_AND_SHARE`): KEK = HKDF(master, salt = the tenant's key share,
  info = purpose v2 + tenant id). The share is 32 random bytes kept outside the database
  (`privacy.keystore`): destroying it makes the wrapped keys in every database backup
  useless, even with the master key.

A sealed value is `0x01 | version (4 bytes, big-endian) | nonce (12 bytes) | ciphertext and
tag`. Its associated data names the tenant and the field (`table.column`), so a ciphertext
moved to another tenant's row or another column fails to open instead of being misread.
Nonces are random: at 2^32 values per key the collision probability stays below 2^-32
(NIST SP 800-38D); rotating to a new version resets the count.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import struct

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

FORMAT = 1
HEADER = struct.Struct(">BI")
NONCE_BYTES = 12
KEY_BYTES = 32
WRAP_PURPOSE = b"shelfkeeper/data-key-wrap/v1/"
SHARE_WRAP_PURPOSE = b"shelfkeeper/data-key-wrap/v2/"
SHARE_BYTES = 32
MASTER_ONLY = 1
MASTER_AND_SHARE = 2
FINGERPRINT_PURPOSE = b"shelfkeeper/master-key-fingerprint/v1"
FIELD_PURPOSE = b"shelfkeeper/field/v1"


class NotSealed(ValueError):
    """The bytes are not a sealed value of a format this code reads."""


class CannotOpen(ValueError):
    """Authentication failed: wrong key (another master key, a destroyed data key), another
    tenant's or field's ciphertext, or altered bytes."""


def new_data_key() -> bytes:
    return AESGCM.generate_key(bit_length=KEY_BYTES * 8)


def fingerprint(master: bytes) -> str:
    """A public name for a master key (16 hex digits of an HMAC under it): stored next to
    each wrapped key so the service knows which master key unwraps it, revealing nothing
    about the key."""
    return hmac.new(master, FINGERPRINT_PURPOSE, hashlib.sha256).hexdigest()[:16]


def new_share() -> bytes:
    return os.urandom(SHARE_BYTES)


def scheme_of(share: bytes | None) -> int:
    return MASTER_ONLY if share is None else MASTER_AND_SHARE


def _key_encryption_key(master: bytes, tenant_id: str, share: bytes | None) -> AESGCM:
    """Scheme 1 without a share, scheme 2 with one."""
    if share is not None and len(share) != SHARE_BYTES:
        raise CannotOpen("a key share is 32 bytes")
    derived = HKDF(
        algorithm=hashes.SHA256(),
        length=KEY_BYTES,
        salt=share,
        info=(WRAP_PURPOSE if share is None else SHARE_WRAP_PURPOSE) + tenant_id.encode(),
    ).derive(master)
    return AESGCM(derived)


def _wrap_context(tenant_id: str, version: int) -> bytes:
    return tenant_id.encode() + b"\x00" + str(version).encode()


def wrap(
    master: bytes,
    *,
    tenant_id: str,
    version: int,
    data_key: bytes,
    share: bytes | None = None,
) -> bytes:
    """`nonce | AES-GCM(KEK, data_key)`, bound to the tenant and the version; scheme 2
    when a share is given, else scheme 1."""
    nonce = os.urandom(NONCE_BYTES)
    sealed = _key_encryption_key(master, tenant_id, share).encrypt(
        nonce, data_key, _wrap_context(tenant_id, version)
    )
    return nonce + sealed


def unwrap(
    master: bytes,
    *,
    tenant_id: str,
    version: int,
    wrapped: bytes,
    share: bytes | None = None,
) -> bytes:
    """The data key. Raises CannotOpen (another master key, share, tenant or version;
    altered)."""
    try:
        return _key_encryption_key(master, tenant_id, share).decrypt(
            wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], _wrap_context(tenant_id, version)
        )
    except InvalidTag as error:
        raise CannotOpen("the data key does not unwrap under this master key and share") from error


def associated_data(tenant_id: str, field: str) -> bytes:
    return FIELD_PURPOSE + b"\x00" + tenant_id.encode() + b"\x00" + field.encode()


def seal(key: AESGCM, *, version: int, tenant_id: str, field: str, plaintext: bytes) -> bytes:
    nonce = os.urandom(NONCE_BYTES)
    ciphertext = key.encrypt(nonce, plaintext, associated_data(tenant_id, field))
    return HEADER.pack(FORMAT, version) + nonce + ciphertext


def is_sealed(value: bytes) -> bool:
    return len(value) > HEADER.size + NONCE_BYTES and value[0] == FORMAT


def key_version(sealed: bytes) -> int:
    """The data key version a sealed value names. Raises NotSealed."""
    if not is_sealed(sealed):
        raise NotSealed("not a sealed value")
    _, version = HEADER.unpack_from(sealed)
    return int(version)


def open_sealed(key: AESGCM, *, tenant_id: str, field: str, sealed: bytes) -> bytes:
    """The plaintext. Raises NotSealed or CannotOpen."""
    if not is_sealed(sealed):
        raise NotSealed("not a sealed value")
    start = HEADER.size
    nonce = sealed[start : start + NONCE_BYTES]
    try:
        return key.decrypt(nonce, sealed[start + NONCE_BYTES :], associated_data(tenant_id, field))
    except InvalidTag as error:
        raise CannotOpen("the value does not open under this key") from error
