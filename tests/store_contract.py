"""Behaviour every store backend must show: `StoreContract`, run against the local directory
(unit) and MinIO (integration) by a test class of each backend's module that inherits it and
provides two fixtures: `store` (an open Store) and `reopen` (opens another Store on the same
backend, as a second process would)."""

from __future__ import annotations

import io
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from batchx.store import (
    IntegrityError,
    LocalFile,
    NotFoundError,
    Outcome,
    PathExistsError,
    PutReport,
    QuotaExceededError,
    Store,
    StoreError,
)

Reopen = Callable[[], Store]


def corrupted_download_leaves_no_file(store: Store, tmp_path: Path, digest: str) -> None:
    dest = tmp_path / "out.bin"
    with pytest.raises(IntegrityError, match=digest[:12]):
        store.env("dev").get_file("victim", dest)
    assert not dest.exists()
    assert list(tmp_path.iterdir()) == []


class StoreContract:
    def test_same_content_is_a_noop_and_different_is_refused(self, store: Store) -> None:
        files = store.env("dev")
        first = files.put_bytes("a/b.txt", b"hello")
        assert first.outcome is Outcome.CREATED
        assert first.uploaded_bytes == 5
        again = files.put_bytes("a/b.txt", b"hello")
        assert again.outcome is Outcome.UNCHANGED
        assert again.entry == first.entry
        with pytest.raises(PathExistsError, match="immutable"):
            files.put_bytes("a/b.txt", b"other")
        assert files.read_bytes("a/b.txt") == b"hello"

    def test_duplicates_and_aliases_count_once(self, store: Store) -> None:
        files = store.env("dev")
        files.put_bytes("one", b"x" * 1000)
        dup = files.put_bytes("two", b"x" * 1000)
        assert dup.uploaded_bytes == 0
        files.copy("one", "alias")
        usage = files.usage()
        assert (usage.bytes, usage.blobs, usage.files) == (1000, 1, 3)
        files.delete("one")
        files.delete("two")
        assert files.usage().bytes == 1000
        files.delete("alias")
        assert (files.usage().bytes, files.usage().files) == (0, 0)

    def test_quota_refuses_with_numbers(self, store: Store) -> None:
        files = store.env("dev")
        files.set_quota(100)
        files.put_bytes("small", b"a" * 60)
        with pytest.raises(QuotaExceededError, match=r"60 bytes used \+ 50 bytes new = 110 bytes"):
            files.put_bytes("big", b"b" * 50)
        assert files.stat("big") is None
        files.put_bytes("alias-of-small", b"a" * 60)  # known content costs nothing
        assert files.usage().bytes == 60

    def test_environments_are_isolated(self, store: Store) -> None:
        store.env("alpha").put_bytes("secret.txt", b"alpha only")
        beta = store.env("beta")
        assert beta.stat("secret.txt") is None
        with pytest.raises(NotFoundError):
            beta.read_bytes("secret.txt")
        assert list(beta.find("**")) == []
        with pytest.raises(NotFoundError):
            beta.copy("secret.txt", "stolen.txt")

    def test_listing_with_patterns_and_folders(self, store: Store) -> None:
        files = store.env("dev")
        for path in ["d/a.txt", "d/b.txt", "d/sub/c.txt", "d/sub/deep/e.bam", "d2/x", "top"]:
            files.put_bytes(path, path.encode())
        assert list(files.find("d/*.txt")) == ["d/a.txt", "d/b.txt"]
        assert list(files.find("d/?.txt")) == ["d/a.txt", "d/b.txt"]
        assert list(files.find("d/**/*.bam")) == ["d/sub/deep/e.bam"]
        assert list(files.find("d/")) == ["d/a.txt", "d/b.txt", "d/sub/c.txt", "d/sub/deep/e.bam"]
        assert list(files.listdir("")) == ["d/", "d2/", "top"]
        assert list(files.listdir("d")) == ["d/a.txt", "d/b.txt", "d/sub/"]
        files.delete("d2/x")
        assert list(files.listdir("")) == ["d/", "top"]

    def test_gc_collects_only_unreferenced_blobs(self, store: Store) -> None:
        files = store.env("dev")
        kept = files.put_bytes("kept", b"keep me").entry.digest
        gone = files.put_bytes("gone", b"drop me").entry.digest
        other = store.env("other").put_bytes("shared", b"drop me")  # still referenced elsewhere
        files.delete("gone")
        assert store.gc(grace=3600).deleted_blobs == 0  # too young: grace period protects
        report = store.gc(grace=0)
        assert report.deleted_blobs == 0  # 'drop me' is referenced by env other
        store.env("other").delete("shared")
        report = store.gc(grace=0)
        assert report.deleted_blobs == 1
        assert store.backend.blob_size(gone) is None
        assert store.backend.blob_size(kept) is not None
        assert other.entry.digest == gone
        assert files.read_bytes("kept") == b"keep me"

    def test_gc_and_writers_exclude_each_other(self, store: Store, reopen: Reopen) -> None:
        other = reopen()
        other.env("dev").put_bytes("w", b"writer holds a lease now")
        with pytest.raises(StoreError, match="busy"):
            store.gc(grace=0)
        other.close()
        store.gc(grace=0)

    def test_concurrent_writers_of_same_content(self, store: Store) -> None:
        files = store.env("dev")
        data = bytes(range(256)) * 4096
        results: list[object] = []

        def write(i: int) -> None:
            try:
                results.append(files.put_stream(f"c/{i % 3}", io.BytesIO(data)).outcome)
            except Exception as exc:
                results.append(exc)

        threads = [threading.Thread(target=write, args=(i,)) for i in range(9)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert all(isinstance(r, Outcome) for r in results), results
        assert sorted(r.value for r in results if isinstance(r, Outcome)).count("created") == 3
        # The writer that created the blob counts it in its batch record; one that found it
        # stored may have charged it too, before that record was there (batchx.store.refs):
        # never less than the blob, at most twice, and exact once collected.
        assert files.usage().bytes in (len(data), 2 * len(data))
        assert files.usage().files == 3
        for i in range(3):
            assert files.read_bytes(f"c/{i}") == data
        store.gc(grace=3600)
        assert (files.usage().bytes, files.usage().blobs, files.usage().files) == (len(data), 1, 3)
        for i in range(3):
            files.delete(f"c/{i}")
        assert (files.usage().bytes, files.usage().blobs, files.usage().files) == (0, 0, 0)

    def test_batch_put_files_is_exact(self, store: Store, tmp_path: Path) -> None:
        """`put_files` (what `bx cp` of a folder uses): listing-based existence, one usage update
        per batch, create-only reference counts, per-file answers."""
        files = store.env("dev")
        files.put_bytes("b/f00", b"content 0")  # same content already there: unchanged
        files.put_bytes("b/f01", b"something else")  # different content: refused, not uploaded
        files.put_bytes("elsewhere", b"content 2")  # known blob, new path: no transfer
        batch = []
        for i in range(40):  # above LIST_MIN: existence comes from one listing
            local = tmp_path / f"f{i:02d}"
            local.write_bytes(b"duplicate" if i >= 30 else f"content {i}".encode())
            batch.append(LocalFile(f"b/f{i:02d}", local))
        results = files.put_files(batch)
        assert isinstance(results[1], PathExistsError)
        reports = [r for r in results if isinstance(r, PutReport)]
        assert len(reports) == 39
        assert isinstance(results[0], PutReport)
        assert results[0].outcome is Outcome.UNCHANGED
        assert isinstance(results[2], PutReport)
        assert results[2].uploaded_bytes == 0
        assert files.read_bytes("b/f01") == b"something else"
        assert files.read_bytes("b/f35") == b"duplicate"
        distinct = {f"content {i}".encode() for i in range(30) if i != 1}
        expected = sum(map(len, distinct)) + len(b"something else") + len(b"duplicate")
        usage = files.usage()
        assert (usage.bytes, usage.blobs, usage.files) == (expected, len(distinct) + 2, 41)
        again = files.put_files(batch)
        assert all(isinstance(r, PutReport) and r.outcome is Outcome.UNCHANGED for r in again[2:])
        assert files.usage() == usage

    def test_batch_quota_answers_per_file(self, store: Store, tmp_path: Path) -> None:
        files = store.env("dev")
        files.set_quota(250)
        batch = []
        for i in range(5):
            local = tmp_path / f"q{i}"
            local.write_bytes(bytes([65 + i]) * 100)
            batch.append(LocalFile(f"q/{i}", local))
        results = files.put_files(batch)
        assert [type(r).__name__ for r in results].count("QuotaExceededError") == 3
        assert [type(r).__name__ for r in results].count("PutReport") == 2
        assert files.usage().bytes == 200
        assert len(list(files.find("q/"))) == 2

    def test_a_batch_counts_its_new_blobs_in_one_record(
        self, store: Store, reopen: Reopen, tmp_path: Path
    ) -> None:
        """The blobs a commit created are counted in one batch record, not one object each;
        later copies and removals (also from another process) count from it, and the
        collector folds it into the per-blob counts with the usage unchanged."""
        files = store.env("dev")
        batch = []
        for i in range(40):
            local = tmp_path / f"r{i:02d}"
            local.write_bytes(f"record {i}".encode())
            batch.append(LocalFile(f"r/{i:02d}", local))
        assert all(isinstance(r, PutReport) for r in files.put_files(batch))
        keys = [k for k in store.backend.list_keys("envs/dev/") if not isinstance(k, str)]
        assert len([k for k in keys if k.key.startswith("envs/dev/batches/")]) == 1
        assert not [k for k in keys if k.key.startswith("envs/dev/refs/")]
        size = sum(len(f"record {i}".encode()) for i in range(40))
        assert (files.usage().bytes, files.usage().blobs, files.usage().files) == (size, 40, 40)
        other = reopen()
        try:
            theirs = other.env("dev")
            theirs.copy("r/00", "alias")  # held already: no charge
            assert theirs.usage().bytes == size
            theirs.delete("r/00")
            assert theirs.usage().bytes == size  # the alias still names it
        finally:
            other.close()
        files.delete("alias")
        first = len(b"record 0")
        assert (files.usage().bytes, files.usage().blobs) == (size - first, 39)
        usage = files.usage()
        report = store.gc(grace=3600)
        assert report.folded == 1
        assert not list(store.backend.list_keys("envs/dev/batches/"))
        assert files.usage() == usage
        files.delete("r/01")
        assert files.usage().bytes == size - first - len(b"record 1")
        assert files.read_bytes("r/02") == b"record 2"
