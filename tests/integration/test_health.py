"""GitOps tools read BatchX objects right: kstatus, Argo CD's Lua and `kubectl wait`.

Real objects in each state, made by the in-process operator on the test bed, are judged by the
real libraries (testbed/health: kstatus's `status.Compute` and gopher-lua running the chart's
health scripts, as Argo CD does) and by the test bed's kubectl. The module's Environment runs
one job at a time (`quota.jobs: 1`), so a sleeper RUNNING keeps the next job QUEUED.
"""

from __future__ import annotations

import copy
import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from kopf.testing import KopfRunner
from kubernetes import client
from testbed.health_checker import HEALTH_SCRIPTS, HealthChecker

from testbed import kube
from tests.fixtures_cluster import Cluster
from tests.fixtures_jobs import JobBed
from tests.helpers import eventually
from tests.integration.bx import GROUP, VERSION, Bx
from tests.job_lab import JSON, Lab, make_env

REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.cluster

CURRENT, IN_PROGRESS, FAILED = "Current", "InProgress", "Failed"
HEALTHY, PROGRESSING, DEGRADED = "Healthy", "Progressing", "Degraded"


@pytest.fixture(scope="module")
def lab(jobs_operator: KopfRunner, module_bx: Bx, job_bed: JobBed) -> Lab:
    return make_env(module_bx, job_bed, quota={"cpu": "2", "jobs": 1}, credits=1000)


@pytest.fixture(scope="module")
def finished(lab: Lab) -> Lab:
    """A job that succeeded and one that failed (one at a time under the quota)."""
    lab.submit("hello", "examples/hello-static:1.0.0", {"name": "ada"})
    lab.submit("err", "examples/exit-error:^1.0")
    lab.wait_done("hello")
    lab.wait_done("err")
    return lab


def _flux_exprs() -> dict[str, JSON]:
    """The healthCheckExprs of docs/gitops.md's Flux example, by kind."""
    docs = (REPO / "docs" / "gitops.md").read_text()
    block = re.search(r"```yaml\n(apiVersion: kustomize.toolkit.fluxcd.io.*?)```", docs, re.S)
    assert block is not None
    kustomization = yaml.safe_load(block.group(1))
    return {e["kind"]: e for e in kustomization["spec"]["healthCheckExprs"]}


FLUX_EXPRS = _flux_exprs()


def verdicts(health: HealthChecker, obj: JSON) -> tuple[str, str, str]:
    """kstatus's, Argo CD's (the chart's script) and Flux's (the documented expressions)."""
    flux = health.flux(obj, FLUX_EXPRS[obj["kind"]])
    return health.kstatus(obj).status, health.argo(obj).status, flux.status


def judged(health: HealthChecker, read: Callable[[], JSON], expected: tuple[str, str, str]) -> JSON:
    """The object once kstatus, the Lua script and Flux's expressions say `expected` of it.

    Polled rather than read once: the other operators on the shared test bed (older builds)
    may rewrite an object's status on their resync; ours writes it back on its own.
    """

    def probe() -> JSON | None:
        obj = read()
        return obj if verdicts(health, obj) == expected else None

    return eventually(probe, timeout=60, what=f"{expected} of {read()['metadata']['name']}")


def environment(lab: Lab) -> JSON:
    return lab.bx.environment(lab.name)


def test_ready_environment_is_current_and_healthy(lab: Lab, health: HealthChecker) -> None:
    env = judged(health, lambda: environment(lab), (CURRENT, HEALTHY, CURRENT))
    assert env["status"]["observedGeneration"] == env["metadata"]["generation"]


def test_valid_image_is_current_and_healthy(lab: Lab, health: HealthChecker) -> None:
    judged(
        health, lambda: lab.bx.image(lab.name, "hello-static-1-0-0"), (CURRENT, HEALTHY, CURRENT)
    )


def test_invalid_image_is_failed_and_degraded(lab: Lab, health: HealthChecker) -> None:
    spec = copy.deepcopy(lab.bx.image(lab.name, "hello-static-1-0-0")["spec"])
    spec["manifest"]["errorCodes"] = {"oops": "not an integer key"}
    lab.bx.create_image(lab.name, "broken", spec)
    lab.bx.wait_image(lab.name, "broken", "False", "InvalidManifest")
    image = judged(health, lambda: lab.bx.image(lab.name, "broken"), (FAILED, DEGRADED, FAILED))
    kstatus, argo = health.kstatus(image), health.argo(image)
    assert "$.spec.manifest.errorCodes" in kstatus.message
    assert argo.message.startswith("InvalidManifest: $.spec.manifest.errorCodes")


def test_duplicate_image_is_failed_and_degraded(lab: Lab, health: HealthChecker) -> None:
    spec = lab.bx.image(lab.name, "hello-static-1-0-0")["spec"]
    lab.bx.create_image(lab.name, "hello-again", spec)
    lab.bx.wait_image(lab.name, "hello-again", "False", "DuplicateCoordinates")
    judged(health, lambda: lab.bx.image(lab.name, "hello-again"), (FAILED, DEGRADED, FAILED))


def test_succeeded_job_is_current_and_healthy(finished: Lab, health: HealthChecker) -> None:
    job = judged(health, lambda: finished.job("hello"), (CURRENT, HEALTHY, CURRENT))
    assert job["status"]["state"] == "SUCCEEDED", job["status"]


def test_failed_job_is_failed_and_degraded(finished: Lab, health: HealthChecker) -> None:
    job = judged(health, lambda: finished.job("err"), (FAILED, DEGRADED, FAILED))
    assert job["status"]["state"] == "FAILED", job["status"]
    kstatus, argo = health.kstatus(job), health.argo(job)
    assert "the reference genome is not indexed" in kstatus.message
    assert argo.message.startswith("FAILED: ")


