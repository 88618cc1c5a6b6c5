"""Scheduled garbage collection of the store's unreferenced blobs (`batchx.store.gc`).

`rm`, a deleted Environment and a failed upload leave blobs nobody references; only a
collection gives their bytes back. The operator runs one every `gcIntervalSeconds` (default
daily; 0: never). Safety against concurrent writers is the store's own (the exclusive lease and
the grace period, see `batchx.store.gc`): the collector opens a `Store` of its own so that its
exclusive lease never cuts the operator's own writer lease under a write in flight.

When the last run was is kept in the store (`gc/last`, the report of that run), so an operator
that restarts more often than the interval still collects; the time is the operator's clock,
which for intervals of hours is exact enough. A run that finds writers busy past the lease wait
(StoreBusyError) or a store that does not answer is logged and tried again after
`RETRY_SECONDS`. Each run logs one line and feeds `batchx_store_gc_*` metrics.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict

from batchx import metrics
from batchx.store.errors import StoreBusyError
from batchx.store.fs import GcReport, Store

logger = logging.getLogger(__name__)

LAST_RUN_KEY = "gc/last"
RETRY_SECONDS = 600.0


def due_in(store: Store, interval: float, now: float | None = None) -> float:
    """Seconds until the next collection is due (0: now; never run before counts as due)."""
    got = store.backend.get(LAST_RUN_KEY)
    if got is None:
        return 0.0
    try:
        finished = float(json.loads(got[0])["finished"])
    except (ValueError, KeyError, TypeError):
        return 0.0  # an unreadable record: collect, which rewrites it
    return max(0.0, finished + interval - (time.time() if now is None else now))


def collect_once(store: Store, grace: float) -> GcReport:
    """One collection; its report is recorded in the store, the metrics and one log line."""
    started = time.monotonic()
    try:
        report = store.gc(grace=grace)
    except StoreBusyError:
        metrics.GC_RUNS.labels("busy").inc()
        raise
    except Exception:
        metrics.GC_RUNS.labels("error").inc()
        raise
    seconds = time.monotonic() - started
    record = {"finished": time.time(), "seconds": round(seconds, 3), **asdict(report)}
    store.backend.put(LAST_RUN_KEY, json.dumps(record).encode())
    metrics.GC_RUNS.labels("ok").inc()
    metrics.GC_RECLAIMED_BYTES.inc(report.deleted_bytes)
    metrics.GC_LAST_RUN.set(record["finished"])
    logger.info(
        "store garbage collection: deleted %d unreferenced blobs (%d bytes), kept %d younger "
        "than %.0fs, %d referenced; dropped %d tombstones, swept %d leftovers in %.1fs",
        report.deleted_blobs,
        report.deleted_bytes,
        report.kept_young,
        grace,
        report.referenced,
        report.tombstones,
        report.swept,
        seconds,
    )
    return report


async def run_forever(open_collector: Callable[[], Store], interval: float, grace: float) -> None:
    """Collect whenever due, until cancelled (the operator's cleanup cancels it)."""
    store = await asyncio.to_thread(open_collector)
    try:
        while True:
            try:
                await asyncio.sleep(await asyncio.to_thread(due_in, store, interval))
                await asyncio.to_thread(collect_once, store, grace)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # busy writers, an unreachable store: try again later
                logger.warning(
                    "store garbage collection did not run: %s; next try in %.0fs",
                    exc,
                    min(RETRY_SECONDS, interval),
                )
                await asyncio.sleep(min(RETRY_SECONDS, interval))
    finally:
        await asyncio.to_thread(store.close)
