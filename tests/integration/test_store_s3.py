"""The file system on the real S3 server (MinIO from the test bed)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from batchx.cli.app import app
from batchx.store import IntegrityError, Store, open_store
from batchx.store.s3 import S3Backend
from tests.store_contract import Reopen, StoreContract, corrupted_download_leaves_no_file

pytestmark = pytest.mark.s3
MiB = 1 << 20


@pytest.fixture
def store(s3_store_url: str) -> Iterator[Store]:
    with open_store(s3_store_url, lease_wait=0.5) as opened:
        yield opened


@pytest.fixture
def reopen(s3_store_url: str) -> Reopen:
    return lambda: open_store(s3_store_url, lease_wait=0.5)


class TestS3Store(StoreContract):
    """The backend contract on the real S3 server."""


def _flip_byte(client: Any, backend: S3Backend, digest: str, offset: int) -> None:
    key = backend.blob_object(digest)
    assert key is not None
    data = bytearray(client.get_object(Bucket=backend.bucket, Key=key)["Body"].read())
    data[offset] ^= 0x01
    client.put_object(Bucket=backend.bucket, Key=key, Body=bytes(data))


@pytest.mark.parametrize("size", [1000, 20 * MiB + 123], ids=["inline", "multipart"])
def test_flipped_byte_is_an_integrity_error(
    store: Store, s3_client: Any, tmp_path: Path, size: int
) -> None:
    data = os.urandom(size)
    entry = store.env("dev").put_bytes("victim", data).entry
    assert isinstance(store.backend, S3Backend)
    _flip_byte(s3_client, store.backend, entry.digest, size - 7)
    with pytest.raises(IntegrityError):
        store.env("dev").read_bytes("victim")
    out = tmp_path / "out"
    out.mkdir()
    corrupted_download_leaves_no_file(store, out, entry.digest)


def test_multipart_large_file_round_trip(s3_store_url: str, tmp_path: Path) -> None:
    src = tmp_path / "big.bin"
    src.write_bytes(os.urandom(20 * MiB + 5))
    with open_store(s3_store_url) as store:
        files = store.env("dev")
        first = files.put_file("big.bin", src)
        assert first.uploaded_bytes == src.stat().st_size
        again = files.put_file("copy.bin", src)
        assert again.uploaded_bytes == 0  # same content: nothing kept twice
        hinted = files.put_file("hinted.bin", src, digest_hint=first.entry.digest)
        assert hinted.uploaded_bytes == 0
        files.get_file("copy.bin", tmp_path / "back.bin")
        assert (tmp_path / "back.bin").read_bytes() == src.read_bytes()
        assert files.usage().bytes == src.stat().st_size
        for path in ("big.bin", "copy.bin", "hinted.bin"):
            files.delete(path)
        report = store.gc(grace=0)
        assert report.deleted_blobs == 1


def test_cli_cp_ls_rm(s3_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATCHX_STORE", s3_store_url)
    monkeypatch.setenv("BATCHX_ENV", "dev")
    monkeypatch.setenv("BATCHX_DIGEST_CACHE", str(tmp_path / "digests.sqlite"))
    src = tmp_path / "in"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("alpha")
    (src / "sub" / "b.txt").write_text("beta")
    runner = CliRunner()

    def bx(*args: str) -> str:
        result = runner.invoke(app, list(args))
        assert result.exit_code == 0, result.output
        return result.output

    assert "copied 2 file(s)" in bx("cp", str(src), "bx://data/")
    assert "2 skipped (already at the destination)" in bx("cp", str(src), "bx://data/")
    assert "without transfer" in bx("cp", "bx://data/", "bx://alias/")
    listing = bx("ls", "-r", "bx://data/")
    assert "bx://data/a.txt" in listing
    assert "bx://data/sub/b.txt" in listing
    assert "bx://data/sub/b.txt" in bx("ls", "bx://**/b.txt")
    bx("cp", "bx://data/", str(tmp_path / "out"))
    assert (tmp_path / "out" / "sub" / "b.txt").read_text() == "beta"
    bx("cp", "bx://data/a.txt", str(tmp_path / "single.txt"))
    assert (tmp_path / "single.txt").read_text() == "alpha"
    refused = runner.invoke(app, ["rm", "bx://alias"])
    assert refused.exit_code == 1
    assert "use -r" in refused.output
    assert "removed bx://alias/a.txt" in bx("rm", "-r", "bx://alias")
    assert "bx://alias/" not in bx("ls")
