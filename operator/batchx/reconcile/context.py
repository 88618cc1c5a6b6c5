"""What every reconciler needs: settings, the API client, per-key serialisation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from batchx.clients.kube import Kube, Unavailable
from batchx.planning.ledger import ChargeRecord, Recorded
from batchx.settings import Settings
from batchx.store.fs import Store

JSON = dict[str, Any]
WAKEUP_RETRY_SECONDS = 5.0  # a wake-up that met an unavailable API server runs again then


@dataclass(frozen=True)
class Notice:
    """An Event to post about `ref` (`batchx.planning.events.involved`); `order` is its place
    in the object's story (`batchx.planning.events.job_order`); `at` when it happened, the
    Event's time: a handler posts its notices when it returns, and an admission call that
    started a job's pod returns after the pod's own handler may have posted what followed."""

    ref: JSON
    type: str
    reason: str
    message: str
    order: int = 0
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


@dataclass
class Outcome:
    """What a reconcile wants the handler to do: post Events, maybe retry later."""

    notices: list[Notice] = field(default_factory=list)
    retry_after: float | None = None
    retry_reason: str = ""
    # Pipelines (namespace, name) one of whose children changed state: their status.children
    # is brought up to date before the reconcile returns (batchx.reconcile.pipeline).
    parents: set[tuple[str, str]] = field(default_factory=set)


class KeyedLocks:
    """One asyncio.Lock per key. Kopf runs handlers of different objects concurrently, and the
    timer of an object concurrently with its handlers; reconciles that write the same objects
    (an environment's status, the labels of one namespace's images) take the same key, so
    every write is computed from reads made after the previous write finished.

    A key's lock lives only while someone holds it or waits for it: keys are per job, and an
    operator that has run 10,000 jobs must not keep 10,000 locks."""

    def __init__(self) -> None:
        self._locks: dict[str, tuple[asyncio.Lock, int]] = {}  # the lock, holders + waiters

    @asynccontextmanager
    async def hold(self, key: str) -> AsyncIterator[None]:
        lock, users = self._locks.get(key) or (asyncio.Lock(), 0)
        self._locks[key] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._locks[key]
            if users == 1:
                del self._locks[key]
            else:
                self._locks[key] = (lock, users - 1)

    def __len__(self) -> int:
        """Keys held or waited for now."""
        return len(self._locks)


class Coalescer:
    """Runs `fn` for a key; calls that arrive while it runs fold into one more run after it.

    A burst of job events for one environment then costs at most two recomputations of its
    credits, and the last one always starts after the last event arrived.
    """

    def __init__(self) -> None:
        self._running: set[str] = set()
        self._dirty: set[str] = set()

    async def run(self, key: str, fn: Callable[[], Awaitable[None]]) -> None:
        if key in self._running:
            self._dirty.add(key)
            return
        self._running.add(key)
        try:
            while True:
                self._dirty.discard(key)
                await fn()
                if key not in self._dirty:
                    return
        finally:
            self._running.discard(key)
            self._dirty.discard(key)


class Wakeups:
    """One pending wake-up per key: `at` (re)arms it, `cancel` drops it.

    For what no watch event announces, like a job's deadline: the reconcile that learns the
    moment arms a call of itself then, instead of waiting for the periodic resync. The call
    runs as a task of its own; a wake-up armed again for the same moment is left as it is.
    """

    def __init__(self) -> None:
        self._pending: dict[str, tuple[float, asyncio.TimerHandle]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def at(self, key: str, delay: float, fn: Callable[[], Coroutine[Any, Any, None]]) -> None:
        loop = asyncio.get_running_loop()
        when = loop.time() + max(0.0, delay)
        pending = self._pending.get(key)
        if pending is not None:
            if abs(pending[0] - when) < 0.5:
                return
            pending[1].cancel()

        async def run() -> None:
            try:
                await fn()
            except Unavailable:  # the API server is away (a restart): late, not lost
                self.at(key, WAKEUP_RETRY_SECONDS, fn)

        def fire() -> None:
            self._pending.pop(key, None)
            task = loop.create_task(run())
            self._tasks.add(task)  # a reference, or the task may be collected mid-run
            task.add_done_callback(self._tasks.discard)

        self._pending[key] = (when, loop.call_at(when, fire))

    def cancel(self, key: str) -> None:
        pending = self._pending.pop(key, None)
        if pending is not None:
            pending[1].cancel()

    def close(self) -> None:
        """Drop every pending wake-up and cancel the running ones (operator shutdown)."""
        for _, handle in self._pending.values():
            handle.cancel()
        self._pending.clear()
        for task in list(self._tasks):
            task.cancel()

    def pending(self, key: str) -> float | None:
        """The loop time `key` wakes at, or None."""
        pending = self._pending.get(key)
        return None if pending is None else pending[0]


class RecordedCharges:
    """The charge records known to exist, per namespace (by job uid).

    A charge record is immutable and nobody deletes it (it goes with its namespace), so a job
    seen recorded stays recorded: the ledger then makes no create attempt (an AlreadyExists
    and a read back) at each of the job's later events, of which a restarted operator gets one
    per job. A namespace's records are listed once (`loaded` only after that full listing),
    then every record this process makes or reads is added: so once loaded, the known records
    are all of them, and the ledger's frequent reads (each admission pass, each job event) take
    them from here instead of listing one ConfigMap per charged job each time. A record is added
    before its job is labelled finished (`batchx.planning.finished`), so no charge is ever out of
    both the listing of unfinished jobs and this. A namespace of an old name again (an
    Environment re-created) only holds new uids.
    """

    def __init__(self) -> None:
        self._records: dict[str, dict[str, ChargeRecord]] = {}
        self._totals: dict[str, Decimal] = {}
        self._loaded: set[str] = set()

    def loaded(self, namespace: str) -> bool:
        return namespace in self._loaded

    def load(self, namespace: str, records: Iterable[ChargeRecord]) -> None:
        """A full listing of the namespace's records (added to what is known: never removes)."""
        self.add(namespace, records)
        self._loaded.add(namespace)

    def add(self, namespace: str, records: Iterable[ChargeRecord]) -> None:
        known = self._records.setdefault(namespace, {})
        for record in records:
            if record.job_uid not in known:  # the first write is the one that counts
                known[record.job_uid] = record
                self._totals[namespace] = self._totals.get(namespace, Decimal(0)) + record.amount

    def has(self, namespace: str, uid: str) -> bool:
        return uid in self._records.get(namespace, {})

    def summary(self, namespace: str) -> Recorded:
        """The known records' uids and their sum, as of now (a copy: the two stay in step)."""
        uids = frozenset(self._records.get(namespace, {}))
        return Recorded(uids, self._totals.get(namespace, Decimal(0)))


