"""The operator's scheduled garbage collection (`batchx.reconcile.gc`) on a local store: what an
`rm` left is collected on schedule, the run is recorded (store, metrics, one log line), and a
restarted operator waits for the interval instead of collecting again."""

from __future__ import annotations

import asyncio
import json
import logging
from pathlib import Path

import pytest

from batchx import metrics
from batchx.reconcile import gc
from batchx.store import Store, open_store
from batchx.store.errors import StoreBusyError
from batchx.store.leases import Lease


def _garbage(store: Store) -> str:
    """A blob that only a removed path named (what `bx rm` leaves), and one still named."""
    files = store.env("lab")
    gone = files.put_bytes("old", b"removed content" * 100).entry
    files.put_bytes("kept", b"kept content")
    files.delete("old")
    store.close()  # a writer that finished: its lease is released
    return gone.digest


def test_a_run_deletes_unreferenced_blobs_and_records_itself(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    url = f"file://{tmp_path / 'store'}"
    digest = _garbage(open_store(url))
    before = metrics.GC_RECLAIMED_BYTES._value.get()
    with open_store(url, lease_wait=0.5) as store:
        assert gc.due_in(store, 86400) == 0.0  # never collected: due now
        caplog.set_level(logging.INFO, logger="batchx.reconcile.gc")
        report = gc.collect_once(store, grace=0)
        assert (report.deleted_blobs, report.deleted_bytes, report.referenced) == (1, 1500, 1)
        assert store.backend.blob_size(digest) is None
        assert store.env("lab").read_bytes("kept") == b"kept content"
        assert metrics.GC_RECLAIMED_BYTES._value.get() - before == 1500
        got = store.backend.get(gc.LAST_RUN_KEY)
        assert got is not None
        assert json.loads(got[0])["deleted_bytes"] == 1500
        # A restarted operator: the next run is an interval after this one, not now.
        assert 86300 < gc.due_in(store, 86400) <= 86400
    lines = [r.getMessage() for r in caplog.records if r.name == "batchx.reconcile.gc"]
    assert len(lines) == 1
    assert "deleted 1 unreferenced blobs (1500 bytes)" in lines[0]


def test_busy_writers_are_counted_and_leave_the_blobs(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'store'}"
    digest = _garbage(open_store(url))
    with open_store(url, lease_wait=0.2) as store:
        writer = Lease(store.backend, "write")
        writer.acquire()
        busy = metrics.GC_RUNS.labels("busy")._value.get()
        with pytest.raises(StoreBusyError):
            gc.collect_once(store, grace=0)
        assert metrics.GC_RUNS.labels("busy")._value.get() == busy + 1
        assert store.backend.blob_size(digest) == 1500
        assert gc.due_in(store, 86400) == 0.0  # not recorded: still due
        writer.release()


def test_the_schedule_collects_until_cancelled(tmp_path: Path) -> None:
    url = f"file://{tmp_path / 'store'}"
    digest = _garbage(open_store(url))

    async def scenario() -> None:
        task = asyncio.create_task(gc.run_forever(lambda: open_store(url), 3600, 0))
        with open_store(url) as probe:
            for _ in range(200):  # a deadline of 10 s, checked on the loop (no fixed wait)
                if probe.backend.get(gc.LAST_RUN_KEY) is not None:
                    break
                await asyncio.sleep(0.05)
            assert probe.backend.blob_size(digest) is None
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(scenario())
