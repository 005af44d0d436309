"""The API key format `sk_<tenant>_<secret>`: generation, parsing and hashing (no database)."""

from __future__ import annotations

import hashlib
import re

import pytest

from shelfkeeper.auth import api_key

SECRET = "A" * 21 + "b_-9" + "z" * 18
"""43 characters of the URL-safe alphabet, like `secrets.token_urlsafe(32)`."""


def test_generated_key_has_tenant_secret_hash_and_prefix() -> None:
    generated = api_key.generate("acme-co")

    assert re.fullmatch(r"sk_acme-co_[A-Za-z0-9_-]{43}", generated.key)
    assert generated.hash == hashlib.sha256(generated.key.encode()).hexdigest()
    assert generated.shown_prefix == generated.key[: len("sk_acme-co_") + 8]
    assert len(generated.shown_prefix) == 19


def test_generated_keys_differ() -> None:
    keys = {api_key.generate("acme").key for _ in range(50)}

    assert len(keys) == 50


def test_generated_key_parses_back_to_its_tenant_and_hash() -> None:
    generated = api_key.generate("acme")

    presented = api_key.parse(generated.key)

    assert presented == api_key.PresentedKey(tenant_id="acme", hash=generated.hash)


def test_secret_containing_underscores_parses() -> None:
    # the tenant cannot contain `_`, so only the first `_` after `sk_` ends it
    key = f"sk_acme_{SECRET}"

    presented = api_key.parse(key)

    assert presented == api_key.PresentedKey(tenant_id="acme", hash=api_key.hash_key(key))


@pytest.mark.parametrize(
    "token",
    [
        "",
        "sk_",
        "sk_acme",
        "sk_acme_",
        f"sk__{SECRET}",
        f"sk_a_{SECRET}",
        f"sk_Acme_{SECRET}",
        f"sk_-acme_{SECRET}",
        f"sk_ac.me_{SECRET}",
        f"sk_{'a' * 64}_{SECRET}",
        f"sk_acme_{SECRET[:-1]}",
        f"sk_acme_{SECRET}x",
        f"sk_acme_{SECRET[:-1]}+",
        f"sk_acme_{SECRET[:-1]}=",
        f"sk_acme_{SECRET}\n",
        f"sk_acme\n_{SECRET}",
        f"sk_acme_{SECRET} ",
        f"acme_{SECRET}",
        f"pk_acme_{SECRET}",
        f"SK_acme_{SECRET}",
    ],
)
def test_malformed_keys_do_not_parse(token: str) -> None:
    assert api_key.parse(token) is None


def test_longest_tenant_id_parses() -> None:
    tenant_id = "a" * 63

    presented = api_key.parse(f"sk_{tenant_id}_{SECRET}")

    assert presented is not None
    assert presented.tenant_id == tenant_id


@pytest.mark.parametrize(
    ("token", "expected"),
    [("sk_acme_x", True), ("sk_", True), ("eyJhbGciOiJIUzI1NiJ9.e30.sig", False), ("", False)],
)
def test_looks_like_key(token: str, expected: bool) -> None:
    assert api_key.looks_like_key(token) is expected


def test_hash_is_sha256_hex_of_the_whole_key() -> None:
    assert (
        api_key.hash_key("sk_acme_secret")
        == "0c5f75783cce63c0948d0ae6406c780f7387f9a48f57340efa472b9fe3901dcc"
    )
