"""The Helm chart renders, lints, validates its values and is accepted by the real API server."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from batchx.settings import Settings
from tests.fixtures_cluster import Cluster

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "batchx-operator"
KUBE = ["--kube-version", "1.34.4"]


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    binary = subprocess.run(
        [str(REPO / "testbed" / "build-helm.sh")], check=True, capture_output=True, text=True
    ).stdout.strip()
    return subprocess.run([binary, *args], capture_output=True, text=True, check=False)


def render(*sets: str) -> list[dict[str, Any]]:
    # helm built from its module assumes Kubernetes v1.20 offline: name the test bed's version.
    args = ["template", "bx", str(CHART), "-n", "batchx-system", "--include-crds", *KUBE]
    for s in sets:
        args += ["--set", s]
    out = helm(*args)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def test_chart_lints() -> None:
    out = helm("lint", str(CHART), "--strict")
    assert out.returncode == 0, out.stdout + out.stderr


def test_chart_crds_are_the_generated_ones() -> None:
    for generated in sorted((REPO / "crds").glob("*.yaml")):
        assert (CHART / "crds" / generated.name).read_text() == generated.read_text()


def test_values_schema_refuses_bad_values_with_the_path() -> None:
    out = helm("template", "bx", str(CHART), *KUBE, "--set", "config.podSecurityLevel=open")
    assert out.returncode != 0
    assert "podSecurityLevel" in out.stderr
    out = helm("template", "bx", str(CHART), *KUBE, "--set", "config.prices.gpuHour=-1")
    assert out.returncode != 0
    assert "gpuHour" in out.stderr


def test_metrics_toggle_removes_the_service() -> None:
    kinds_on = {d["kind"] for d in render()}
    kinds_off = {d["kind"] for d in render("metrics.enabled=false")}
    assert "Service" in kinds_on
    assert "Service" not in kinds_off


def test_api_server_accepts_the_chart_and_its_pod_meets_restricted_security(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str
) -> None:
    docs = [d for d in render() if d["kind"] != "CustomResourceDefinition"]
    for doc in docs:
        if doc["metadata"].get("namespace"):
            doc["metadata"]["namespace"] = namespace
        if doc["kind"] == "ClusterRoleBinding":
            doc["subjects"][0]["namespace"] = namespace
    manifest = "\n---\n".join(json.dumps(d) for d in docs)
    out = cluster.kubectl("apply", "--dry-run=server", "-f", "-", input=manifest)
    assert out.returncode == 0, out.stderr
    # PodSecurity judges pods, not Deployments: dry-run the operator's pod in a namespace
    # that enforces the restricted level.
    client.CoreV1Api(kube_api).patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    account = next(d for d in docs if d["kind"] == "ServiceAccount")
    out = cluster.kubectl("apply", "-f", "-", input=json.dumps(account))
    assert out.returncode == 0, out.stderr
    deployment = next(d for d in docs if d["kind"] == "Deployment")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "operator-pod", "namespace": namespace},
        "spec": deployment["spec"]["template"]["spec"],
    }
    out = cluster.kubectl("create", "--dry-run=server", "-f", "-", input=json.dumps(pod))
    assert out.returncode == 0, out.stderr
    assert "violate" not in out.stderr


def test_the_operator_accepts_the_rendered_configuration(tmp_path: Path) -> None:
    config_map = next(d for d in render() if d["kind"] == "ConfigMap")
    path = tmp_path / "config.yaml"
    path.write_text(config_map["data"]["config.yaml"])
    settings = Settings.load({"BATCHX_CONFIG": str(path)})
    assert settings.pod_security_level == "restricted"
    assert settings.store == "s3://batchx"
    assert settings.prices.gpu_hour == 10.0
    assert settings.upload_grace_seconds == 600
