"""Leases that keep garbage collection and writers apart (restic's lock protocol, on S3).

A writer holds a shared `locks/write-<id>` lease while it may reference a blob it has seen; the
collector holds an exclusive `locks/gc-<id>` lease while it deletes. Each side *writes its own
lease first, then lists the others* and backs off on conflict: with S3's strong read-after-write
and list consistency at least one of two racing parties sees the other, so a blob can never be
deleted between a writer's "it exists" and its reference being recorded.

Freshness is judged by the backend's clock only (LastModified of the leases, compared with the
LastModified of the lease just written), so client clock skew does not matter. A lease older
than `ttl` belongs to a crashed process and is ignored. Writers refresh theirs every `ttl/3`
while working; a writer that could not refresh within `ttl` (a paused process) is told its lease
lapsed and must re-check the blobs it relies on before recording references.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid

from batchx.store.backend import Backend, ObjectInfo
from batchx.store.errors import StoreBusyError

PREFIX = "locks/"
DEFAULT_TTL = 600.0


class Lease:
    """One shared (`write`) or exclusive (`gc`) lease; thread-safe."""

    def __init__(self, backend: Backend, kind: str, ttl: float = DEFAULT_TTL) -> None:
        if kind not in ("write", "gc"):
            raise ValueError(kind)
        self.backend, self.kind, self.ttl = backend, kind, ttl
        self.key = f"{PREFIX}{kind}-{uuid.uuid4().hex}"
        self.server_now = 0.0
        self._refreshed: float | None = None  # monotonic time of the last successful write
        self._mutex = threading.Lock()

    @property
    def held(self) -> bool:
        return self._refreshed is not None

    def acquire(self, wait: float = 120.0) -> None:
        """Take the lease, polling (with a deadline) while a conflicting one is fresh."""
        deadline = time.monotonic() + wait
        delay = 0.05
        while True:
            conflict = self._try()
            if conflict is None:
                return
            if time.monotonic() >= deadline:
                raise StoreBusyError(
                    f"store busy: {conflict} holds a conflicting lease (waited {wait:.0f}s); "
                    "garbage collection and writes exclude each other, try again shortly"
                )
            time.sleep(delay)  # polling a remote lock: nothing to wait on locally
            delay = min(delay * 2, 1.0)

    def keepalive(self) -> None:
        """Refresh the lease when a third of its ttl has passed (cheap to call often)."""
        with self._mutex:
            if self._refreshed is not None and time.monotonic() - self._refreshed > self.ttl / 3:
                self._write()

    def still_valid(self) -> bool:
        """True when the lease has been continuously held; False (and re-acquired) if it lapsed,
        in which case the caller must re-verify what it learnt before."""
        with self._mutex:
            lapsed = self._refreshed is None or time.monotonic() - self._refreshed > self.ttl * 0.8
        if lapsed:
            self.release()
            self.acquire()
            return False
        self.keepalive()
        return True

    def release(self) -> None:
        with self._mutex:
            if self._refreshed is not None:
                self.backend.delete(self.key)
                self._refreshed = None

    def _write(self) -> None:
        body = {"kind": self.kind, "host": socket.gethostname(), "pid": os.getpid()}
        started = time.monotonic()
        self.backend.put(self.key, json.dumps(body).encode())
        self._refreshed = started

    def _try(self) -> str | None:
        with self._mutex:
            self._write()
        others: list[ObjectInfo] = []
        mine: ObjectInfo | None = None
        for item in self.backend.list_keys(PREFIX):
            if isinstance(item, ObjectInfo):
                if item.key == self.key:
                    mine = item
                else:
                    others.append(item)
        self.server_now = mine.modified if mine is not None else time.time()
        for other in others:
            if other.modified < self.server_now - self.ttl:
                continue  # a crashed holder's lease
            name = other.key[len(PREFIX) :]
            if self.kind == "gc" or name.startswith("gc-"):
                self.release()
                return name
        return None
