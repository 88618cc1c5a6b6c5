"""How many of an environment's paths name each blob, and the quota charge that goes with it.

    envs/<env>/refs/<sha256>    {"size", "count"}

Why counts per environment: a blob is charged to an environment's quota once, when its count
goes 0 -> n, however many paths (copies, aliases, cache hits) name it; the collector keeps every
blob some environment counts. Quota is reserved before a count goes up, so a refusal leaves
nothing to undo, and counts are raised before an index entry is written and lowered after it is
removed (see `fs`): a crash leaves a count too high, a leaked blob, never a collected one in use.
"""

from __future__ import annotations

import json
from concurrent.futures import Executor

from batchx.store.backend import Backend
from batchx.store.cas import Current, swap
from batchx.store.errors import QuotaExceededError
from batchx.store.index import NewPath
from batchx.store.usage import UsageRecord


def count_of(body: bytes) -> int:
    return int(json.loads(body).get("count", 0))


def _body(size: int, count: int) -> bytes:
    return json.dumps({"size": size, "count": count}).encode()


def count_by_digest(items: list[NewPath]) -> dict[str, tuple[int, int]]:
    """digest -> (size, how many of `items` name it)."""
    counts: dict[str, tuple[int, int]] = {}
    for item in items:
        size, n = counts.get(item.digest, (item.size, 0))
        counts[item.digest] = (size, n + 1)
    return counts


class Refs:
    """The reference counts of environment `name`; charges and refunds go to `usage`."""

    def __init__(self, backend: Backend, name: str, usage: UsageRecord, pool: Executor) -> None:
        self.backend, self.usage, self.pool = backend, usage, pool
        self.base = f"envs/{name}/refs/"

    def key(self, digest: str) -> str:
        return self.base + digest

    def read(self, digest: str) -> Current:
        return self.backend.get(self.key(digest))

    def reference(self, items: list[NewPath], fresh: set[str]) -> None:
        """Count `items` (each path adds one to its blob's count) and charge the blobs the
        environment did not hold, plus the files, to its usage. Blobs in `fresh` were just
        created by this writer, so no environment can count them yet: their count is written
        create-only without reading it first. QuotaExceededError before anything is counted."""
        counts = count_by_digest(items)
        look = [d for d in counts if d not in fresh]
        current: dict[str, Current] = dict.fromkeys(counts)
        current.update(zip(look, self.pool.map(self.read, look), strict=True))
        unheld = {
            d: counts[d][0] for d, got in current.items() if got is None or not count_of(got[0])
        }
        # Reserve quota for blobs the env does not hold yet, before counting: a refusal then
        # leaves nothing to undo. One compare-and-swap for the whole batch.
        try:
            self.usage.change(sum(unheld.values()), len(unheld), len(items))
        except QuotaExceededError:
            if look == list(counts):
                raise
            # Assumed new blobs might be held after all (a concurrent writer): decide exactly.
            self.reference(items, set())
            return
        reserved = set(unheld)
        refunds: dict[str, int] = {}

        def count(digest: str) -> None:
            size, n = counts[digest]
            self._add(digest, size, n, current[digest], reserved=reserved, refunds=refunds)

        # A failure part-way leaves counts and usage too high: the safe direction (see top).
        list(self.pool.map(count, counts))
        if refunds:
            self.usage.change(-sum(refunds.values()), -len(refunds), 0)

    def _add(
        self,
        digest: str,
        size: int,
        n: int,
        got: Current,
        *,
        reserved: set[str],
        refunds: dict[str, int],
    ) -> None:
        """Add `n` to the count, starting from `got` (what was read, or None: assumed absent).
        `reserved` and `refunds` are only touched for this digest by this thread; refunds of a
        reservation someone else's count made redundant are applied after the batch (usage
        is too high meanwhile: the safe direction)."""

        def step(body: bytes | None) -> tuple[bytes, None]:
            count = 0 if body is None else count_of(body)
            held = count > 0
            if held and digest in reserved:
                reserved.discard(digest)  # someone else charged it meanwhile
                refunds[digest] = size
            if not held and digest not in reserved:
                if refunds.pop(digest, None) is None:
                    self.usage.change(size, 1, 0)
                reserved.add(digest)
            return _body(size, count + n), None

        swap(self.backend, self.key(digest), step, current=got)

    def unreference(self, items: list[NewPath]) -> None:
        """Take `items` off the counts; refund the blobs whose count reached zero, and the
        files, from the usage."""
        counts = count_by_digest(items)

        def release(digest: str) -> int:
            size, n = counts[digest]

            def step(body: bytes | None) -> tuple[bytes | None, int]:
                if body is None:
                    return None, -1
                before = count_of(body)
                after = max(0, before - n)
                return _body(size, after), (size if after == 0 and before > 0 else -1)

            return swap(self.backend, self.key(digest), step)

        freed = [s for s in self.pool.map(release, counts) if s >= 0]
        self.usage.change(-sum(freed), -len(freed), -len(items))
