"""The real runner image stages a job's files through the real S3 store, in the planned Pod.

The Pod is `plan_pod`'s, unchanged but for its owner reference (no Job object exists here): the
runner image from `testbed.runner_image` downloads the input file from MinIO in `stage-in`, the
wordcount example (busybox, its own entrypoint) counts words, and `stage-out` (a native sidecar)
uploads the output file on SIGTERM and reports. `plan_status` then reads the real Pod status.
The store credentials reach the runner containers only, through the `batchx-store` Secret.
"""

from __future__ import annotations

import base64
import uuid
from typing import Any

import pytest
from kubernetes import client

from batchx.domain.coordinates import Coordinates
from batchx.models import Job, JobState
from batchx.planning.job_admission import ImageCandidate, JobPolicy, Request, judge_job
from batchx.planning.job_pod import JobRef, PodPolicy, plan_config_map, plan_pod, staging_plan
from batchx.planning.job_protocol import parse_report
from batchx.planning.pod_status import StatusInputs, plan_status
from batchx.store import open_store
from testbed import example_images
from testbed import s3 as s3bed
from tests.fixtures_cluster import Cluster
from tests.helpers import eventually
from tests.job_builders import T0

pytestmark = [pytest.mark.cluster, pytest.mark.s3]


@pytest.fixture
def store_url(pod_s3: s3bed.S3Server, monkeypatch: pytest.MonkeyPatch) -> str:
    bucket = pod_s3.make_bucket(f"bx-{uuid.uuid4().hex[:12]}")
    for key, value in pod_s3.credentials().items():
        monkeypatch.setenv(key, value)
    return f"s3://{bucket}/store?endpoint={pod_s3.endpoint}"


def _secret(server: s3bed.S3Server, url: str) -> dict[str, Any]:
    values = {
        "BATCHX_STORE": url,
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": server.region,
    }
    data = {k: base64.b64encode(v.encode()).decode() for k, v in values.items()}
    return {"metadata": {"name": "batchx-store"}, "data": data}


def _request(
    example: example_images.Example, input_document: dict[str, Any]
) -> tuple[Job, Request]:
    manifest = example.manifest
    job = Job.model_validate(
        {"spec": {"image": manifest["name"], "input": input_document, "timeout": 300}}
    )
    candidate = ImageCandidate(
        Coordinates.of("lab", manifest["name"], manifest["version"]),
        example.image.pinned,
        manifest,
    )
    verdict = judge_job(
        job, name="wc", namespace="lab", created="t", images=[candidate], policy=JobPolicy()
    )
    assert isinstance(verdict, Request), verdict
    return job, verdict


def test_wordcount_runs_with_real_staging_through_s3(
    cluster: Cluster,
    kube_api: client.ApiClient,
    namespace: str,
    pod_s3: s3bed.S3Server,
    store_url: str,
) -> None:
    core = client.CoreV1Api(kube_api)
    core.patch_namespace(
        namespace, {"metadata": {"labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
    )
    core.create_namespaced_secret(namespace, _secret(pod_s3, store_url))
    runner = cluster.product_image("runner")
    example = example_images.build_example("wordcount")
    with open_store(store_url) as store:
        store.env(namespace).put_bytes("texts/a.txt", b"the cat saw the dog\nthe end\n")

    job, request = _request(example, {"text": "bx://texts/a.txt"})
    ref = JobRef("wc", namespace, "uid-wc")
    config_map = plan_config_map(
        ref, staging_plan(ref, request, job.spec.input), request.manifest_document
    )
    pod = plan_pod(ref, request, PodPolicy(runner_image=runner.pinned, upload_grace_seconds=60))
    for body in (config_map, pod):
        body["metadata"].pop("ownerReferences")  # no Job here: the GC would delete them
    core.create_namespaced_config_map(namespace, config_map)
    core.create_namespaced_pod(namespace, pod)

    def finished() -> dict[str, Any] | None:
        body: dict[str, Any] = kube_api.sanitize_for_serialization(
            core.read_namespaced_pod(pod["metadata"]["name"], namespace)
        )
        return body if body["status"].get("phase") in ("Succeeded", "Failed") else None

    observed = eventually(finished, timeout=180, what="the wordcount pod to finish")
    inputs = StatusInputs(
        resources=request.resources,
        rate=request.rate,
        manifest=request.manifest,
        image=request.image,
        now=T0,
        reserved=request.reservation,
    )
    status = plan_status(job, ref, observed, inputs)
    assert (status.state, status.message) == (JobState.SUCCEEDED, "the job succeeded"), observed[
        "status"
    ]
    assert status.output == {
        "counts": "bx://jobs/wc/output/counts.txt",
        "lines": 2,
        "words": 7,
    }
    stage_in = next(
        s for s in observed["status"]["initContainerStatuses"] if s["name"] == "stage-in"
    )
    assert parse_report(stage_in["state"]["terminated"].get("message")) is not None
    with open_store(store_url) as store:
        counts = store.env(namespace).read_bytes("jobs/wc/output/counts.txt").decode()
    assert counts.split("\n")[0].split() == ["3", "the"]
