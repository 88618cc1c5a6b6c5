"""Images: deterministic archives, pulled from the test bed's registry; the product's images
come from images/Dockerfile and run on the node."""

from __future__ import annotations

import json
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from testbed import images, product_images, registry
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
    runner = cluster.product_image("runner")
    core = client.CoreV1Api(kube_api)
    script = (
        "import sys, boto3, batchx.store.fs, batchx.domain.validation; print(sys.version_info[:2])"
    )
    pod = busybox_pod("runner", runner, "", cpu="200m", memory="128Mi")
    pod.spec.containers[0].command = ["python3", "-c", script]
    core.create_namespaced_pod(namespace, pod)
    assert wait_phase(core, namespace, "runner", timeout=120) == "Succeeded"
    assert pod_log(core, namespace, "runner").strip() == "(3, 11)"


@pytest.mark.cluster
def test_the_kubelet_pulls_a_pushed_image_from_the_registry(
    cluster: Cluster, kube_api: client.ApiClient, namespace: str, busybox: images.BuiltImage
) -> None:
    """Pods pull from the test bed's registry through containerd's mirror for batchx.local:
    an image that was only pushed (never imported into containerd) runs."""
    marker = uuid.uuid4().hex
    spec = images.ImageSpec(
        f"pulled-{marker[:8]}",
        "1",
        [*images.busybox_entries(), images.Entry("marker", data=marker.encode(), mode=0o644)],
    )
    built = images.publish(spec)
    assert built.digest not in images.ctr("images", "ls", "-q")
    pod = busybox_pod("pulled", built, "cat /marker")
    core = client.CoreV1Api(kube_api)
    core.create_namespaced_pod(namespace, pod)
    assert wait_phase(core, namespace, "pulled", timeout=120) == "Succeeded"
    assert pod_log(core, namespace, "pulled") == marker
    assert built.pinned in images.ctr("images", "ls", "-q")


@pytest.mark.cluster
def test_product_images_are_built_from_the_dockerfile_reproducibly(cluster: Cluster) -> None:
    """images/Dockerfile is what the test bed builds: two targets, non-root, the same digest
    when nothing changed, sharing every layer but the entry point."""
    first = {t: product_images.build(t) for t in product_images.TARGETS}
    again = product_images.build("runner")
    assert again.digest == first["runner"].digest
    configs = {t: _config(b) for t, b in first.items()}
    assert configs["operator"]["config"]["Entrypoint"] == ["python3", "-m", "batchx"]
    assert configs["runner"]["config"]["Entrypoint"] == ["python3", "-m", "batchx.runner"]
    assert {c["config"]["User"] for c in configs.values()} == {"65532:65532"}
    assert configs["operator"]["rootfs"] == configs["runner"]["rootfs"]


def _config(image: images.BuiltImage) -> dict[str, Any]:
    name = image.ref.split("/", 1)[1].rsplit(":", 1)[0]
    base = f"{registry.url()}/v2/{name}"
    accept = {"Accept": "application/vnd.oci.image.manifest.v1+json"}
    with urllib.request.urlopen(
        urllib.request.Request(f"{base}/manifests/{image.digest}", headers=accept), timeout=10
    ) as resp:
        manifest = json.loads(resp.read())
    with urllib.request.urlopen(f"{base}/blobs/{manifest['config']['digest']}", timeout=10) as r:
        config: dict[str, Any] = json.loads(r.read())
    return config
