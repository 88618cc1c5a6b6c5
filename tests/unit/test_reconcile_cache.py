"""The cache's store steps on a local store: input digests from the index, output aliases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from batchx.planning.job_cache import folder_digest
from batchx.reconcile.cache import _alias, _digests
from batchx.store import Store, open_store
from batchx.store.fs import EnvFiles


@pytest.fixture
def files(tmp_path: Path) -> Iterator[EnvFiles]:
    with open_store(f"file://{tmp_path / 'store'}", lease_wait=0.5) as store:
        yield store.env("lab")


def test_digests_of_files_and_folders_come_from_the_index(files: EnvFiles) -> None:
    a = files.put_bytes("data/a.txt", b"alpha").entry
    b = files.put_bytes("data/sub/b.txt", b"beta").entry
    files.put_bytes("copy/a.txt", b"alpha")
    found = _digests(files, {"data/a.txt", "copy/a.txt", "data/", "missing.txt", "empty/"})
    assert found == {
        "data/a.txt": "sha256:" + a.digest,
        "copy/a.txt": "sha256:" + a.digest,  # the same content, wherever it lies
        "data/": folder_digest([("a.txt", a.digest, 5), ("sub/b.txt", b.digest, 4)]),
    }


def test_outputs_are_aliased_to_the_same_blobs_without_quota(files: EnvFiles) -> None:
    files.put_bytes("jobs/one/output/counts.txt", b"3 the\n", job="one")
    files.put_bytes("jobs/one/output/dir/x.txt", b"x", job="one")
    used = files.usage().bytes
    needed = ["jobs/one/output/counts.txt", "jobs/one/output/dir/"]
    assert _alias(files, "one", "two", needed)
    assert files.read_bytes("jobs/two/output/counts.txt") == b"3 the\n"
    assert files.read_bytes("jobs/two/output/dir/x.txt") == b"x"
    assert files.usage().bytes == used  # no new bytes: the blobs were the environment's
    assert _alias(files, "one", "two", needed)  # again (an operator killed before the write)


def test_nothing_is_aliased_when_an_output_file_or_blob_is_gone(files: EnvFiles) -> None:
    entry = files.put_bytes("jobs/one/output/counts.txt", b"3 the\n").entry
    assert not _alias(files, "one", "two", ["jobs/one/output/other.txt"])
    store: Store = files.store
    store.backend.delete_blob(entry.digest)
    assert not _alias(files, "one", "two", ["jobs/one/output/counts.txt"])
    assert files.stat("jobs/two/output/counts.txt") is None
