"""Per-environment file systems on top of a blob backend: the store and its environments.

Object layout (all keys relative to the store's root):

    blobs/ab/cd/<sha256>        the blob (its bytes, or for S3 multipart blobs a pointer)
    envs/<env>/paths/<path>     index entry (`index`); an empty object is a tombstone
    envs/<env>/refs/<sha256>    {"size", "count"}: how many of the env's paths name it (`refs`)
    envs/<env>/batches/<id>     the counts of the blobs one commit created (`refs`)
    envs/<env>/usage            {"bytes", "blobs", "files", "quota"} (`usage`)
    locks/...                   leases (batchx.store.leases)

`EnvFiles` is the one entry point and composes the parts: `index` (paths, tombstones), `refs`
(reference counts and their quota charge), `usage` (the usage record and quota), `batch` (many
files at once) and `gc` (collection); each small record is updated with `cas.swap`. What stays
here is the order of the steps of a write, which is what keeps the derived records safe when a
process dies between two of them: references are counted *before* an index entry is written and
released *after* it is removed, so a crash leaves a count too high (a leaked blob, never a
collected one in use).
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, BinaryIO

from batchx.store import batch
from batchx.store.backend import Backend, Progress, no_progress
from batchx.store.batch import LocalFile, PutReport
from batchx.store.cas import Current
from batchx.store.errors import IntegrityError, NotFoundError, StoreError
from batchx.store.gc import GcReport, collect
from batchx.store.index import MAX_KEY_BYTES, Entry, Index, NewPath, Outcome, compare, now_iso
from batchx.store.leases import DEFAULT_TTL, Lease
from batchx.store.refs import RecordCache, Refs
from batchx.store.usage import Usage, UsageRecord

__all__ = [
    "MAX_KEY_BYTES",
    "Entry",
    "EnvFiles",
    "GcReport",
    "LocalFile",
    "NewPath",
    "Outcome",
    "PutReport",
    "Store",
    "Usage",
    "now_iso",
]

# Kubernetes namespace names (an environment owns the namespace of the same name).
_ENV = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
WORKERS = 16


class Store:
    """A blob backend plus the environments' indexes. Thread-safe; close() releases the lease."""

    def __init__(
        self,
        backend: Backend,
        *,
        lease_ttl: float = DEFAULT_TTL,
        lease_wait: float = 120.0,
        workers: int = WORKERS,
    ) -> None:
        self.backend = backend
        self.lease_ttl, self.lease_wait = lease_ttl, lease_wait
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="bx-store")
        self._lease: Lease | None = None
        self._lease_mutex = threading.Lock()
        self.records = RecordCache()
        """The environments' batch records read so far (`batchx.store.refs`)."""

    def env(self, name: str) -> EnvFiles:
        if not _ENV.match(name):
            raise StoreError(
                f"invalid environment name {name!r}: expected a DNS-1123 label "
                "(lowercase letters, digits, '-', at most 63 characters)"
            )
        return EnvFiles(self, name)

    def environments(self) -> list[str]:
        return [
            p[len("envs/") : -1]
            for p in self.backend.list_keys("envs/", delimiter="/")
            if isinstance(p, str)
        ]

    def writer_lease(self) -> Lease:
        """The shared lease every write runs under (taken on first use, kept until close)."""
        with self._lease_mutex:
            if self._lease is None:
                lease = Lease(self.backend, "write", self.lease_ttl)
                lease.acquire(self.lease_wait)
                self._lease = lease
            return self._lease

    def _release_writer(self) -> None:
        with self._lease_mutex:
            if self._lease is not None:
                self._lease.release()
                self._lease = None

    def close(self) -> None:
        self._release_writer()
        self.pool.shutdown(wait=True)
        self.backend.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- garbage collection -----------------------------------------------------------------
    def gc(self, grace: float = 3600.0) -> GcReport:
        """Delete blobs no environment references and that are older than `grace` seconds
        (see `batchx.store.gc` for why this is safe while writers run)."""
        self._release_writer()  # our own shared lease would exclude us
        lease = Lease(self.backend, "gc", self.lease_ttl)
        lease.acquire(self.lease_wait)
        try:
            return collect(self, lease, grace)
        finally:
            lease.release()


