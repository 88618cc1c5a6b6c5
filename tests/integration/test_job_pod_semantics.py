"""The planned job Pod on the real kubelet: every example image ends in the state the planner says.

The runner image does not exist yet, so its two containers are stood in by busybox scripts that
keep the same contract: `stage-in` writes /batchx/input/input.json and the input files;
`stage-out` (a native sidecar) waits for SIGTERM, which the kubelet sends once the job's
container has exited, and reports output.json (paths rewritten to bx://) in its termination
message. Everything else is the Pod exactly as `plan_pod` makes it, in a namespace that enforces
the `restricted` Pod Security level under a ResourceQuota, so these tests also prove that the
pod is admissible there and that zero-request runner containers pass quota admission.

What the design relies on and these tests check on Kubernetes 1.34:
- the sidecar receives SIGTERM after the main container exits, and its termination message
  reaches the Pod status;
- OOM kills are reported as `OOMKilled`, deadlines as the Pod reason `DeadlineExceeded`;
- a static binary without shell or Python runs as the job's container under restricted security.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest
from kubernetes import client

from batchx.domain.coordinates import Coordinates
from batchx.models import Job, JobState
from batchx.planning.job_admission import ImageCandidate, JobPolicy, Request, judge_job
from batchx.planning.job_pod import JobRef, PodPolicy, plan_config_map, plan_pod, staging_plan
from batchx.planning.pod_status import StatusInputs, plan_status
from testbed import example_images, images
from tests.fixtures_cluster import Cluster
from tests.helpers import eventually
from tests.job_builders import PRICES, T0

pytestmark = pytest.mark.cluster

STAGE_IN = """
set -eu
mkdir -p /batchx/input/files/texts
printf '%s' "$INPUT_JSON" > /batchx/input/input.json
printf 'the cat saw the dog\\nthe end\\n' > /batchx/input/files/texts/a.txt
printf '{"v":1,"outcome":"staged"}' > /dev/termination-log
"""

STAGE_OUT = """
finish() {
  out=/batchx/output/output.json
  if [ -f "$out" ]; then
    body=$(sed "s#/batchx/output/#bx://jobs/$BX_JOB/output/#g" "$out" | tr -d '\\n')
  else
    body='{}'
  fi
  printf '{"v":1,"outcome":"uploaded","output":%s}' "$body" > /dev/termination-log
  exit 0
}
trap finish TERM
while :; do sleep 1; done
"""


@dataclass(frozen=True)
class Case:
    example: str
    input: dict[str, Any]
    state: JobState
    reason: str
    exit_code: int | tuple[int | None, ...] | None
    timeout: int = 120
    memory: int | None = None


CASES = [
    Case("hello-static", {"name": "ada"}, JobState.SUCCEEDED, "Succeeded", 0),
    Case(
        "wordcount",
        {"text": "bx://texts/a.txt"},
        JobState.SUCCEEDED,
        "Succeeded",
        0,
    ),
    Case("exit-warning", {}, JobState.WARNING, "CompletedWithWarning", 3),
    Case("exit-error", {}, JobState.FAILED, "ExitCode", 2),
    Case("memory-hog", {}, JobState.OUT_OF_MEMORY, "OOMKilled", 137, memory=32),
    # sleep is PID 1 without a SIGTERM handler: it dies by SIGKILL after the grace period (137),
    # unless the deadline (which counts staging too) passes before it even started (None).
    Case("sleeper", {}, JobState.FAILED, "Timeout", (137, None), timeout=4),
    Case("bad-output", {}, JobState.INVALID_OUTPUT, "InvalidOutput", 0),
]


def _restricted_with_quota(core: client.CoreV1Api, namespace: str) -> None:
    level = "pod-security.kubernetes.io/enforce"
    core.patch_namespace(namespace, {"metadata": {"labels": {level: "restricted"}}})
    hard = {"requests.cpu": "2", "requests.memory": "1Gi", "pods": "4"}
    core.create_namespaced_resource_quota(
        namespace,
        {"metadata": {"name": "batchx-quota"}, "spec": {"hard": hard}},
    )
    core.create_namespaced_secret(namespace, {"metadata": {"name": "batchx-store"}, "data": {}})


def _stand_in(pod: dict[str, Any], busybox: images.BuiltImage, input_json: str) -> None:
    # The pod's owner (a Job) does not exist here: the garbage collector would delete the pod.
    pod["metadata"].pop("ownerReferences")
    for container in pod["spec"].get("initContainers") or []:  # none on the direct path
        script = STAGE_IN if container["name"] == "stage-in" else STAGE_OUT
        container.pop("args")
        container |= {"image": busybox.pinned, "command": ["sh", "-c", script]}
        container["env"].append({"name": "INPUT_JSON", "value": input_json})


def _request(case: Case, example: example_images.Example) -> tuple[Job, Request]:
    manifest = example.manifest
    spec: dict[str, Any] = {
        "image": f"{manifest['name']}:{manifest['version']}",
        "input": case.input,
        "timeout": case.timeout,
    }
    if case.memory:
        spec["memory"] = case.memory
    job = Job.model_validate({"spec": spec})
    candidate = ImageCandidate(
        coordinates=Coordinates.of("lab", manifest["name"], manifest["version"]),
        container=example.image.pinned,
        manifest=manifest,
    )
    verdict = judge_job(
        job,
        name=case.example,
        namespace="lab",
        created="t",
        images=[candidate],
        policy=JobPolicy(prices=PRICES),
    )
    assert isinstance(verdict, Request), verdict
    return job, verdict


@pytest.mark.parametrize("case", CASES, ids=[c.example for c in CASES])
def test_example_ends_in_the_planned_state(
    case: Case,
    cluster: Cluster,
    kube_api: client.ApiClient,
    namespace: str,
    busybox: images.BuiltImage,
) -> None:
    core = client.CoreV1Api(kube_api)
    _restricted_with_quota(core, namespace)
    example = example_images.build_example(case.example)
    job, request = _request(case, example)
    ref = JobRef(case.example, namespace, "uid-" + case.example)
    # What the real stage-in writes: each bx:// file replaced by its staged local path.
    local_input = json.dumps(
        {k: v.replace("bx://", "/batchx/input/files/") for k, v in case.input.items()}
    )
    plan = staging_plan(ref, request, job.spec.input)
    config_map = plan_config_map(ref, plan, request.manifest_document)
    config_map["metadata"].pop("ownerReferences")
    core.create_namespaced_config_map(namespace, config_map)
    # No operator here: the kubelet's deadline (the backstop) is the only one, at the timeout.
    policy = PodPolicy(
        runner_image=busybox.pinned, upload_grace_seconds=5, deadline_backstop_seconds=0
    )
    pod = plan_pod(ref, request, policy)
    _stand_in(pod, busybox, local_input)
    core.create_namespaced_pod(namespace, pod)

    def finished() -> dict[str, Any] | None:
        body = kube_api.sanitize_for_serialization(
            core.read_namespaced_pod(pod["metadata"]["name"], namespace)
        )
        return body if body["status"].get("phase") in ("Succeeded", "Failed") else None

    observed = eventually(finished, timeout=120, what=f"pod of {case.example} to finish")
    inputs = StatusInputs(
        resources=request.resources,
        rate=request.rate,
        manifest=request.manifest,
        image=request.image,
        now=T0,
        reserved=request.reservation,
    )
    status = plan_status(job, ref, observed, inputs)
    codes = case.exit_code if isinstance(case.exit_code, tuple) else (case.exit_code,)
    got = (status.state, status.conditions[-1].reason, status.exit_code in codes)
    assert got == (case.state, case.reason, True), (status.exit_code, observed["status"])
    assert status.credits is not None
    assert status.credits.charged <= status.credits.reserved
    assert (status.credits.charged > 0) == (status.started_at is not None)
    if case.example == "wordcount":
        assert status.output == {
            "counts": "bx://jobs/wordcount/output/counts.txt",
            "lines": 2,
            "words": 7,
        }
        logs = core.read_namespaced_pod_log(
            pod["metadata"]["name"], namespace, container="job", _preload_content=False
        ).data.decode()
        assert "2 lines, 7 words" in logs
