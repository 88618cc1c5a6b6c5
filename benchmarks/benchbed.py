"""The set-up every benchmark against the test bed repeats, in one place.

Why a module of its own: each benchmark (`bench_jobs`, `bench_cache`, `bench_restart`,
`bench_cli`, `bench_scale`) needs the same steps before it measures anything (the CRDs applied,
MinIO on the pod bridge's gateway with a bucket, the runner image built, the operator started
as ``python -m batchx`` with its RSS and CPU sampled, an Environment with the examples' Images)
and the same clean-up after; copies of them drifted (one benchmark's Environment helper took
one example, another's a list). Nothing here measures: each benchmark prints its own table.
"""

from __future__ import annotations

import math
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.rest import ApiException

from testbed import cluster, example_images, kube, paths, product_images, topology
from testbed import s3 as s3bed

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION = "batchx.io", "v1alpha1"
JSON = dict[str, Any]
TERMINAL = frozenset(
    {"SUCCEEDED", "WARNING", "FAILED", "CANCELLED", "OUT_OF_MEMORY", "INVALID_OUTPUT"}
)
# The operator's setting for job pods' runner (a variable name of batchx.settings.Settings).
RUNNER_IMAGE_VARIABLE = "BATCHX_RUNNER_IMAGE"


def say(msg: str) -> None:
    print(msg, flush=True)


