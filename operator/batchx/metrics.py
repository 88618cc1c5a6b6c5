"""Prometheus metrics of the operator (`batchx_*`), served on `metricsPort` when it is set."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import Counter, Gauge, Histogram, start_http_server

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
