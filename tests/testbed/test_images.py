"""Images built without a registry: deterministic archives; the runner image runs on the node."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubernetes import client

from testbed import images, runner_image
from tests.fixtures_cluster import Cluster
from tests.testbed.test_cluster import busybox_pod, pod_log, wait_phase


def test_same_spec_gives_the_same_digest(tmp_path: Path) -> None:
    spec = images.ImageSpec(
        "demo", "1", [images.Entry("bin/hello", data=b"#!/bin/sh\necho hi\n")], cmd=["/bin/hello"]
    )
    first = images.write_archive(spec, tmp_path / "a.tar")
    second = images.write_archive(spec, tmp_path / "b.tar")
    changed = images.write_archive(
        images.ImageSpec("demo", "1", [images.Entry("bin/hello", data=b"other")]),
        tmp_path / "c.tar",
    )
    assert first == second
    assert first != changed
    assert first.startswith("sha256:")
    assert len(first) == len("sha256:") + 64


@pytest.mark.cluster
def test_runner_image_runs_python_with_the_product_inside(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str
) -> None:
    runner = cluster.load_image(runner_image.runner_spec())
    core = client.CoreV1Api(kube_api)
    script = (
        "import sys, boto3, batchx.store.fs, batchx.domain.validation; print(sys.version_info[:2])"
    )
    pod = busybox_pod("runner", runner, "", cpu="200m", memory="128Mi")
    pod.spec.containers[0].command = ["python3", "-c", script]
    core.create_namespaced_pod(namespace, pod)
    assert wait_phase(core, namespace, "runner", timeout=120) == "Succeeded"
    assert pod_log(core, namespace, "runner").strip() == "(3, 11)"