class FinishedJobs:
    """The labelled (finished) Jobs of each namespace, by uid: their final states.

    The ledger and admission read only unfinished Jobs (`batchx.planning.finished`); the job
    counts by state (`batchx_jobs`) still want the finished ones. A namespace's labelled Jobs
    are listed once per process, at its first count, then kept by the labels this process sets
    and the deletions it handles.
    """

    def __init__(self) -> None:
        self._states: dict[str, dict[str, str]] = {}

    def loaded(self, namespace: str) -> bool:
        return namespace in self._states

    def load(self, namespace: str, states: dict[str, str]) -> None:
        self._states.setdefault(namespace, {}).update(states)

    def add(self, namespace: str, uid: str, state: str) -> None:
        if namespace in self._states:  # not loaded yet: its listing will include this one
            self._states[namespace][uid] = state

    def remove(self, namespace: str, uid: str) -> None:
        self._states.get(namespace, {}).pop(uid, None)

    def states(self, namespace: str) -> dict[str, str]:
        return dict(self._states.get(namespace, {}))


class Plans:
    """The manifest each unfinished job's plan ConfigMap holds, by job uid.

    A plan is immutable (created once, a function of the job's immutable spec), yet every
    reconcile of a running job read it again: one request of the three or four each pod event
    costs. Kept from the plan's creation (or first read) until the job is seen final or
    released, so it holds one entry per unfinished job this process has seen, never more.
    """

    def __init__(self) -> None:
        self._manifests: dict[str, JSON] = {}

    def get(self, uid: str) -> JSON | None:
        return self._manifests.get(uid)

    def keep(self, uid: str, manifest: JSON) -> None:
        self._manifests[uid] = manifest

    def drop(self, uid: str) -> None:
        self._manifests.pop(uid, None)

    def __len__(self) -> int:
        return len(self._manifests)


@dataclass
class Context:
    settings: Settings
    kube: Kube
    store: Store | None = None
    # BATCHX_STORE + AWS_* for the runner containers (Settings.store_credentials), read once.
    store_credentials: dict[str, str] = field(default_factory=dict)
    locks: KeyedLocks = field(default_factory=KeyedLocks)
    coalescer: Coalescer = field(default_factory=Coalescer)
    wakeups: Wakeups = field(default_factory=Wakeups)
    recorded: RecordedCharges = field(default_factory=RecordedCharges)
    plans: Plans = field(default_factory=Plans)
    finished: FinishedJobs = field(default_factory=FinishedJobs)
    # The status this process last wrote per object key, to tell a stale read from news.
    written: dict[str, JSON] = field(default_factory=dict)
