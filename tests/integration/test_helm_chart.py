"""The Helm chart renders, lints and validates its values; installed on the test bed as an admin
installs it, its operator Pod (pulled from the registry) runs jobs."""

from __future__ import annotations

import json
import subprocess
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client

from batchx.settings import Settings
from batchx.store.config import open_store
from testbed import chart, example_images
from testbed import s3 as s3bed
from tests.fixtures_cluster import Cluster
from tests.helpers import eventually
from tests.integration.bx import GROUP, VERSION, Bx

pytestmark = pytest.mark.cluster

REPO = Path(__file__).resolve().parents[2]
CHART = chart.CHART
KUBE = ["--kube-version", "1.34.4"]
TERMINAL = {"SUCCEEDED", "WARNING", "FAILED", "CANCELLED", "OUT_OF_MEMORY", "INVALID_OUTPUT"}


def helm(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([chart.helm_binary(), *args], capture_output=True, text=True, check=False)


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


def _services(*sets: str) -> set[str]:
    return {d["metadata"]["name"] for d in render(*sets) if d["kind"] == "Service"}


def test_metrics_toggle_removes_the_service() -> None:
    assert "batchx-operator-metrics" in _services()
    assert "batchx-operator-metrics" not in _services("metrics.enabled=false")


def test_files_api_toggle_removes_its_apiservice_and_service() -> None:
    on = {d["kind"] for d in render()}
    assert "APIService" in on
    assert "batchx-operator-files" in _services()
    off = render("filesApi.enabled=false")
    assert "APIService" not in {d["kind"] for d in off}
    assert "batchx-operator-files" not in _services("filesApi.enabled=false")
    [deployment] = [d for d in off if d["kind"] == "Deployment"]
    env = {e["name"] for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "BATCHX_FILES_API_ADDRESS" not in env


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


def test_chart_defaults_the_runner_image_from_the_registry_and_an_explicit_one_wins() -> None:
    version = yaml.safe_load((CHART / "Chart.yaml").read_text())["appVersion"]

    def config(*sets: str) -> dict[str, Any]:
        config_map = next(d for d in render(*sets) if d["kind"] == "ConfigMap")
        loaded: dict[str, Any] = yaml.safe_load(config_map["data"]["config.yaml"])
        return loaded

    deployment = next(d for d in render("registry=reg.example/bx") if d["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    assert container["image"] == f"reg.example/bx/batchx-operator:{version}"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert config("registry=reg.example/bx")["runnerImage"] == (
        f"reg.example/bx/batchx-runner:{version}"
    )
    digest = "sha256:" + "ab" * 32
    assert (
        config(f"runner.digest={digest}")["runnerImage"] == f"batchx.local/batchx-runner@{digest}"
    )
    assert config("config.runnerImage=mine/runner:7")["runnerImage"] == "mine/runner:7"


# -- installed on the test bed, as an admin does -----------------------------------------------


def test_helm_install_runs_a_job_upgrade_changes_prices_and_uninstall_keeps_crds_and_envs(
    cluster: Cluster,
    kube_api: client.ApiClient,
    pod_s3: s3bed.S3Server,
    bx: Bx,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Only documented values (registry, store, credentials Secret, the images' digests): the
    operator runs as a Pod pulled from the test bed's registry, a job with an output file
    SUCCEEDS, a changed price takes effect on upgrade, and uninstall keeps CRDs and data."""
    suffix = uuid.uuid4().hex[:6]
    release = chart.Release(f"bx-{suffix}", f"t-helm-{suffix}", cluster.kubeconfig)
    bucket = pod_s3.make_bucket(f"bx-helm-{suffix}")
    operator = cluster.product_image("operator")
    runner = cluster.product_image("runner")
    wordcount = example_images.build_example("wordcount")
    values = chart.admin_values(operator, runner, pod_s3, bucket)
    release.store_secret(pod_s3)
    for key, value in pod_s3.credentials().items():
        monkeypatch.setenv(key, value)
    store = open_store(f"s3://{bucket}?endpoint={pod_s3.endpoint}")
    env = f"helm-{suffix}"
    try:
        release.install(values)
        pod = release.operator_pod()
        assert pod["status"]["containerStatuses"][0]["imageID"].endswith(operator.digest)
        assert _ready(pod)

        bx.create_environment(env, credits=100)
        bx.wait_ready(env, timeout=90)
        image = wordcount.image_object(env)
        bx.custom.create_namespaced_custom_object(GROUP, VERSION, env, "images", image)
        bx.wait_image(env, image["metadata"]["name"], "True", "Accepted")
        store.env(env).put_bytes("in/a.txt", b"one two two\n")
        first = _run(bx, env, "first")
        assert first["state"] == "SUCCEEDED", first.get("conditions")
        assert first["output"]["counts"] == "bx://jobs/first/output/counts.txt"
        counts = store.env(env).read_bytes("jobs/first/output/counts.txt").split()
        assert counts[:2] == [b"2", b"two"]

        # A new vCPU price: the config checksum changes, the operator restarts with it, and the
        # next job's reservation (rate x its 3600 s default timeout) is 2 credits higher.
        release.install({**values, "config": {**values["config"], "prices": {"vcpuHour": 3.0}}})
        second = _run(bx, env, "second")
        assert second["state"] == "SUCCEEDED", second.get("conditions")
        delta = second["credits"]["reserved"] - first["credits"]["reserved"]
        assert delta == pytest.approx(2.0, abs=0.01), (first["credits"], second["credits"])
    finally:
        release.uninstall()
    ext = client.ApiextensionsV1Api(kube_api)
    names = {c.metadata.name for c in ext.list_custom_resource_definition().items}
    assert {"environments.batchx.io", "images.batchx.io", "jobs.batchx.io"} <= names
    assert bx.environment(env)["status"]["namespace"] == env
    assert store.env(env).read_bytes("jobs/first/output/counts.txt")  # the files stay too
    # No operator is left to remove its finalizer: let the fixture's clean-up delete it.
    bx.custom.patch_cluster_custom_object(
        GROUP, VERSION, "environments", env, {"metadata": {"finalizers": None}}
    )


def _ready(pod: dict[str, Any]) -> bool:
    return any(c["type"] == "Ready" and c["status"] == "True" for c in pod["status"]["conditions"])


def _run(bx: Bx, env: str, name: str) -> dict[str, Any]:
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Job",
        "metadata": {"name": name},
        # cache: false: the second job must run (and reserve) at the new price, not be served.
        "spec": {
            "image": "examples/wordcount:1.0.0",
            "input": {"text": "bx://in/a.txt"},
            "cache": False,
        },
    }
    bx.custom.create_namespaced_custom_object(GROUP, VERSION, env, "jobs", body)

    def done() -> dict[str, Any] | None:
        status = bx.job(env, name).get("status") or {}
        return status if status.get("state") in TERMINAL else None

    result: dict[str, Any] = eventually(done, timeout=300, what=f"job {name} final")
    return result
