"""The customer-email blind index, without a database."""

from __future__ import annotations

import hashlib
import hmac
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from shelfkeeper.config import Settings
from shelfkeeper.order.blind_index import PURPOSE, BlindIndex, for_settings

MASTER_KEY_VARIABLE = "SHELFKEEPER_MASTER_KEY"


def master_key(data_dir: Path) -> bytes:
    return Settings(database_url="postgresql://unused", data_dir=data_dir).master_key_bytes


def test_the_index_is_an_hmac_of_the_normalised_email_under_a_key_per_tenant() -> None:
    index = BlindIndex(b"master")
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=PURPOSE + b"acme").derive(
        b"master"
    )

    value = index.email("acme", "  Ada@Example.COM\n")

    assert value == hmac.new(key, b"ada@example.com", hashlib.sha256).hexdigest()
    assert value == index.email("acme", "ada@example.com")
    assert value != index.email("globex", "ada@example.com")
    assert value != BlindIndex(b"another master").email("acme", "ada@example.com")
    assert value != index.email("acme", "ada@example.org")


def test_the_master_key_comes_from_the_environment_or_is_generated_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(MASTER_KEY_VARIABLE, raising=False)

    generated = master_key(tmp_path)

    path = tmp_path / "master-key"
    assert generated == path.read_text().strip().encode()
    assert len(generated) >= 43
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert master_key(tmp_path) == generated

    monkeypatch.setenv(MASTER_KEY_VARIABLE, "configured-master-key")
    assert master_key(tmp_path) == b"configured-master-key"
    settings = Settings(database_url="postgresql://unused", data_dir=tmp_path)
    assert for_settings(settings).email("acme", "a@b.c") == BlindIndex(
        b"configured-master-key"
    ).email("acme", "a@b.c")
    monkeypatch.delenv(MASTER_KEY_VARIABLE)
    settings = Settings(database_url="postgresql://unused", data_dir=tmp_path)
    assert for_settings(settings).email("acme", "a@b.c") == BlindIndex(generated).email(
        "acme", "a@b.c"
    )
