"""The chart's observability options: ServiceMonitor and Grafana dashboard toggles, and the
Argo CD health scripts shipped inside the chart package."""

from __future__ import annotations

import json
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
import yaml
from testbed.dashboard import DASHBOARD

from testbed import chart

pytestmark = pytest.mark.cluster  # needs the helm binary the test bed builds

KUBE = ["--kube-version", "1.34.4"]


def render(*sets: str) -> list[dict[str, Any]]:
    args = ["template", "bx", str(chart.CHART), "-n", "batchx-system", *KUBE]
    for s in sets:
        args += ["--set", s]
    out = subprocess.run(
        [chart.helm_binary(), *args], capture_output=True, text=True, check=False, timeout=120
    )
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def kinds(docs: list[dict[str, Any]]) -> set[str]:
    return {d["kind"] for d in docs}


def test_service_monitor_and_dashboard_are_off_by_default() -> None:
    docs = render()
    assert "ServiceMonitor" not in kinds(docs)
    assert not [d for d in docs if d["metadata"]["name"].endswith("-dashboard")]


def test_service_monitor_scrapes_the_metrics_service() -> None:
    docs = render(
        "metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=kps"
    )
    [monitor] = [d for d in docs if d["kind"] == "ServiceMonitor"]
    [service] = [
        d for d in docs if d["kind"] == "Service" and d["metadata"]["name"].endswith("-metrics")
    ]
    assert monitor["metadata"]["labels"]["release"] == "kps"
    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == [
        service["spec"]["ports"][0]["name"]
    ]
    # Without the metrics Service there is nothing to monitor.
    off = render("metrics.enabled=false", "metrics.serviceMonitor.enabled=true")
    assert "ServiceMonitor" not in kinds(off)


def test_dashboard_config_map_carries_the_dashboard_for_the_grafana_sidecar() -> None:
    docs = render("metrics.dashboard.enabled=true", "metrics.dashboard.namespace=monitoring")
    [config_map] = [d for d in docs if d["metadata"]["name"] == "batchx-operator-dashboard"]
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(config_map["data"]["batchx.json"]) == json.loads(DASHBOARD.read_text())


def test_chart_package_ships_the_argo_cd_health_scripts(tmp_path: Path) -> None:
    out = subprocess.run(
        [chart.helm_binary(), "package", str(chart.CHART), "-d", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    [package] = tmp_path.glob("*.tgz")
    with tarfile.open(package) as tar:
        names = set(tar.getnames())
    for kind in ("Environment", "Image", "Job"):
        assert f"batchx-operator/health/{kind}.lua" in names
