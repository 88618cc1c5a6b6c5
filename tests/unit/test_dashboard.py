"""The chart's Grafana dashboard queries only metrics the operator exports."""

from __future__ import annotations

from prometheus_client import REGISTRY
from testbed.dashboard import metric_names, queries, series_names

from batchx import metrics


def exported() -> set[str]:
    """Series names of the operator's batchx_* families, as /metrics exposes them."""
    assert metrics.JOBS is not None  # the module registered its families on import
    return series_names(REGISTRY.collect())


def test_every_dashboard_query_names_an_exported_metric() -> None:
    named = metric_names()
    assert named, "the dashboard queries no batchx_* metric"
    assert named <= exported(), named - exported()


def test_dashboard_covers_what_admins_watch() -> None:
    named = metric_names()
    assert "batchx_jobs" in named  # queue depth
    assert "batchx_job_state_changes_total" in named  # throughput
    assert "batchx_job_admission_seconds_bucket" in named  # admission latency
    assert "batchx_job_credits_charged_total" in named  # credits burn
    assert all(expr.count("(") == expr.count(")") for expr in queries())
