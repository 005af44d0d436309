"""Envelope encryption without a database: sealing, wrapping, and what refuses to open."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from shelfkeeper.privacy import crypto

MASTER = b"master-key-for-tests-0123456789abcdef"
OTHER_MASTER = b"another-master-key-0123456789abcdef"


def sealed(plaintext: bytes = b'{"email":"ada@example.com"}') -> tuple[AESGCM, bytes]:
    key = AESGCM(crypto.new_data_key())
    return key, crypto.seal(
        key, version=7, tenant_id="acme", field="sales_order.customer", plaintext=plaintext
    )


def test_a_sealed_value_opens_to_its_plaintext_and_names_its_key_version() -> None:
    key, value = sealed()

    assert crypto.is_sealed(value)
    assert crypto.key_version(value) == 7
    assert b"ada@example.com" not in value
    opened = crypto.open_sealed(key, tenant_id="acme", field="sales_order.customer", sealed=value)
    assert opened == b'{"email":"ada@example.com"}'


def test_sealing_twice_gives_different_ciphertexts() -> None:
    key, first = sealed()
    second = crypto.seal(
        key,
        version=7,
        tenant_id="acme",
        field="sales_order.customer",
        plaintext=b'{"email":"ada@example.com"}',
    )

    assert first != second
    assert first[5:17] != second[5:17]  # fresh nonces


@pytest.mark.parametrize(
    ("tenant_id", "field"),
    [("other", "sales_order.customer"), ("acme", "sales_order.shipping_address")],
)
def test_a_value_moved_to_another_tenant_or_column_does_not_open(
    tenant_id: str, field: str
) -> None:
    key, value = sealed()

    with pytest.raises(crypto.CannotOpen):
        crypto.open_sealed(key, tenant_id=tenant_id, field=field, sealed=value)


def test_an_altered_value_or_another_key_does_not_open() -> None:
    key, value = sealed()
    altered = value[:-1] + bytes([value[-1] ^ 1])

    with pytest.raises(crypto.CannotOpen):
        crypto.open_sealed(key, tenant_id="acme", field="sales_order.customer", sealed=altered)
    with pytest.raises(crypto.CannotOpen):
        crypto.open_sealed(
            AESGCM(crypto.new_data_key()),
            tenant_id="acme",
            field="sales_order.customer",
            sealed=value,
        )
    with pytest.raises(crypto.NotSealed):
        crypto.key_version(b'{"email": "ada@example.com"}')


def test_a_data_key_unwraps_only_under_its_master_tenant_and_version() -> None:
    data_key = crypto.new_data_key()
    wrapped = crypto.wrap(MASTER, tenant_id="acme", version=1, data_key=data_key)

    assert data_key not in wrapped
    assert crypto.unwrap(MASTER, tenant_id="acme", version=1, wrapped=wrapped) == data_key
    for master, tenant_id, version in [
        (OTHER_MASTER, "acme", 1),
        (MASTER, "other", 1),
        (MASTER, "acme", 2),
    ]:
        with pytest.raises(crypto.CannotOpen):
            crypto.unwrap(master, tenant_id=tenant_id, version=version, wrapped=wrapped)


def test_a_master_key_fingerprint_is_stable_and_tells_keys_apart() -> None:
    assert crypto.fingerprint(MASTER) == crypto.fingerprint(MASTER)
    assert crypto.fingerprint(MASTER) != crypto.fingerprint(OTHER_MASTER)
    assert len(crypto.fingerprint(MASTER)) == 16
    assert MASTER.hex()[:16] != crypto.fingerprint(MASTER)
