"""Key shares in a directory: one private file per tenant, written atomically, listed back;
and scheme-2 wrapping, which needs the master key and the share together."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest

from shelfkeeper.config import Settings
from shelfkeeper.privacy import crypto
from shelfkeeper.privacy.keystore import DirectoryKeyStore, UnreadableShare

MASTER = b"keystore-test-master-key"


def test_a_share_is_a_private_file_named_by_the_tenant_ids_hash(tmp_path: Path) -> None:
    store = DirectoryKeyStore(tmp_path / "keystore")

    share = store.create("../acme")

    path = store.path("../acme")
    assert path.parent == tmp_path / "keystore"
    assert path.name == hashlib.sha256(b"../acme").hexdigest() + ".share"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(share) == crypto.SHARE_BYTES
    assert store.get("../acme") == share
    assert store.get("other") is None
    assert [entry.name for entry in path.parent.iterdir()] == [path.name]  # no temporary left


def test_create_replaces_destroy_removes_list_names_the_tenants(tmp_path: Path) -> None:
    store = DirectoryKeyStore(tmp_path)
    first = store.create("acme")
    store.create("globex")
    second = store.create("acme")
    (tmp_path / "notes.txt").write_text("not a share")

    listed = store.list()
    destroyed = store.destroy("globex")
    destroyed_again = store.destroy("globex")

    assert first != second
    assert store.get("acme") == second
    assert listed == sorted(["acme", "globex"], key=lambda t: store.path(t).name)
    assert (destroyed, destroyed_again) == (True, False)
    assert store.list() == ["acme"]
    assert DirectoryKeyStore(tmp_path / "missing").list() == []


def test_an_altered_or_moved_share_file_is_refused(tmp_path: Path) -> None:
    store = DirectoryKeyStore(tmp_path)
    store.create("acme")
    store.path("acme").rename(store.path("globex"))  # acme's share under globex's name
    store.create("initech")
    store.path("initech").write_text('{"tenant_id": "initech", "share": "c2hvcnQ="}')

    with pytest.raises(UnreadableShare):
        store.get("globex")
    with pytest.raises(UnreadableShare):
        store.get("initech")
    assert store.list() == []


def test_scheme_2_needs_the_master_key_and_the_share() -> None:
    share, other_share = crypto.new_share(), crypto.new_share()
    data_key = crypto.new_data_key()
    wrapped = crypto.wrap(MASTER, tenant_id="acme", version=1, data_key=data_key, share=share)

    assert crypto.unwrap(MASTER, tenant_id="acme", version=1, wrapped=wrapped, share=share) == (
        data_key
    )
    for master, each_share in ((MASTER, other_share), (MASTER, None), (b"other", share)):
        with pytest.raises(crypto.CannotOpen):
            crypto.unwrap(master, tenant_id="acme", version=1, wrapped=wrapped, share=each_share)
    scheme_1 = crypto.wrap(MASTER, tenant_id="acme", version=1, data_key=data_key)
    with pytest.raises(crypto.CannotOpen):
        crypto.unwrap(MASTER, tenant_id="acme", version=1, wrapped=scheme_1, share=share)


def test_settings_keystore_and_retired_master_keys(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHELFKEEPER_RETIRED_MASTER_KEYS", " old-one ,old-two,, ")
    monkeypatch.delenv("SHELFKEEPER_KEYSTORE_DIR", raising=False)

    default = Settings(data_dir=tmp_path)
    monkeypatch.setenv("SHELFKEEPER_KEYSTORE_DIR", str(tmp_path / "elsewhere"))
    configured = Settings(data_dir=tmp_path)

    assert default.keystore_path == tmp_path / "keystore"
    assert configured.keystore_path == tmp_path / "elsewhere"
    assert default.retired_master_key_bytes == [b"old-one", b"old-two"]
    assert "old-one" not in repr(default)
