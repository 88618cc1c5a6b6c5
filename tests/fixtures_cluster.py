"""pytest plugin: a real Kubernetes cluster for the tests, and a fresh namespace per test.

`--cluster=local` (default) uses the project's own test bed (testbed/cluster.py): it reuses a
cluster that `make cluster-up` left running, or starts one for the session and stops it after.
`--cluster=kind` creates a kind cluster through pytest-kind (needs Docker), so users' CI with
Docker runs the same tests. `--cluster=existing` uses $KUBECONFIG as it is.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config

from testbed import cluster as testbed_cluster
from testbed import images, kube, paths, product_images
from tests.helpers import eventually


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--cluster",
        choices=["local", "kind", "existing"],
        default="local",
        help="which Kubernetes cluster the cluster tests run against",
    )


class Cluster:
    """What a test needs to know about the cluster it runs against."""

    def __init__(self, kubeconfig: Path, kind: Any = None) -> None:
        self.kubeconfig = kubeconfig
        self.kind = kind

    def load_image(self, spec: images.ImageSpec) -> images.BuiltImage:
        """Build an image and make it pullable by the node (the test bed's registry)."""
        if self.kind is None:
            return images.publish(spec)
        archive = Path(tempfile.mkdtemp(prefix="batchx-kind-")) / "image.tar"
        digest = images.write_archive(spec, archive)
        self.kind.kind("load", "image-archive", str(archive), "--name", self.kind.name)
        return images.BuiltImage(spec.ref, digest)

    def product_image(self, target: product_images.Target) -> images.BuiltImage:
        """The operator or runner image, built from images/Dockerfile and pullable by the node."""
        built = product_images.build(target)
        if self.kind is not None:
            archive = Path(tempfile.mkdtemp(prefix="batchx-kind-")) / "image.tar"
            product_images.export(target, archive)
            self.kind.kind("load", "image-archive", str(archive), "--name", self.kind.name)
        return built

    def kubectl(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        executable = None if self.kind is None else "kubectl"
        return kube.kubectl(self.kubeconfig, *args, input=input, executable=executable)


def _local_cluster_running() -> bool:
    try:
        return testbed_cluster.status_quiet()
    except Exception:
        return False


@pytest.fixture(scope="session")
def cluster(request: pytest.FixtureRequest) -> Iterator[Cluster]:
    mode = request.config.getoption("--cluster")
    if mode == "existing":
        yield Cluster(Path(os.environ.get("KUBECONFIG", Path.home() / ".kube" / "config")))
    elif mode == "kind":
        # Imported here: only this mode needs pytest-kind's Docker-backed machinery.
        from pytest_kind import KindCluster  # noqa: PLC0415

        kind = KindCluster("batchx-tests")
        kind.create()
        try:
            yield Cluster(Path(kind.kubeconfig_path), kind)
        finally:
            kind.delete()
    elif _local_cluster_running():
        yield Cluster(paths.kubeconfig())  # started by `make cluster-up`: keep it
    else:
        kubeconfig = testbed_cluster.up()
        try:
            yield Cluster(kubeconfig)
        finally:
            testbed_cluster.down()


@pytest.fixture(scope="session")
def kubeconfig(cluster: Cluster) -> str:
    return str(cluster.kubeconfig)


@pytest.fixture(scope="session")
def kube_api(kubeconfig: str) -> Iterator[client.ApiClient]:
    api = config.new_client_from_config(config_file=kubeconfig)
    yield api
    api.close()


@pytest.fixture(scope="session")
def busybox(cluster: Cluster) -> images.BuiltImage:
    return cluster.load_image(images.busybox_spec())


@pytest.fixture
def namespace(kube_api: client.ApiClient, request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace for one test, with its default service account ready; deleted after."""
    core = client.CoreV1Api(kube_api)
    stem = request.node.name.lower().replace("_", "-")
    name = "t-" + "".join(c for c in stem if c.isalnum() or c == "-")[:40].strip("-")
    name = f"{name}-{uuid.uuid4().hex[:5]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    eventually(
        lambda: core.read_namespaced_service_account("default", name),
        timeout=60,
        what=f"default service account in {name}",
    )
    yield name
    core.delete_namespace(name, propagation_policy="Background")
