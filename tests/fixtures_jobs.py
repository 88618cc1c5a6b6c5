"""pytest plugin: what running real Jobs needs, for the session and for one module.

- `pod_s3` (session): a MinIO that pods can reach: it listens on the pod bridge's gateway
  (`testbed.topology.GATEWAY`, the node's own address), not on 127.0.0.1 like `s3_server`.
- `job_bed` (session): a bucket on it, the runner image and every example image imported into
  the cluster; `job_bed.operator_env()` is the ``BATCHX_*``/``AWS_*`` configuration an operator
  needs to run jobs (for `operator_process` too: ``{**os.environ, **job_bed.operator_env()}``).
- `jobs_operator` (module): one in-process operator with that configuration, shared by the
  tests of a module (starting one per test would cost seconds each).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from kopf.testing import KopfRunner
from testbed.images import BuiltImage
from testbed.topology import GATEWAY

from batchx.store import open_store
from batchx.store.fs import Store
from testbed import example_images
from testbed import s3 as s3bed
from tests.fixtures_cluster import Cluster
from tests.fixtures_operator import TEST_SETTINGS

# Short enough that a stopped sidecar does not hold a test up, long enough to upload test files.
UPLOAD_GRACE_SECONDS = 30


@pytest.fixture(scope="session")
def pod_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3bed.S3Server]:
    server = s3bed.start(Path(tmp_path_factory.mktemp("pod-s3")), host=GATEWAY)
    try:
        yield server
    finally:
        s3bed.stop(server)


@dataclass(frozen=True)
class JobBed:
    """The store, runner image and example images of the job tests."""

    s3: s3bed.S3Server
    store_url: str
    runner: BuiltImage
    examples: dict[str, example_images.Example] = field(default_factory=dict)

    def credentials(self) -> dict[str, str]:
        return {
            "AWS_ACCESS_KEY_ID": self.s3.access_key,
            "AWS_SECRET_ACCESS_KEY": self.s3.secret_key,
            "AWS_DEFAULT_REGION": self.s3.region,
        }

    def operator_env(self) -> dict[str, str]:
        """The operator's configuration for running jobs on the test bed."""
        return {
            **TEST_SETTINGS,
            **self.credentials(),
            "BATCHX_STORE": self.store_url,
            "BATCHX_RUNNER_IMAGE": self.runner.pinned,
            "BATCHX_UPLOAD_GRACE_SECONDS": str(UPLOAD_GRACE_SECONDS),
        }

    def store(self) -> Store:
        """A client of the same store (close it, or use it as a context manager)."""
        previous = {k: os.environ.get(k) for k in self.credentials()}
        os.environ.update(self.credentials())
        try:
            return open_store(self.store_url)
        finally:
            for key, value in previous.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value


@pytest.fixture(scope="session")
def job_bed(cluster: Cluster, pod_s3: s3bed.S3Server) -> JobBed:
    bucket = pod_s3.make_bucket(f"bx-jobs-{uuid.uuid4().hex[:10]}")
    return JobBed(
        s3=pod_s3,
        store_url=f"s3://{bucket}/store?endpoint={pod_s3.endpoint}",
        runner=cluster.product_image("runner"),
        examples={name: example_images.build_example(name) for name in example_images.RECIPES},
    )


@pytest.fixture(scope="module")
def jobs_operator(job_bed: JobBed, kubeconfig: str, batchx_crds: list[str]) -> Iterator[KopfRunner]:
    yield from run_jobs_operator(job_bed, kubeconfig)


def run_jobs_operator(job_bed: JobBed, kubeconfig: str, **settings: str) -> Iterator[KopfRunner]:
    """The jobs' operator in this process, with `settings` (``BATCHX_...`` variables) added."""
    with pytest.MonkeyPatch.context() as patch:
        environment = {"KUBECONFIG": kubeconfig, **job_bed.operator_env(), **settings}
        for key, value in environment.items():
            patch.setenv(key, value)
        args = ["run", "--all-namespaces", "--standalone", "-m", "batchx.handlers"]
        with KopfRunner(args, timeout=60) as runner:
            yield runner
    if runner.exception is not None:
        raise runner.exception
