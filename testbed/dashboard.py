"""The metric names the chart's Grafana dashboard queries (for the tests that check they exist).

A dashboard whose query names a metric the operator does not export shows "No data" forever
without any error, so the tests compare these names with what the operator really serves.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from pathlib import Path

from prometheus_client.metrics_core import Metric

DASHBOARD = Path(__file__).resolve().parent.parent / "helm/batchx-operator/dashboards/batchx.json"
_METRIC = re.compile(r"\bbatchx_[a-z0-9_]+")


def queries(path: Path = DASHBOARD) -> list[str]:
    """Every PromQL expression of the dashboard: panel targets and template variables."""
    dashboard = json.loads(path.read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    for variable in dashboard.get("templating", {}).get("list", []):
        query = variable.get("query")
        if isinstance(query, dict) and "query" in query:
            exprs.append(str(query["query"]))
    return exprs


def metric_names(path: Path = DASHBOARD) -> set[str]:
    """The batchx_* series names the queries read (as exposed: with _total, _bucket, ...)."""
    return {name for expr in queries(path) for name in _METRIC.findall(expr)}


_SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count")}


def series_names(families: Iterable[Metric]) -> set[str]:
    """The batchx_* series names of metric families (a registry's, or parsed from /metrics),
    also for families that have no sample yet."""
    return {
        family.name + suffix
        for family in families
        if family.name.startswith("batchx_")
        for suffix in _SUFFIXES.get(family.type, ("",))
    }
