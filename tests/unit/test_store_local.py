"""The file system on the local-directory backend (fast; no server)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from batchx.store import IntegrityError, Store, StoreError, open_store
from batchx.store.local import LocalBackend
from tests.store_contract import Reopen, StoreContract, corrupted_download_leaves_no_file


@pytest.fixture
def reopen(tmp_path: Path) -> Reopen:
    return lambda: open_store(f"file://{tmp_path / 'store'}", lease_wait=0.5)


class TestLocalStore(StoreContract):
    """The backend contract on a local directory."""


def test_flipped_byte_is_an_integrity_error(store: Store, tmp_path: Path) -> None:
    entry = store.env("dev").put_bytes("victim", b"precious bytes" * 1000).entry
    assert isinstance(store.backend, LocalBackend)
    blob = store.backend.blob_path(entry.digest)
    os.chmod(blob, 0o644)
    data = bytearray(blob.read_bytes())
    data[100] ^= 0x01
    blob.write_bytes(bytes(data))
    with pytest.raises(IntegrityError):
        store.env("dev").read_bytes("victim")
    out = tmp_path / "out"
    out.mkdir()
    corrupted_download_leaves_no_file(store, out, entry.digest)


@pytest.mark.parametrize("bad", ["../x", "/abs", "", "a//b", "a/./b", "a\\b"])
def test_bad_paths_are_refused(store: Store, bad: str) -> None:
    with pytest.raises(StoreError, match="invalid bx:// path"):
        store.env("dev").put_bytes(bad, b"x")


def test_bad_environment_name_is_refused(store: Store) -> None:
    with pytest.raises(StoreError, match="invalid environment"):
        store.env("../other")


def test_a_path_may_be_a_file_and_a_folder(store: Store) -> None:
    files = store.env("dev")
    files.put_bytes("a", b"file")
    files.put_bytes("a/b", b"inside")
    assert files.read_bytes("a") == b"file"
    assert files.read_bytes("a/b") == b"inside"