class EnvFiles:
    """One environment's file system. Paths are given without `bx://` (see `domain.paths`)."""

    def __init__(self, store: Store, name: str) -> None:
        self.store, self.name = store, name
        self.backend = store.backend
        self.index = Index(self.backend, name, store.pool)
        self.usage_record = UsageRecord(self.backend, name)
        self.refs = Refs(self.backend, name, self.usage_record, store.pool, store.records)

    # -- reading ----------------------------------------------------------------------------
    def stat(self, path: str) -> Entry | None:
        return self.index.stat(path)

    def require(self, path: str) -> Entry:
        return self.index.require(path)

    def read_bytes(self, path: str) -> bytes:
        entry = self.require(path)
        return b"".join(self.backend.blob_chunks(entry.digest, entry.size))

    def get_file(self, path: str, dest: Path, progress: Progress = no_progress) -> Entry:
        entry = self.require(path)
        self.backend.read_blob(entry.digest, entry.size, dest, progress)
        return entry

    def find(self, pattern: str = "") -> Iterator[str]:
        """Paths matching `pattern` (a prefix folder like `a/`, an exact path, or wildcards)."""
        return self.index.find(pattern)

    def listdir(self, folder: str = "") -> Iterator[str]:
        """Direct children of a folder: file paths, and sub-folders ending with `/`."""
        return self.index.listdir(folder)

    def entries(self, paths: Iterable[str]) -> Iterator[Entry]:
        """Index entries for `paths`, fetched in parallel, in order; vanished ones skipped."""
        return self.index.entries(paths)

    def usage(self) -> Usage:
        return self.usage_record.read()

    # -- writing ----------------------------------------------------------------------------
    def put_file(
        self,
        path: str,
        local: Path,
        *,
        job: str | None = None,
        digest_hint: str | None = None,
        progress: Progress = no_progress,
    ) -> PutReport:
        """Store a local file at `path`. With `digest_hint` (a trusted digest of the file, e.g.
        from the CLI's digest cache) nothing is read or sent when the content is already stored.
        """
        result = self.put_files([LocalFile(path, local, digest_hint)], job=job, progress=progress)
        if isinstance(result[0], BaseException):
            raise result[0]
        return result[0]

    def put_files(
        self,
        files: Sequence[LocalFile],
        *,
        job: str | None = None,
        progress: Progress = no_progress,
        workers: int = 8,
    ) -> list[PutReport | StoreError | OSError]:
        """Store many local files; a result (report or error) per file, in order (see
        `batchx.store.batch` for what is paid per file and what per batch)."""
        return batch.put_files(self, files, job=job, progress=progress, workers=workers)

    def put_bytes(
        self,
        path: str,
        data: bytes,
        *,
        job: str | None = None,
        provenance: dict[str, Any] | None = None,
    ) -> PutReport:
        return self.put_stream(path, io.BytesIO(data), job=job, provenance=provenance)

    def put_stream(
        self,
        path: str,
        source: BinaryIO,
        *,
        job: str | None = None,
        provenance: dict[str, Any] | None = None,
        progress: Progress = no_progress,
        _lease: Lease | None = None,
    ) -> PutReport:
        """Store what `source` yields at `path` (one pass: hashed while uploading)."""
        self.index.key(path)
        lease = _lease or self.store.writer_lease()

        def tick(n: int) -> None:
            lease.keepalive()
            progress(n)

        result = self.backend.put_blob(source, tick)
        item = NewPath(path, result.digest, result.size, job, provenance)
        outcome = self.commit([item], None, {result.digest} if result.uploaded else set())[0]
        if isinstance(outcome, StoreError):
            raise outcome
        return PutReport(outcome[0], outcome[1], result.size if result.uploaded else 0)

    def link(self, path: str, digest: str, size: int, *, job: str | None = None) -> PutReport:
        """Name an already stored blob (aliasing: no data moves, no quota for known content)."""
        self.index.key(path)
        self.store.writer_lease()
        stored = self.backend.blob_size(digest)
        if stored is None:
            raise NotFoundError(f"blob sha256:{digest} is not stored")
        if stored != size:
            raise IntegrityError(digest, f"stored size {stored} differs from expected {size}")
        result = self.add([NewPath(path, digest, size, job)])[0]
        if isinstance(result, StoreError):
            raise result
        return PutReport(result[0], result[1], 0)

    def copy(self, src: str, dst: str) -> PutReport:
        """`bx cp bx://src bx://dst` within this environment: an alias, no data transfer."""
        entry = self.require(src)
        return self.link(dst, entry.digest, entry.size)

    def add(self, items: list[NewPath]) -> list[tuple[Entry, Outcome] | StoreError]:
        """Record paths for blobs that are stored; per-item result (conflicts are returned, a
        quota refusal is raised for the whole batch before anything is written)."""
        return self.commit(items, None, set())

    def commit(
        self,
        items: list[NewPath],
        seen: list[Current] | None,
        fresh: set[str],
    ) -> list[tuple[Entry, Outcome] | StoreError]:
        """`add`, given what the index held at the paths (None: look now) and which blobs this
        writer has just created (no environment can hold those yet: they are counted in one
        batch record, without reading anything)."""
        keys = [self.index.key(item.path) for item in items]
        existing = seen if seen is not None else self.index.lookup(keys)
        results: list[tuple[Entry, Outcome] | StoreError | None] = [None] * len(items)
        new: list[int] = []
        for i, (item, got) in enumerate(zip(items, existing, strict=True)):
            if got is not None and got[0]:
                results[i] = compare(Entry.from_bytes(item.path, got[0]), item)
            else:
                new.append(i)
        if new:
            self._ensure_blobs_still_there([items[i] for i in new])
            self.refs.reference([items[i] for i in new], fresh)
            created = list(
                self.store.pool.map(lambda i: self.index.write(keys[i], items[i], existing[i]), new)
            )
            undo: list[NewPath] = []
            for i, res in zip(new, created, strict=True):
                results[i] = res
                if not (isinstance(res, tuple) and res[1] is Outcome.CREATED):
                    undo.append(items[i])  # lost a race: another writer named the path first
            if undo:
                self.refs.unreference(undo)
        return [r for r in results if r is not None]

    def _ensure_blobs_still_there(self, items: list[NewPath]) -> None:
        # If our lease lapsed (paused process), a collection may have run since we saw the blobs.
        if self.store.writer_lease().still_valid():
            return
        for item in items:
            if self.backend.blob_size(item.digest) != item.size:
                raise StoreError(
                    f"blob sha256:{item.digest} vanished while this writer was "
                    "paused past its lease; retry the copy"
                )

    def delete(self, path: str) -> Entry:
        """Drop the path's reference to its blob (the blob goes when nothing references it):
        the entry becomes a tombstone (exactly one of two concurrent `rm`s gets it), then the
        reference is released."""
        self.index.key(path)
        self.store.writer_lease()
        entry = self.index.tombstone(path)
        self.refs.unreference([NewPath(path, entry.digest, entry.size)])
        return entry

    def set_quota(self, quota: int | None) -> Usage:
        """Record `spec.quota.storage` (bytes, None = unlimited); lowering it below the usage
        refuses new content but deletes nothing."""
        return self.usage_record.set_quota(quota)
