"""Small test helpers shared by the suites: polling with deadlines instead of sleeps, and
reading this process's metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from prometheus_client import REGISTRY

T = TypeVar("T")


def eventually(
    probe: Callable[[], T | None],
    timeout: float = 60.0,
    interval: float = 0.2,
    what: str = "condition",
) -> T:
    """Call `probe` until it returns something truthy and return that; fail after `timeout`.

    The last exception or value seen is part of the failure message, so a timeout says why.
    """
    deadline = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            value = probe()
            if value:
                return value
            last = value
        except Exception as exc:
            last = exc
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not reached within {timeout:.0f}s; last: {last!r}")
        time.sleep(interval)


def eventually_equal(
    read: Callable[[], T], expected: T, timeout: float = 60.0, what: str = "value"
) -> T:
    """`eventually` for a value that must become `expected`; a timeout shows the last value read."""
    seen: list[T] = []

    def probe() -> bool:
        seen[:] = [read()]
        return seen[0] == expected

    try:
        eventually(probe, timeout=timeout, what=what)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; last {what}: {seen[0] if seen else None!r}") from None
    return expected


def metric(name: str, **labels: str) -> float:
    """The value of one sample of this process's Prometheus registry (0 before any)."""
    return REGISTRY.get_sample_value(name, labels) or 0.0
