"""Per-environment file systems on top of a blob backend: paths, references, quota, GC.

Object layout (all keys relative to the store's root):

    blobs/ab/cd/<sha256>        the blob (its bytes, or for S3 multipart blobs a pointer)
    envs/<env>/paths/<path>     index entry: {"digest", "size", "created", "job", and for a
                                file a job wrote "provenance" (batchx.planning.provenance)};
                                an empty object is a tombstone left by `rm` (see `delete`)
    envs/<env>/refs/<sha256>    {"size", "count"}: how many of the env's paths name the blob
    envs/<env>/usage            {"bytes", "blobs", "files", "quota"}
    locks/...                   leases (batchx.store.leases)

Ordering rules that keep the derived records safe when a process dies between two steps:
references are counted *before* an index entry is written and released *after* it is removed,
so a crash leaves a count too high (a leaked blob, never a collected one in use).
"""

from __future__ import annotations

import enum
import hashlib
import io
import json
import os
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from batchx.domain.paths import BxPathError, validate_relative_path
from batchx.store import patterns
from batchx.store.backend import Backend, ObjectInfo, Progress, no_progress
from batchx.store.errors import (
    IntegrityError,
    NotFoundError,
    PathExistsError,
    PreconditionFailed,
    QuotaExceededError,
    StoreError,
)
from batchx.store.leases import DEFAULT_TTL, Lease

# Kubernetes namespace names (an environment owns the namespace of the same name).
_ENV = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
MAX_KEY_BYTES = 1024  # S3's key limit
WORKERS = 16
BATCH = 256
"""put_files commits this many files at once: one usage update (compare-and-swap) per batch."""
LIST_MIN = 32
"""From this many paths on, existence is checked by listing the index rather than a GET each."""
_UNKNOWN: Any = object()


class Outcome(enum.Enum):
    CREATED = "created"
    UNCHANGED = "unchanged"
    """The path already named this content: nothing written."""


@dataclass(frozen=True)
class Entry:
    path: str
    digest: str
    size: int
    created: str
    job: str | None = None
    provenance: dict[str, Any] | None = None
    """What produced the file (a job's record, `batchx.planning.provenance`); None: uploaded."""

    def to_bytes(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k != "path"}
        if body["provenance"] is None:
            del body["provenance"]
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, path: str, data: bytes) -> Entry:
        raw = json.loads(data)
        record = raw.get("provenance")
        return cls(
            path,
            raw["digest"],
            int(raw["size"]),
            raw["created"],
            raw.get("job"),
            record if isinstance(record, dict) else None,
        )


@dataclass(frozen=True)
class Usage:
    bytes: int = 0
    blobs: int = 0
    files: int = 0
    quota: int | None = None


@dataclass(frozen=True)
class NewPath:
    path: str
    digest: str
    size: int
    job: str | None = None
    provenance: dict[str, Any] | None = None


@dataclass(frozen=True)
class LocalFile:
    """One file for `EnvFiles.put_files`."""

    path: str
    local: Path
    digest_hint: str | None = None
    """A trusted digest of the file (the CLI's digest cache): lets known content skip reading."""


@dataclass
class PutReport:
    entry: Entry
    outcome: Outcome
    uploaded_bytes: int
    """Bytes actually sent to the store (0 when the content was already stored)."""