def wait(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
    """`probe()`'s first true value, polled every `interval` s; TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached within {timeout:.0f}s")
        time.sleep(interval)


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100): an observed value, no interpolation."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def conditions(obj: JSON) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}


def in_parallel(call: Callable[[Any], Any], items: Iterable[Any], threads: int = 8) -> list[Any]:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(call, items))


# -- the test bed ----------------------------------------------------------------------------


def apply_crds() -> None:
    kubectl = kube.build_binaries() / "kubectl"
    subprocess.run(
        [str(kubectl), f"--kubeconfig={paths.kubeconfig()}", "apply", "-f", "crds/"],
        check=True,
        cwd=REPO,
        capture_output=True,  # kubectl's warnings about objects created by other tools
    )
    subprocess.run(
        [
            str(kubectl),
            f"--kubeconfig={paths.kubeconfig()}",
            "wait",
            "--for=condition=Established",
            "--timeout=60s",
            *(f"crd/{plural}.{GROUP}" for plural in ("environments", "images", "jobs")),
        ],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def start_store(workdir: Path) -> tuple[s3bed.S3Server, dict[str, str]]:
    """MinIO on the bridge gateway, a bucket, and the operator's store settings for it."""
    server = s3bed.start(workdir / "s3", host=topology.GATEWAY)
    bucket = server.make_bucket(f"bench-{uuid.uuid4().hex[:8]}")
    return server, {
        "BATCHX_STORE": f"s3://{bucket}?endpoint={server.endpoint}",
        **server.credentials(),
    }


def operator_settings(store: dict[str, str], runner: str | None = None, **more: str) -> JSON:
    """The operator's environment for a benchmark: the test bed's kubeconfig, no probes' HTTP
    endpoints, the store, the runner image (pinned) and `more` (``BATCHX_...`` variables)."""
    settings = {
        **store,
        "KUBECONFIG": str(paths.kubeconfig()),
        "BATCHX_LIVENESS_ENDPOINT": "",
        "BATCHX_READINESS_ENDPOINT": "",
        **more,
    }
    if runner is not None:
        settings[RUNNER_IMAGE_VARIABLE] = runner
    return settings


@dataclass
class Bed:
    """What `bed` set up: the API client, a scratch folder, the store's operator settings."""

    api: client.ApiClient
    workdir: Path
    store: dict[str, str] = field(default_factory=dict)

    def runner(self) -> str:
        """The runner image, built (cached) and imported: its pinned reference."""
        return product_images.build("runner").pinned


@contextmanager
def bed(prefix: str, *, start: bool = True, s3: bool = True) -> Iterator[Bed | None]:
    """The test bed for one benchmark run: CRDs applied, MinIO started (`s3`) and stopped at
    the end. None when the test bed is down and `start` is false (the caller says so and exits
    2); `start`: bring it up and leave it running."""
    if not cluster.status_quiet():
        if not start:
            say("the test bed is not running: `make cluster-up` first")
            yield None
            return
        say("starting the test bed (`make cluster-down` stops it)")
        cluster.up()
    api = config.new_client_from_config(config_file=str(paths.kubeconfig()))
    workdir = Path(tempfile.mkdtemp(prefix=f"{prefix}-"))
    apply_crds()
    server, store = start_store(workdir) if s3 else (None, {})
    try:
        yield Bed(api, workdir, store)
    finally:
        if server is not None:
            s3bed.stop(server)


class Operator:
    """`python -m batchx` (or `argv`) as a child process; its RSS sampled every `every` s by a
    thread, its CPU seconds read from /proc."""

    def __init__(
        self,
        env: dict[str, str],
        log: Path,
        argv: Sequence[str] = (sys.executable, "-m", "batchx"),
        every: float = 0.05,
    ) -> None:
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                list(argv),
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        self.samples: list[int] = []  # VmRSS in bytes
        self._every = every
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        while not self._stop.wait(self._every):
            rss = self.rss()
            if rss:
                self.samples.append(rss)

    def rss(self) -> int:
        try:
            text = Path(f"/proc/{self.proc.pid}/status").read_text()
        except OSError:
            return 0
        line = next((x for x in text.splitlines() if x.startswith("VmRSS:")), "VmRSS: 0 kB")
        return int(line.split()[1]) * 1024

    def rss_now(self) -> int:
        return self.samples[-1] if self.samples else 0

    def peak_since(self, sample: int) -> int:
        """The largest RSS sampled since sample number `sample` (``len(samples)`` then)."""
        return max(self.samples[sample:], default=self.rss())

    def cpu_seconds(self) -> float:
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        self._stop.set()
        if self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


# -- Environments --------------------------------------------------------------------------


def create_environment(
    api: client.ApiClient,
    env: str,
    examples: Sequence[example_images.Example],
    *,
    credits: int = 10_000,
    labels: dict[str, str] | None = None,
) -> None:
    """The Environment (waited Ready) and the examples' Images in it (waited Ready)."""
    custom = client.CustomObjectsApi(api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Environment",
        "metadata": {"name": env, "labels": labels or {}},
        "spec": {"credits": credits},
    }
    custom.create_cluster_custom_object(GROUP, VERSION, "environments", body)
    wait(f"Environment {env} Ready", partial(environment_ready, custom, env), 120, interval=0.2)
    for example in examples:
        create_image(custom, env, example.image_object(env))


def environment_ready(custom: client.CustomObjectsApi, env: str) -> bool:
    body = custom.get_cluster_custom_object(GROUP, VERSION, "environments", env)
    return conditions(body).get("Ready") == "True"


def create_image(custom: client.CustomObjectsApi, env: str, image: JSON) -> None:
    name = image["metadata"]["name"]
    custom.create_namespaced_custom_object(GROUP, VERSION, env, "images", image)
    wait(f"Image {name} Ready", partial(image_ready, custom, env, name), 60, interval=0.2)


def image_ready(custom: client.CustomObjectsApi, env: str, name: str) -> bool:
    image = custom.get_namespaced_custom_object(GROUP, VERSION, env, "images", name)
    return conditions(image).get("Ready") == "True"


def ignore_missing(call: Callable[[], Any]) -> None:
    try:
        call()
    except ApiException as exc:
        if exc.status != 404:
            raise


def release_jobs(
    custom: client.CustomObjectsApi,
    namespace: str,
    keep: Callable[[JSON], bool] = lambda job: True,
    threads: int = 8,
) -> None:
    """Drop the finalizers of the namespace's Jobs (those `keep` selects), with no operator to
    do it: their namespace can then go."""
    try:
        items = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, "jobs")["items"]
    except ApiException:
        return
    names = [j["metadata"]["name"] for j in items if j["metadata"].get("finalizers") and keep(j)]
    patch = {"metadata": {"finalizers": None}}
    in_parallel(
        lambda name: ignore_missing(
            lambda: custom.patch_namespaced_custom_object(
                GROUP, VERSION, namespace, "jobs", name, patch
            )
        ),
        names,
        threads,
    )


def delete_environment(api: client.ApiClient, env: str, operator: Operator | None) -> None:
    """Delete the Environment (its namespace goes with it) while the operator still runs, then
    stop the operator."""
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    try:
        ignore_missing(
            lambda: custom.delete_cluster_custom_object(GROUP, VERSION, "environments", env)
        )

        def gone() -> bool:
            try:
                core.read_namespace(env)
            except ApiException as exc:
                return bool(exc.status == 404)
            return False

        wait(f"namespace {env} deleted", gone, 90, interval=0.5)
    except TimeoutError as exc:
        say(f"warning: {exc}; `kubectl delete ns {env}` may need finalizers removed")
    finally:
        if operator is not None:
            operator.stop()
