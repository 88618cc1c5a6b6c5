"""How many of an environment's paths name each blob, and the quota charge that goes with it.

    envs/<env>/refs/<sha256>    {"size", "count"}: a count (may be below zero, see below)
    envs/<env>/batches/<id>     {"counts": {sha256: [size, count]}}: one batch record per commit

Why counts per environment: a blob is charged to an environment's quota once, when its count
goes 0 -> n, however many paths (copies, aliases, cache hits) name it; the collector keeps every
blob some environment counts. Quota is reserved before a count goes up, so a refusal leaves
nothing to undo, and counts are raised before an index entry is written and lowered after it is
removed (see `fs`): a crash leaves a count too high, a leaked blob, never a collected one in use.

Why batch records: a commit of many small files used to write one count object per new blob,
the largest share of the S3 calls per file. The blobs a commit's own uploads created (the
create-only PUT won, so no environment can count them yet) are counted instead in *one*
create-only record for the whole commit. A blob's count is then its `refs/` object plus what the
records hold for it: `refs/` objects written later (another path naming the blob, a removal)
hold the difference, which may be below zero. Records are immutable and cached by key; a reader
lists them (one listing per call) and the collector folds them into `refs/` objects under its
exclusive lease, when no writer runs, so there are only as many as were committed since.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterable
from concurrent.futures import Executor

from batchx.store.backend import Backend, ObjectInfo
from batchx.store.cas import Current, swap
from batchx.store.errors import QuotaExceededError
from batchx.store.index import NewPath
from batchx.store.usage import UsageRecord

Counts = dict[str, tuple[int, int]]
"""digest -> (size, count)."""


def count_of(body: bytes) -> int:
    return int(json.loads(body).get("count", 0))


def _body(size: int, count: int) -> bytes:
    return json.dumps({"size": size, "count": count}).encode()


def count_by_digest(items: list[NewPath]) -> Counts:
    """digest -> (size, how many of `items` name it)."""
    counts: Counts = {}
    for item in items:
        size, n = counts.get(item.digest, (item.size, 0))
        counts[item.digest] = (size, n + 1)
    return counts


class RecordCache:
    """Batch records already read, by key (they never change; the collector deletes them).
    One per Store, shared by its environments; thread-safe."""

    def __init__(self) -> None:
        self._records: dict[str, Counts] = {}
        self._mutex = threading.Lock()

    def get(self, key: str) -> Counts | None:
        with self._mutex:
            return self._records.get(key)

    def put(self, key: str, counts: Counts) -> None:
        with self._mutex:
            self._records[key] = counts

    def keep(self, prefix: str, keys: set[str]) -> None:
        """Forget the records under `prefix` that are no longer listed (folded)."""
        with self._mutex:
            for key in [k for k in self._records if k.startswith(prefix) and k not in keys]:
                del self._records[key]


def decode_record(body: bytes) -> Counts:
    raw = json.loads(body).get("counts") or {}
    return {d: (int(v[0]), int(v[1])) for d, v in raw.items()}


class Refs:
    """The reference counts of environment `name`; charges and refunds go to `usage`."""

    def __init__(
        self,
        backend: Backend,
        name: str,
        usage: UsageRecord,
        pool: Executor,
        cache: RecordCache | None = None,
    ) -> None:
        self.backend, self.usage, self.pool = backend, usage, pool
        self.cache = cache or RecordCache()
        self.base = f"envs/{name}/refs/"
        self.batches = f"envs/{name}/batches/"

    def key(self, digest: str) -> str:
        return self.base + digest

    def read(self, digest: str) -> Current:
        return self.backend.get(self.key(digest))

    # -- batch records ----------------------------------------------------------------------
    def records(self) -> dict[str, Counts]:
        """The batch records not folded yet, by key (one listing; bodies cached)."""
        keys = [i.key for i in self.backend.list_keys(self.batches) if isinstance(i, ObjectInfo)]
        self.cache.keep(self.batches, set(keys))
        found = {k: c for k in keys if (c := self.cache.get(k)) is not None}
        unread = [k for k in keys if k not in found]
        for key, got in zip(unread, self.pool.map(self.backend.get, unread), strict=True):
            if got is not None:
                found[key] = decode_record(got[0])
                self.cache.put(key, found[key])
        return found

    def pending(self) -> dict[str, int]:
        """digest -> the count the batch records hold for it."""
        total: dict[str, int] = {}
        for counts in self.records().values():
            for digest, (_, n) in counts.items():
                total[digest] = total.get(digest, 0) + n
        return total

    def counts(self, digests: Iterable[str]) -> dict[str, int]:
        """The current count of each digest (its `refs/` object plus the batch records)."""
        wanted = list(digests)
        pending = self.pending()
        got = self.pool.map(self.read, wanted)
        return {
            d: (0 if g is None else count_of(g[0])) + pending.get(d, 0)
            for d, g in zip(wanted, got, strict=True)
        }

    def _write_record(self, counts: Counts) -> None:
        key = f"{self.batches}{uuid.uuid4().hex}"
        body = {"counts": {d: [s, n] for d, (s, n) in sorted(counts.items())}}
        self.backend.put(key, json.dumps(body, separators=(",", ":")).encode(), create_only=True)
        self.cache.put(key, dict(counts))

    # -- counting ---------------------------------------------------------------------------
    def reference(self, items: list[NewPath], fresh: set[str]) -> None:
        """Count `items` (each path adds one to its blob's count) and charge the blobs the
        environment did not hold, plus the files, to its usage. Blobs in `fresh` were just
        created by this writer, so no environment can count them yet: they are counted in one
        batch record, without reading anything. QuotaExceededError before anything is counted.
        """
        counts = count_by_digest(items)
        new = {d: c for d, c in counts.items() if d in fresh}
        look = [d for d in counts if d not in fresh]
        pending = self.pending() if look else {}
        current: dict[str, Current] = dict(zip(look, self.pool.map(self.read, look), strict=True))

        def held(digest: str) -> bool:
            got = current[digest]
            return (0 if got is None else count_of(got[0])) + pending.get(digest, 0) > 0

        unheld = {d: counts[d][0] for d in look if not held(d)}
        unheld |= {d: size for d, (size, _) in new.items()}
        # Reserve quota for blobs the env does not hold yet, before counting: a refusal then
        # leaves nothing to undo. One compare-and-swap for the whole batch.
        try:
            self.usage.change(sum(unheld.values()), len(unheld), len(items))
        except QuotaExceededError:
            if not new:
                raise
            # Assumed new blobs might be held after all (a wrong claim): decide exactly.
            self.reference(items, set())
            return
        if new:
            # A failure from here on leaves usage too high: the safe direction (see top).
            self._write_record(new)
        reserved = {d for d in unheld if d not in new}
        refunds: dict[str, int] = {}

        def count(digest: str) -> None:
            size, n = counts[digest]
            extra = pending.get(digest, 0)
            self._add(
                digest, size, n, current[digest], pending=extra, reserved=reserved, refunds=refunds
            )

        list(self.pool.map(count, look))
        if refunds:
            self.usage.change(-sum(refunds.values()), -len(refunds), 0)

    def _add(
        self,
        digest: str,
        size: int,
        n: int,
        got: Current,
        *,
        pending: int,
        reserved: set[str],
        refunds: dict[str, int],
    ) -> None:
        """Add `n` to the count, starting from `got` (what was read) and `pending` (what the
        batch records hold). `reserved` and `refunds` are only touched for this digest by this
        thread; refunds of a reservation someone else's count made redundant are applied after
        the batch (usage is too high meanwhile: the safe direction)."""

        def step(body: bytes | None) -> tuple[bytes, None]:
            stored = 0 if body is None else count_of(body)
            held = stored + pending > 0
            if held and digest in reserved:
                reserved.discard(digest)  # someone else charged it meanwhile
                refunds[digest] = size
            if not held and digest not in reserved:
                if refunds.pop(digest, None) is None:
                    self.usage.change(size, 1, 0)
                reserved.add(digest)
            return _body(size, stored + n), None

        swap(self.backend, self.key(digest), step, current=got)

    def unreference(self, items: list[NewPath]) -> None:
        """Take `items` off the counts; refund the blobs whose count reached zero, and the
        files, from the usage."""
        counts = count_by_digest(items)
        pending = self.pending()

        def release(digest: str) -> int:
            size, n = counts[digest]
            extra = pending.get(digest, 0)

            def step(body: bytes | None) -> tuple[bytes | None, int]:
                stored = 0 if body is None else count_of(body)
                before = stored + extra
                if before <= 0:
                    return None, -1
                after = max(0, before - n)
                return _body(size, after - extra), (size if after == 0 else -1)

            return swap(self.backend, self.key(digest), step)

        freed = [s for s in self.pool.map(release, counts) if s >= 0]
        self.usage.change(-sum(freed), -len(freed), -len(items))

    # -- folding (the collector, under its exclusive lease) --------------------------------
    def fold(self) -> tuple[Counts, int]:
        """Fold the batch records into `refs/` objects; every digest's (size, count) with a
        count above zero, and how many records were folded. Only safe while no writer runs
        (the collector's lease): zero counts are deleted. A crash part-way leaves a record and
        its folded counts both: counts too high (a leaked blob), never too low."""
        records = self.records()
        pending: Counts = {}
        for counts in records.values():
            for d, (s, n) in counts.items():
                pending[d] = (s, pending.get(d, (s, 0))[1] + n)
        live: Counts = {}
        for item in self.backend.list_keys(self.base):
            if not isinstance(item, ObjectInfo):
                continue
            digest = item.key[len(self.base) :]
            got = self.backend.get(item.key)
            if got is None:
                continue
            raw = json.loads(got[0])
            size, extra = pending.pop(digest, (int(raw.get("size", 0)), 0))
            total = int(raw.get("count", 0)) + extra
            if total > 0:
                live[digest] = (size, total)
                if extra:
                    self.backend.put(item.key, _body(size, total), if_match=got[1])
            else:
                self.backend.delete(item.key)  # safe: no writer can be counting right now
        for digest, (size, n) in pending.items():  # counted in records only
            if n > 0:
                live[digest] = (size, n)
                self.backend.put(self.key(digest), _body(size, n), create_only=True)
        for key in records:
            self.backend.delete(key)
        self.cache.keep(self.batches, set())
        return live, len(records)