@dataclass
class GcReport:
    referenced: int = 0
    deleted_blobs: int = 0
    deleted_bytes: int = 0
    kept_young: int = 0
    swept: int = 0
    tombstones: int = 0
    errors: list[str] = field(default_factory=list)


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


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
        """Delete blobs no environment references and that are older than `grace` seconds.

        Runs under the exclusive lease, so no writer is between "this blob exists" and "its
        reference is counted" (see batchx.store.leases). The grace period is a second, independent
        guard (a writer whose lease lapsed while it was paused) and leaves fresh uploads alone.
        """
        report = GcReport()
        self._release_writer()  # our own shared lease would exclude us
        lease = Lease(self.backend, "gc", self.lease_ttl)
        lease.acquire(self.lease_wait)
        try:
            referenced = self._referenced(lease, report)
            report.referenced = len(referenced)
            cutoff = lease.server_now - grace
            for blob in self.backend.list_blobs():
                lease.keepalive()
                if blob.digest in referenced:
                    continue
                if blob.modified > cutoff:
                    report.kept_young += 1
                    continue
                self.backend.delete_blob(blob.digest)
                report.deleted_blobs += 1
                report.deleted_bytes += blob.size
            report.swept = self.backend.sweep(cutoff)
        finally:
            lease.release()
        return report

    def _referenced(self, lease: Lease, report: GcReport) -> set[str]:
        referenced: set[str] = set()
        for env in self.environments():
            prefix = f"envs/{env}/refs/"
            for item in self.backend.list_keys(prefix):
                lease.keepalive()
                if not isinstance(item, ObjectInfo):
                    continue
                got = self.backend.get(item.key)
                if got is None:
                    continue
                if int(json.loads(got[0]).get("count", 0)) > 0:
                    referenced.add(item.key[len(prefix) :])
                else:
                    self.backend.delete(item.key)  # safe: no writer can be counting right now
            report.tombstones += self._drop_tombstones(env)
        return referenced

    def _drop_tombstones(self, env: str) -> int:
        dropped = 0
        for item in self.backend.list_keys(f"envs/{env}/paths/"):
            if isinstance(item, ObjectInfo) and item.size == 0:
                self.backend.delete(item.key)
                dropped += 1
        return dropped