def test_running_and_queued_jobs_are_in_progress_then_cancelled_fails(
    finished: Lab, health: HealthChecker
) -> None:
    lab = finished
    lab.submit("sleepy", "examples/sleeper", timeout=600)
    lab.wait_state("sleepy", "RUNNING")
    lab.submit("next", "examples/hello-static:1.0.0", {"name": "bob"})
    lab.wait_state("next", "QUEUED")
    running = judged(health, lambda: lab.job("sleepy"), (IN_PROGRESS, PROGRESSING, IN_PROGRESS))
    assert running["status"]["state"] == "RUNNING"
    queued = judged(health, lambda: lab.job("next"), (IN_PROGRESS, PROGRESSING, IN_PROGRESS))
    assert queued["status"]["state"] == "QUEUED"
    kstatus, argo = health.kstatus(queued), health.argo(queued)
    assert kstatus.message.startswith("QUEUED: ")  # why it waits, with the numbers
    assert argo.message == kstatus.message

    lab.bx.custom.patch_namespaced_custom_object(
        GROUP, VERSION, lab.name, "jobs", "sleepy", {"spec": {"cancel": True}}
    )
    lab.wait_state("sleepy", "CANCELLED")
    judged(health, lambda: lab.job("sleepy"), (FAILED, DEGRADED, FAILED))
    lab.wait_done("next")
    done = judged(health, lambda: lab.job("next"), (CURRENT, HEALTHY, CURRENT))
    assert done["status"]["state"] == "SUCCEEDED"


def test_new_environment_is_in_progress_until_ready(lab: Lab, health: HealthChecker) -> None:
    """Polled from its creation: once it has a status, never Current before it is Ready (with
    no status at all kstatus says Current: the operator writes SettingUp first thing)."""
    bx = lab.bx
    seen: list[tuple[str, str, str, bool]] = []
    name = bx.create_environment(f"{lab.name}-x")

    def ready() -> JSON | None:
        env = bx.environment(name)
        conditions = (env.get("status") or {}).get("conditions") or []
        is_ready = any(c["type"] == "Ready" and c["status"] == "True" for c in conditions)
        if env.get("status"):
            seen.append((*verdicts(health, env), is_ready))
        return env if is_ready else None

    eventually(ready, timeout=60, interval=0.05, what=f"Environment {name} Ready")
    assert seen[-1] == (CURRENT, HEALTHY, CURRENT, True)
    assert all(v[:3] == (IN_PROGRESS, PROGRESSING, IN_PROGRESS) for v in seen if not v[3]), seen


def test_kubectl_wait(finished: Lab, cluster: Cluster) -> None:
    lab = finished
    env = cluster.kubectl("wait", "--for=condition=Ready", f"bxenv/{lab.name}", "--timeout=60s")
    assert env.returncode == 0, env.stderr
    assert env.stdout.strip() == f"environment.batchx.io/{lab.name} condition met"
    waits: list[list[str]] = [
        ["--for=condition=Succeeded", "bxjob/hello"],
        ["--for=condition=Ready", "bxjob/hello"],
        ["--for=jsonpath={.status.state}=SUCCEEDED", "bxjob/hello"],
    ]
    for args in waits:
        done = cluster.kubectl("wait", "-n", lab.name, *args, "--timeout=60s")
        assert done.returncode == 0, (args, done.stderr)
        assert done.stdout.strip() == "job.batchx.io/hello condition met", args
    # A failed job never meets Succeeded: kubectl wait times out (exit 1) instead of hanging on.
    failed = cluster.kubectl(
        "wait", "-n", lab.name, "--for=condition=Succeeded", "bxjob/err", "--timeout=3s"
    )
    assert failed.returncode == 1
    assert "timed out" in failed.stderr
    stalled = cluster.kubectl(
        "wait", "-n", lab.name, "--for=condition=Stalled", "bxjob/err", "--timeout=10s"
    )
    assert stalled.returncode == 0, stalled.stderr


def test_argocd_cm_install_as_documented(
    finished: Lab, cluster: Cluster, namespace: str, health: HealthChecker, tmp_path: Path
) -> None:
    """The command of docs/gitops.md, run against an argocd-cm in the test's namespace, installs
    the chart's scripts under Argo CD's keys; the installed text judges a real failed Job."""
    docs = (REPO / "docs" / "gitops.md").read_text()
    command = re.search(r"## Argo CD.*?```sh\n(.*?)```", docs, re.S)
    assert command is not None
    script = command.group(1).replace("-n argocd ", f"-n {namespace} ")
    core = client.CoreV1Api(finished.bx.custom.api_client)
    core.create_namespaced_config_map(
        namespace,
        client.V1ConfigMap(metadata=client.V1ObjectMeta(name="argocd-cm"), data={"url": "x"}),
    )
    bins = str(kube.build_binaries()) if cluster.kind is None else ""
    env = {**os.environ, "KUBECONFIG": str(cluster.kubeconfig)}
    env["PATH"] = f"{bins}:{env['PATH']}" if bins else env["PATH"]
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    data = core.read_namespaced_config_map("argocd-cm", namespace).data
    assert data["url"] == "x"  # a merge: the admin's settings stay
    for kind in ("Environment", "Image", "Job"):
        installed = data[f"resource.customizations.health.batchx.io_{kind}"]
        assert installed == (HEALTH_SCRIPTS / f"{kind}.lua").read_text()
    job_lua = tmp_path / "health.lua"
    job_lua.write_text(data["resource.customizations.health.batchx.io_Job"])
    assert health.argo(finished.job("err"), script=job_lua).status == DEGRADED
