"""Prometheus metrics of the operator (`batchx_*`), served on `metricsPort` when it is set.

Labels stay low-cardinality, so an admin can alert on them and Prometheus keeps them cheap:
kinds, results, environments and the thirteen job states, never job or pod names.
Job metrics are counted where a Job's status is written (`job_state_changed`, called by the one
status writer), so a state change counts once per successful write, whichever pass made it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime

from prometheus_client import Counter, Gauge, Histogram, start_http_server

from batchx.models import JobState, JobStatus
from batchx.planning.conditions import find_condition
from batchx.planning.job_admission import SUCCEEDED_CONDITION

RECONCILES = Counter(
    "batchx_reconcile_total", "Reconciles run, by kind and result", ["kind", "result"]
)
RECONCILE_SECONDS = Histogram(
    "batchx_reconcile_duration_seconds", "Time spent in one reconcile, by kind", ["kind"]
)
CREDITS = Gauge(
    "batchx_environment_credits",
    "Credits of an environment (granted, reserved, spent, balance)",
    ["environment", "kind"],
)
STORAGE_BYTES = Gauge(
    "batchx_environment_storage_bytes",
    "Bytes of distinct content an environment references",
    ["environment"],
)

GC_RUNS = Counter(
    "batchx_store_gc_runs_total",
    "Garbage collections of the store's unreferenced blobs, by result (ok, busy, error)",
    ["result"],
)
GC_RECLAIMED_BYTES = Counter(
    "batchx_store_gc_reclaimed_bytes_total",
    "Bytes of unreferenced blobs the store's garbage collection deleted",
)
GC_LAST_RUN = Gauge(
    "batchx_store_gc_last_run_timestamp_seconds",
    "When the last successful garbage collection of the store finished (Unix time)",
)

JOBS = Gauge(
    "batchx_jobs",
    "Jobs of an environment by state (counted at each environment reconcile; QUEUED is the "
    "queue depth)",
    ["environment", "state"],
)
JOB_STATE_CHANGES = Counter(
    "batchx_job_state_changes_total",
    "Job state changes written, by environment and the state entered",
    ["environment", "state"],
)
ADMISSION_SECONDS = Histogram(
    "batchx_job_admission_seconds",
    "Seconds from a job's creation to its admission (queue wait included), by environment",
    ["environment"],
    buckets=(0.5, 1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
)
RUN_SECONDS = Counter(
    "batchx_job_run_seconds_total",
    "Run seconds of finished jobs (container start to end), by environment",
    ["environment"],
)
CREDITS_CHARGED = Counter(
    "batchx_job_credits_charged_total",
    "Credits charged to finished jobs, by environment",
    ["environment"],
)
CACHE_HITS = Counter(
    "batchx_job_cache_hits_total",
    "Jobs served from an identical earlier job's result (no pod, no charge), by environment",
    ["environment"],
)
QUEUE_SECONDS = Histogram(
    "batchx_job_queue_wait_seconds",
    "Seconds an admitted job waited QUEUED (quota, credits) before admission; 0 for a job "
    "admitted at once, by environment",
    ["environment"],
    buckets=(0, 1, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 24 * 3600),
)
STAGING_FAILURES = Counter(
    "batchx_job_staging_failures_total",
    "Jobs that failed moving their files (stage: in = InputStagingFailed, out = "
    "OutputUploadFailed), by environment",
    ["environment", "stage"],
)
FILE_BYTES = Counter(
    "batchx_job_file_bytes_total",
    "Bytes of files finished jobs moved between the store and their pods (direction: in = "
    "downloaded inputs, out = written outputs, counted before deduplication), by environment",
    ["environment", "direction"],
)
API_ERRORS = Counter(
    "batchx_api_errors_total",
    "Kubernetes API calls that failed, by HTTP status (0: the API server was not reached; "
    "404s are answers, not counted)",
    ["status"],
)
API_RETRIES = Counter(
    "batchx_api_retries_total",
    "Kubernetes API calls sent again (refused connection, 503 or 429 while the API server "
    "restarts)",
)
_STAGING_REASONS = {"InputStagingFailed": "in", "OutputUploadFailed": "out"}


def job_state_changed(
    environment: str, previous: JobState | None, status: JobStatus, created: datetime | None
) -> None:
    """Count a job's move from `previous` to `status.state` (just written)."""
    state = status.state
    if state is None or state is previous:
        return
    JOB_STATE_CHANGES.labels(environment, state.value).inc()
    admission = status.admission
    if state is JobState.STARTING and admission is not None and created is not None:
        waited = max(0.0, (admission.admitted_at - created).total_seconds())
        ADMISSION_SECONDS.labels(environment).observe(waited)
        QUEUE_SECONDS.labels(environment).observe(waited if previous is JobState.QUEUED else 0.0)
    if not state.is_terminal:
        return
    if status.cached:
        CACHE_HITS.labels(environment).inc()
    succeeded = find_condition(status.conditions, SUCCEEDED_CONDITION)
    stage = _STAGING_REASONS.get(succeeded.reason or "") if succeeded else None
    if stage is not None:
        STAGING_FAILURES.labels(environment, stage).inc()
    if status.started_at is not None and status.finished_at is not None:
        RUN_SECONDS.labels(environment).inc(
            max(0.0, (status.finished_at - status.started_at).total_seconds())
        )
    if status.transfer is not None:
        FILE_BYTES.labels(environment, "in").inc(status.transfer.input_bytes)
        FILE_BYTES.labels(environment, "out").inc(status.transfer.output_bytes)
    if status.credits is not None and status.credits.charged > 0:
        CREDITS_CHARGED.labels(environment).inc(status.credits.charged)


def count_jobs(environment: str, states: Iterable[str | None]) -> None:
    """Set the environment's `batchx_jobs` from the states of all its jobs (0 for the rest)."""
    counts = dict.fromkeys((s.value for s in JobState), 0)
    for state in states:
        key = state or JobState.SUBMITTED.value  # not written yet: it is waiting for admission
        if key in counts:  # a fixed label set, whatever a status holds
            counts[key] += 1
    for state, count in counts.items():
        JOBS.labels(environment, state).set(count)


@contextmanager
def timed(kind: str) -> Iterator[None]:
    """Count and time one reconcile of `kind` (result: ok or error)."""
    start = time.monotonic()
    try:
        yield
    except BaseException:
        RECONCILES.labels(kind, "error").inc()
        raise
    else:
        RECONCILES.labels(kind, "ok").inc()
    finally:
        RECONCILE_SECONDS.labels(kind).observe(time.monotonic() - start)


def serve(port: int, address: str = "127.0.0.1") -> None:
    """Start the /metrics endpoint in a daemon thread (never on the event loop)."""
    start_http_server(port, addr=address)
