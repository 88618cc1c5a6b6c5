"""An environment's path index: one small object per path, and the tombstones `rm` leaves.

    envs/<env>/paths/<path>     {"digest", "size", "created", "job"}; empty: a tombstone

Why one object per path (not one index object): no central record to contend on or rewrite,
listing by prefix is the backend's own listing, and immutability is the server's create-only
put. Why tombstones: S3 has no conditional delete, so `rm` replaces the entry by an empty object
with a compare-and-swap and exactly one of two concurrent `rm`s wins; the collector drops them.
This module knows nothing of blobs, reference counts or quota (see `refs`, `usage`).
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Iterable, Iterator
from concurrent.futures import Executor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

from batchx.domain.paths import BxPathError, validate_relative_path
from batchx.store import patterns
from batchx.store.backend import Backend, ObjectInfo
from batchx.store.cas import Current, swap
from batchx.store.errors import NotFoundError, PathExistsError, PreconditionFailed, StoreError

MAX_KEY_BYTES = 1024  # S3's key limit
LIST_MIN = 32
"""From this many paths on, existence is checked by listing the index rather than a GET each."""


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

    def to_bytes(self) -> bytes:
        body = {k: v for k, v in asdict(self).items() if k != "path"}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, path: str, data: bytes) -> Entry:
        raw = json.loads(data)
        return cls(path, raw["digest"], int(raw["size"]), raw["created"], raw.get("job"))


@dataclass(frozen=True)
class NewPath:
    """A path to record for a blob that is stored."""

    path: str
    digest: str
    size: int
    job: str | None = None


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def compare(current: Entry, item: NewPath) -> tuple[Entry, Outcome] | StoreError:
    """An existing path accepts the same content again (unchanged) and nothing else."""
    if current.digest == item.digest and current.size == item.size:
        return current, Outcome.UNCHANGED
    return PathExistsError(item.path, current.digest, item.digest)


class Index:
    """The path objects of environment `name`; `pool` runs the per-path GETs in parallel."""

    def __init__(self, backend: Backend, name: str, pool: Executor) -> None:
        self.backend, self.name, self.pool = backend, name, pool
        self.base = f"envs/{name}/paths/"

    def key(self, path: str, *, folder: bool = False) -> str:
        """The object key of `path`; StoreError for a malformed or too long path."""
        try:
            validate_relative_path(path, allow_dir=folder, allow_root=folder)
        except BxPathError as err:
            raise StoreError(str(err)) from None
        key = self.base + path
        if len(key.encode()) > MAX_KEY_BYTES:
            limit = MAX_KEY_BYTES - len(self.base.encode())
            raise StoreError(
                f"path bx://{path[:40]}... is {len(path.encode())} bytes; the store "
                f"holds paths of at most {limit} bytes in environment {self.name!r}"
            )
        return key

    # -- reading ----------------------------------------------------------------------------
    def stat(self, path: str) -> Entry | None:
        got = self.backend.get(self.key(path))
        if got is None or not got[0]:
            return None
        return Entry.from_bytes(path, got[0])

    def require(self, path: str) -> Entry:
        entry = self.stat(path)
        if entry is None:
            raise NotFoundError(f"bx://{path} not found in environment {self.name!r}")
        return entry

    def find(self, pattern: str = "") -> Iterator[str]:
        """Paths matching `pattern` (a prefix folder like `a/`, an exact path, or wildcards)."""
        if patterns.has_wildcards(pattern):
            prefix = patterns.literal_prefix(pattern)
            regex = patterns.compile_pattern(pattern)
            delimiter = "/" if patterns.single_level(pattern) else None
            for rel in self.paths(prefix, delimiter):
                if regex.match(rel):
                    yield rel
            return
        yield from self.paths(pattern, None)

    def listdir(self, folder: str = "") -> Iterator[str]:
        """Direct children of a folder: file paths, and sub-folders ending with `/`."""
        if folder and not folder.endswith("/"):
            folder += "/"
        for name in self.paths(folder, "/"):
            # A folder whose files were all removed still holds tombstones until the next GC.
            if not name.endswith("/") or next(self.paths(name, None), None) is not None:
                yield name

    def entries(self, paths: Iterable[str]) -> Iterator[Entry]:
        """Index entries for `paths`, fetched in parallel, in order; vanished ones skipped."""
        for entry in self.pool.map(self.stat, paths):
            if entry is not None:
                yield entry

    def paths(self, prefix: str, delimiter: str | None) -> Iterator[str]:
        """Live paths (and with a delimiter, folders) under `prefix`; tombstones skipped."""
        for item in self.backend.list_keys(self.base + prefix, delimiter=delimiter):
            if isinstance(item, str):
                yield item[len(self.base) :]
            elif item.size > 0:  # zero-byte objects are tombstones
                yield item.key[len(self.base) :]

    def lookup(self, keys: list[str]) -> list[Current]:
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
                got = dict(zip(found, self.pool.map(self.backend.get, found), strict=True))
                return [got.get(k) for k in keys]
        return list(self.pool.map(self.backend.get, keys))

    # -- writing ----------------------------------------------------------------------------
    def write(self, key: str, item: NewPath, seen: Current) -> tuple[Entry, Outcome] | StoreError:
        """Create the entry at `key`, where the index held `seen` (None, or a tombstone that is
        replaced exactly); a lost race answers by comparing with the winner's entry."""
        entry = Entry(item.path, item.digest, item.size, now_iso(), item.job)
        try:
            if seen is None:
                self.backend.put(key, entry.to_bytes(), create_only=True)
            else:
                self.backend.put(key, entry.to_bytes(), if_match=seen[1])
        except PreconditionFailed:
            current = self.stat(item.path)
            if current is None:
                return StoreError(f"bx://{item.path} changed concurrently; retry")
            return compare(current, item)
        return entry, Outcome.CREATED

    def tombstone(self, path: str) -> Entry:
        """Replace the entry at `path` by a tombstone; return the entry this call removed (of
        two concurrent calls, exactly one returns it, the other raises NotFoundError)."""

        def remove(body: bytes | None) -> tuple[bytes | None, Entry]:
            if not body:
                raise NotFoundError(f"bx://{path} not found in environment {self.name!r}")
            return b"", Entry.from_bytes(path, body)

        return swap(self.backend, self.key(path), remove)

    def drop_tombstones(self) -> int:
        """Delete every tombstone; only safe while no writer runs (the collector's lease)."""
        dropped = 0
        for item in self.backend.list_keys(self.base):
            if isinstance(item, ObjectInfo) and item.size == 0:
                self.backend.delete(item.key)
                dropped += 1
        return dropped
