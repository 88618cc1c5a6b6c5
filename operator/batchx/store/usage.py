"""An environment's usage record and storage quota, kept in the store itself.

    envs/<env>/usage            {"bytes", "blobs", "files", "quota"}

Why in the store and not in the Environment's status: every writer (the CLI, stage-out, the
cache) must check the quota in the same atomic step that charges it, and only the object store
offers that step to all of them (a compare-and-swap on this one record). The operator syncs
`spec.quota.storage` into it with `set_quota` and reports the usage back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from batchx.store.backend import Backend
from batchx.store.cas import swap
from batchx.store.errors import QuotaExceededError


@dataclass(frozen=True)
class Usage:
    bytes: int = 0
    blobs: int = 0
    files: int = 0
    quota: int | None = None


def _decode(data: bytes) -> Usage:
    raw: dict[str, Any] = json.loads(data)
    quota = raw.get("quota")
    return Usage(
        int(raw.get("bytes", 0)),
        int(raw.get("blobs", 0)),
        int(raw.get("files", 0)),
        None if quota is None else int(quota),
    )


class UsageRecord:
    """The usage object of environment `name`."""

    def __init__(self, backend: Backend, name: str) -> None:
        self.backend, self.name = backend, name
        self.key = f"envs/{name}/usage"

    def read(self) -> Usage:
        got = self.backend.get(self.key)
        return Usage() if got is None else _decode(got[0])

    def set_quota(self, quota: int | None) -> Usage:
        """Record `spec.quota.storage` (bytes, None = unlimited); lowering it below the usage
        refuses new content but deletes nothing."""
        return self.update(lambda u: Usage(u.bytes, u.blobs, u.files, quota))

    def change(self, add_bytes: int, add_blobs: int, add_files: int) -> Usage:
        """Add to the counters (never below zero); QuotaExceededError, with nothing written,
        when added bytes would pass the quota."""
        if add_bytes == add_blobs == add_files == 0:
            return self.read()

        def apply(u: Usage) -> Usage:
            if add_bytes > 0 and u.quota is not None and u.bytes + add_bytes > u.quota:
                raise QuotaExceededError(self.name, u.bytes, add_bytes, u.quota)
            return Usage(
                max(0, u.bytes + add_bytes),
                max(0, u.blobs + add_blobs),
                max(0, u.files + add_files),
                u.quota,
            )

        return self.update(apply)

    def update(self, change: Callable[[Usage], Usage]) -> Usage:
        def step(body: bytes | None) -> tuple[bytes, Usage]:
            new = change(Usage() if body is None else _decode(body))
            return json.dumps(asdict(new)).encode(), new

        return swap(self.backend, self.key, step)