class EnvFiles:
    """One environment's file system. Paths are given without `bx://` (see `domain.paths`)."""

    def __init__(self, store: Store, name: str) -> None:
        self.store, self.name = store, name
        self.backend = store.backend
        self._root = f"envs/{name}/"

    # -- keys -------------------------------------------------------------------------------
    def _path_key(self, path: str, *, folder: bool = False) -> str:
        try:
            validate_relative_path(path, allow_dir=folder, allow_root=folder)
        except BxPathError as err:
            raise StoreError(str(err)) from None
        key = f"{self._root}paths/{path}"
        if len(key.encode()) > MAX_KEY_BYTES:
            limit = MAX_KEY_BYTES - len(f"{self._root}paths/".encode())
            raise StoreError(
                f"path bx://{path[:40]}... is {len(path.encode())} bytes; the store "
                f"holds paths of at most {limit} bytes in environment {self.name!r}"
            )
        return key

    def _refs_key(self, digest: str) -> str:
        return f"{self._root}refs/{digest}"

    # -- reading ----------------------------------------------------------------------------
    def stat(self, path: str) -> Entry | None:
        got = self.backend.get(self._path_key(path))
        if got is None or not got[0]:
            return None
        return Entry.from_bytes(path, got[0])

    def require(self, path: str) -> Entry:
        entry = self.stat(path)
        if entry is None:
            raise NotFoundError(f"bx://{path} not found in environment {self.name!r}")
        return entry

    def read_bytes(self, path: str) -> bytes:
        entry = self.require(path)
        return b"".join(self.backend.blob_chunks(entry.digest, entry.size))

    def get_file(self, path: str, dest: Path, progress: Progress = no_progress) -> Entry:
        entry = self.require(path)
        self.backend.read_blob(entry.digest, entry.size, dest, progress)
        return entry

    def find(self, pattern: str = "") -> Iterator[str]:
        """Paths matching `pattern` (a prefix folder like `a/`, an exact path, or wildcards)."""
        if patterns.has_wildcards(pattern):
            prefix = patterns.literal_prefix(pattern)
            regex = patterns.compile_pattern(pattern)
            delimiter = "/" if patterns.single_level(pattern) else None
            for rel in self._keys(prefix, delimiter):
                if regex.match(rel):
                    yield rel
            return
        yield from self._keys(pattern, None)

    def listdir(self, folder: str = "") -> Iterator[str]:
        """Direct children of a folder: file paths, and sub-folders ending with `/`."""
        if folder and not folder.endswith("/"):
            folder += "/"
        for name in self._keys(folder, "/"):
            # A folder whose files were all removed still holds tombstones until the next GC.
            if not name.endswith("/") or next(self._keys(name, None), None) is not None:
                yield name

    def entries(self, paths: Iterable[str]) -> Iterator[Entry]:
        """Index entries for `paths`, fetched in parallel, in order; vanished ones skipped."""
        for entry in self.store.pool.map(self.stat, paths):
            if entry is not None:
                yield entry

    def _keys(self, prefix: str, delimiter: str | None) -> Iterator[str]:
        base = f"{self._root}paths/"
        for item in self.backend.list_keys(base + prefix, delimiter=delimiter):
            if isinstance(item, str):
                yield item[len(base) :]
            elif item.size > 0:  # zero-byte objects are tombstones
                yield item.key[len(base) :]

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
        """Store many local files; a result (report or error) per file, in order.

        Per file at most: a blob HEAD (only when a digest hint or a big inline blob asks for
        it), the blob upload, a reference count write and the index entry write. Everything
        else is per batch: existence of the paths is one listing, quota/usage is one
        compare-and-swap per `BATCH` files, the writer lease is the store's. A path that
        exists is never uploaded to: its content is compared by digest (hashed locally when
        no hint is given). `progress` also receives the size of files that moved no bytes,
        so that a bar reaches its total.
        """
        results: list[PutReport | StoreError | OSError | None] = [None] * len(files)
        keys: dict[int, str] = {}
        for i, item in enumerate(files):
            try:
                keys[i] = self._path_key(item.path)
            except StoreError as exc:
                results[i] = exc
        if not keys:
            return [r for r in results if r is not None]
        lease = self.store.writer_lease()

        def tick(n: int) -> None:
            lease.keepalive()
            progress(n)

        seen = dict(zip(keys, self._lookup(list(keys.values())), strict=True))
        pending: list[tuple[int, NewPath, int, bool]] = []
        with ThreadPoolExecutor(max(1, workers), thread_name_prefix="bx-put") as pool:
            running: dict[Future[PutReport | tuple[NewPath, int, bool]], int] = {
                pool.submit(self._prepare, files[i], seen[i], job, tick): i for i in keys
            }
            while running:
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    i = running.pop(future)
                    try:
                        got = future.result()
                    except (StoreError, OSError) as exc:
                        results[i] = exc
                        continue
                    if isinstance(got, PutReport):
                        results[i] = got
                    else:
                        pending.append((i, *got))
                if len(pending) >= BATCH or (pending and not running):
                    self._commit_batch(pending, seen, results)
                    pending = []
        return [r for r in results if r is not None]

    def _prepare(
        self, item: LocalFile, seen: tuple[bytes, str] | None, job: str | None, tick: Progress
    ) -> PutReport | tuple[NewPath, int, bool]:
        """A final report (the path exists), or (what to commit, bytes sent, blob is new)."""
        size = os.stat(item.local).st_size
        if seen is not None and seen[0]:
            current = Entry.from_bytes(item.path, seen[0])
            digest = item.digest_hint or _hash_file(item.local)
            result = _compare(current, NewPath(item.path, digest, size, job))
            if isinstance(result, StoreError):
                raise result
            tick(size)
            return PutReport(result[0], result[1], 0)
        hint = item.digest_hint
        if hint is not None and self.backend.blob_size(hint) == size:
            tick(size)
            return NewPath(item.path, hint, size, job), 0, False
        with open(item.local, "rb", buffering=0) as source:
            put = self.backend.put_blob(source, tick)
        if not put.uploaded:
            tick(put.size)
        new = NewPath(item.path, put.digest, put.size, job)
        return new, (put.size if put.uploaded else 0), put.uploaded

    def _commit_batch(
        self,
        pending: list[tuple[int, NewPath, int, bool]],
        seen: dict[int, tuple[bytes, str] | None],
        results: list[PutReport | StoreError | OSError | None],
    ) -> None:
        items = [p[1] for p in pending]
        fresh = {p[1].digest for p in pending if p[3]}
        try:
            outcomes = self._add(items, [seen[p[0]] for p in pending], fresh)
        except QuotaExceededError:
            if len(pending) == 1:
                raise
            # Some of the batch may fit: commit one by one so each file gets its own answer.
            for one in pending:
                try:
                    self._commit_batch([one], seen, results)
                except QuotaExceededError as exc:
                    results[one[0]] = exc
            return
        for (i, _, sent, _), outcome in zip(pending, outcomes, strict=True):
            results[i] = (
                outcome
                if isinstance(outcome, StoreError)
                else PutReport(outcome[0], outcome[1], sent)
            )

    def _lookup(self, keys: list[str]) -> list[tuple[bytes, str] | None]:
        """The current index objects at `keys` (None: absent). Many keys: list the range they
        span once and GET only those that exist (a bounded listing; GETs if the range is full
        of other paths)."""
        if len(keys) >= LIST_MIN:
            order = sorted(keys, key=str.encode)
            present: set[str] = set()
            budget = 2 * len(keys) + 1000
            prefix = os.path.commonprefix(order)  # noqa: RUF071 - S3 key prefixes are per character
            last = order[-1].encode()
            complete = True
            for n, item in enumerate(self.backend.list_keys(prefix, start_after=order[0][:-1])):
                if isinstance(item, str):
                    continue
                if item.key.encode() > last:
                    break
                if n >= budget:
                    complete = False
                    break
                present.add(item.key)
            if complete:
                found = [k for k in keys if k in present]
                got = dict(zip(found, self.store.pool.map(self.backend.get, found), strict=True))
                return [got.get(k) for k in keys]
        return list(self.store.pool.map(self.backend.get, keys))

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
        self._path_key(path)
        lease = _lease or self.store.writer_lease()

        def tick(n: int) -> None:
            lease.keepalive()
            progress(n)

        result = self.backend.put_blob(source, tick)
        item = NewPath(path, result.digest, result.size, job, provenance)
        outcome = self._add([item], None, {result.digest} if result.uploaded else set())[0]
        if isinstance(outcome, StoreError):
            raise outcome
        return PutReport(outcome[0], outcome[1], result.size if result.uploaded else 0)

    def link(self, path: str, digest: str, size: int, *, job: str | None = None) -> PutReport:
        """Name an already stored blob (aliasing: no data moves, no quota for known content)."""
        self._path_key(path)
        self.store.writer_lease()
        stored = self.backend.blob_size(digest)
        if stored is None:
            raise NotFoundError(f"blob sha256:{digest} is not stored")
        if stored != size:
            raise IntegrityError(digest, f"stored size {stored} differs from expected {size}")
        return self._commit_one(NewPath(path, digest, size, job), 0)

    def copy(self, src: str, dst: str) -> PutReport:
        """`bx cp bx://src bx://dst` within this environment: an alias, no data transfer."""
        entry = self.require(src)
        return self.link(dst, entry.digest, entry.size)

    def _commit_one(self, item: NewPath, uploaded: int) -> PutReport:
        result = self.add([item])[0]
        if isinstance(result, StoreError):
            raise result
        entry, outcome = result
        return PutReport(entry, outcome, uploaded)

    def add(self, items: list[NewPath]) -> list[tuple[Entry, Outcome] | StoreError]:
        """Record paths for blobs that are stored; per-item result (conflicts are returned, a
        quota refusal is raised for the whole batch before anything is written)."""
        return self._add(items, None, set())

    def _add(
        self,
        items: list[NewPath],
        seen: list[tuple[bytes, str] | None] | None,
        fresh: set[str],
    ) -> list[tuple[Entry, Outcome] | StoreError]:
        """`add`, given what the index held at the paths (None: look now) and which blobs this
        writer has just created (no environment can hold those yet: their reference count is
        written create-only without reading it first)."""
        keys = [self._path_key(item.path) for item in items]
        existing = seen if seen is not None else self._lookup(keys)
        results: list[tuple[Entry, Outcome] | StoreError | None] = [None] * len(items)
        new: list[int] = []
        for i, (item, got) in enumerate(zip(items, existing, strict=True)):
            if got is not None and got[0]:
                results[i] = _compare(Entry.from_bytes(item.path, got[0]), item)
            else:
                new.append(i)
        if new:
            self._ensure_blobs_still_there([items[i] for i in new])
            self._reference([items[i] for i in new], fresh)
            created = list(
                self.store.pool.map(
                    lambda i: self._write_entry(keys[i], items[i], existing[i]), new
                )
            )
            undo: list[NewPath] = []
            for i, res in zip(new, created, strict=True):
                results[i] = res
                if not (isinstance(res, tuple) and res[1] is Outcome.CREATED):
                    undo.append(items[i])  # lost a race: another writer named the path first
            if undo:
                self._unreference(undo)
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

    def _write_entry(
        self, key: str, item: NewPath, seen: tuple[bytes, str] | None
    ) -> tuple[Entry, Outcome] | StoreError:
        entry = Entry(item.path, item.digest, item.size, now_iso(), item.job, item.provenance)
        try:
            if seen is None:
                self.backend.put(key, entry.to_bytes(), create_only=True)
            else:  # a tombstone: replace exactly that one
                self.backend.put(key, entry.to_bytes(), if_match=seen[1])
        except PreconditionFailed:
            current = self.stat(item.path)
            if current is None:
                return StoreError(f"bx://{item.path} changed concurrently; retry")
            return _compare(current, item)
        return entry, Outcome.CREATED

    def delete(self, path: str) -> Entry:
        """Drop the path's reference to its blob (the blob goes when nothing references it).

        S3 has no conditional delete, so the entry is replaced by an empty tombstone with a
        compare-and-swap: of two concurrent `rm`s exactly one releases the reference.
        Tombstones are dropped by the collector.
        """
        key = self._path_key(path)
        self.store.writer_lease()
        while True:
            got = self.backend.get(key)
            if got is None or not got[0]:
                raise NotFoundError(f"bx://{path} not found in environment {self.name!r}")
            entry = Entry.from_bytes(path, got[0])
            try:
                self.backend.put(key, b"", if_match=got[1])
            except PreconditionFailed:
                continue
            self._unreference([NewPath(path, entry.digest, entry.size)])
            return entry

    # -- references and quota ---------------------------------------------------------------
    def _reference(self, items: list[NewPath], fresh: set[str]) -> None:
        counts = _count_by_digest(items)
        look = [d for d in counts if d not in fresh]
        current: dict[str, tuple[int, str] | None] = dict.fromkeys(counts)
        current.update(zip(look, self.store.pool.map(self._get_refs, look), strict=True))
        unheld = {d: counts[d][0] for d, got in current.items() if got is None or got[0] == 0}
        # Reserve quota for blobs the env does not hold yet, before counting: a refusal then
        # leaves nothing to undo. One compare-and-swap for the whole batch.
        try:
            self._change_usage(sum(unheld.values()), len(unheld), len(items))
        except QuotaExceededError:
            if look == list(counts):
                raise
            # Assumed new blobs might be held after all (a concurrent writer): decide exactly.
            self._reference(items, set())
            return
        reserved = set(unheld)
        refunds: dict[str, int] = {}

        def count(digest: str) -> None:
            size, n = counts[digest]
            self._cas_refs(digest, size, n, current[digest], reserved=reserved, refunds=refunds)

        # A failure part-way leaves counts and usage too high: the safe direction (see top).
        list(self.store.pool.map(count, counts))
        if refunds:
            self._change_usage(-sum(refunds.values()), -len(refunds), 0)

    def _cas_refs(
        self,
        digest: str,
        size: int,
        n: int,
        got: tuple[int, str] | None,
        *,
        reserved: set[str],
        refunds: dict[str, int],
    ) -> None:
        """Add `n` to the count, starting from `got` (what was read, or None: assumed absent).
        `reserved` and `refunds` are only touched for this digest by this thread; refunds of a
        reservation someone else's count made redundant are applied after the batch (usage
        is too high meanwhile: the safe direction)."""
        while True:
            count, etag = (0, None) if got is None else got
            held = count > 0
            if held and digest in reserved:
                reserved.discard(digest)  # someone else charged it meanwhile
                refunds[digest] = size
            if not held and digest not in reserved:
                if refunds.pop(digest, None) is None:
                    self._change_usage(size, 1, 0)
                reserved.add(digest)
            body = json.dumps({"size": size, "count": count + n}).encode()
            try:
                if etag is None:
                    self.backend.put(self._refs_key(digest), body, create_only=True)
                else:
                    self.backend.put(self._refs_key(digest), body, if_match=etag)
                return
            except PreconditionFailed:
                got = self._get_refs(digest)

    def _unreference(self, items: list[NewPath]) -> None:
        counts = _count_by_digest(items)

        def release(digest: str) -> int:
            size, n = counts[digest]
            while True:
                got = self._get_refs(digest)
                if got is None:
                    return -1
                count = max(0, got[0] - n)
                body = json.dumps({"size": size, "count": count}).encode()
                try:
                    self.backend.put(self._refs_key(digest), body, if_match=got[1])
                except PreconditionFailed:
                    continue
                return size if count == 0 and got[0] > 0 else -1

        freed = [s for s in self.store.pool.map(release, counts) if s >= 0]
        self._change_usage(-sum(freed), -len(freed), -len(items))

    def _get_refs(self, digest: str) -> tuple[int, str] | None:
        got = self.backend.get(self._refs_key(digest))
        if got is None:
            return None
        return int(json.loads(got[0]).get("count", 0)), got[1]

    def usage(self) -> Usage:
        got = self.backend.get(self._root + "usage")
        return Usage() if got is None else _usage(got[0])

    def set_quota(self, quota: int | None) -> Usage:
        """Record `spec.quota.storage` (bytes, None = unlimited); lowering it below the usage
        refuses new content but deletes nothing."""
        return self._update_usage(lambda u: Usage(u.bytes, u.blobs, u.files, quota))

    def _change_usage(self, add_bytes: int, add_blobs: int, add_files: int) -> Usage:
        if add_bytes == add_blobs == add_files == 0:
            return self.usage()

        def change(u: Usage) -> Usage:
            if add_bytes > 0 and u.quota is not None and u.bytes + add_bytes > u.quota:
                raise QuotaExceededError(self.name, u.bytes, add_bytes, u.quota)
            return Usage(
                max(0, u.bytes + add_bytes),
                max(0, u.blobs + add_blobs),
                max(0, u.files + add_files),
                u.quota,
            )

        return self._update_usage(change)

    def _update_usage(self, change: Callable[[Usage], Usage]) -> Usage:
        key = self._root + "usage"
        delay = 0.001
        while True:
            got = self.backend.get(key)
            new = change(Usage() if got is None else _usage(got[0]))
            body = json.dumps(asdict(new)).encode()
            try:
                if got is None:
                    self.backend.put(key, body, create_only=True)
                else:
                    self.backend.put(key, body, if_match=got[1])
                return new
            except PreconditionFailed:
                time.sleep(delay)  # back off under contention: CAS retries would otherwise spin
                delay = min(delay * 2, 0.05)


def _hash_file(path: Path) -> str:
    with open(path, "rb", buffering=0) as source:
        return hashlib.file_digest(source, "sha256").hexdigest()


def _usage(data: bytes) -> Usage:
    raw: dict[str, Any] = json.loads(data)
    quota = raw.get("quota")
    return Usage(
        int(raw.get("bytes", 0)),
        int(raw.get("blobs", 0)),
        int(raw.get("files", 0)),
        None if quota is None else int(quota),
    )


def _compare(current: Entry, item: NewPath) -> tuple[Entry, Outcome] | StoreError:
    if current.digest == item.digest and current.size == item.size:
        return current, Outcome.UNCHANGED
    return PathExistsError(item.path, current.digest, item.digest)


def _count_by_digest(items: list[NewPath]) -> dict[str, tuple[int, int]]:
    counts: dict[str, tuple[int, int]] = {}
    for item in items:
        size, n = counts.get(item.digest, (item.size, 0))
        counts[item.digest] = (size, n + 1)
    return counts
