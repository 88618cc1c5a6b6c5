"""Trivial jobs as BatchX Jobs vs the same container as bare Pods (a script, not a test).

    make cluster-up
    .venv/bin/python benchmarks/bench_jobs.py [--count 20] [--batch 2]

Goals (issue 6): p50 and p95 from creation to done of Jobs at most 1.5x those of bare Pods;
Job created -> Pod created p99 under 1 s; the operator's RSS (peak, sampled every 50 ms).

What is compared: the `hello-static` example (one static binary, 1 vCPU, 32 MB) as a Job (the
operator admits it, plans its Pod with the stage-in/stage-out runner containers, reads the
result and charges it) and as a bare Pod whose `job` container is a copy of the one the
operator made (same image, resources, security context and variables), reading the same input
from a ConfigMap. "Done" is the Job's final state and the Pod's final phase, as a watch in this
process delivers them; every time is this process's monotonic clock (creationTimestamp has
one-second resolution). Jobs and Pods run in alternating batches of `--batch` (the node fits
two 1-vCPU pods), which goes first alternating per round, after one warm-up of each.

It uses the running test bed, or starts one and leaves it running: MinIO is started on the pod
bridge's gateway (where pods reach it), the runner and example images are built (cached) and
imported, the operator is started as `python -m batchx`, and all of that is removed at the end.
After the totals, a breakdown gives the median time from creation to each step of a Job's and a
bare Pod's life (admitted, pod created, scheduled, stage-in done, container started and exited,
pod final, Job final), so a regression shows where the time went.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client, config
from kubernetes.client.rest import ApiException
from tests.watching import Recorder, Seen

from testbed import cluster, example_images, kube, paths, product_images, topology
from testbed import s3 as s3bed

REPO = Path(__file__).resolve().parents[1]
GROUP, VERSION = "batchx.io", "v1alpha1"
JSON = dict[str, Any]
TERMINAL = {"SUCCEEDED", "WARNING", "FAILED", "CANCELLED", "OUT_OF_MEMORY", "INVALID_OUTPUT"}
EXAMPLE = "hello-static"
INPUT = '{"name": "bench"}'
DONE_TIMEOUT = 180.0
# The operator's settings for job pods (the variable names of batchx.settings.Settings).
RUNNER_IMAGE_VARIABLE = "BATCHX_RUNNER_IMAGE"


def say(msg: str) -> None:
    print(msg, flush=True)


def wait(what: str, probe: Callable[[], Any], timeout: float, interval: float = 0.05) -> Any:
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


class Operator:
    """`python -m batchx` as a child process, its RSS sampled by a thread."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        with log.open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "batchx"],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=REPO,
            )
        self.samples: list[int] = []  # VmRSS in bytes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def _sample(self) -> None:
        status = Path(f"/proc/{self.proc.pid}/status")
        while not self._stop.wait(0.05):
            try:
                text = status.read_text()
            except OSError:
                return
            for line in text.splitlines():
                if line.startswith("VmRSS:"):
                    self.samples.append(int(line.split()[1]) * 1024)

    def rss_now(self) -> int:
        return self.samples[-1] if self.samples else 0

    def stop(self) -> None:
        self._stop.set()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(30)


# -- objects -----------------------------------------------------------------------------------


def job_body(name: str, image: str) -> JSON:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "image": image,
            "input": {"name": "bench"},
            "vcpus": 1,
            "memory": 32,
            "timeout": 300,
            "cache": False,  # a cached result would be no run at all
        },
    }


def bare_pod_body(name: str, template: JSON) -> JSON:
    """A Pod of the Job pod's own `job` container, its input from the ConfigMap `bench-input`."""
    container = next(c for c in template["spec"]["containers"] if c["name"] == "job")
    kept = ("name", "image", "imagePullPolicy", "resources", "securityContext", "env")
    job = {k: container[k] for k in kept if k in container}
    job["volumeMounts"] = [
        {"name": "input", "mountPath": "/batchx/input", "readOnly": True},
        {"name": "output", "mountPath": "/batchx/output"},
    ]
    spec = template["spec"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"bench": "bare"}},
        "spec": {
            "restartPolicy": "Never",
            "automountServiceAccountToken": False,
            "enableServiceLinks": spec.get("enableServiceLinks", False),
            "securityContext": spec.get("securityContext", {}),
            "containers": [job],
            "volumes": [
                {"name": "input", "configMap": {"name": "bench-input"}},
                {"name": "output", "emptyDir": {}},
            ],
        },
    }


class Bench:
    def __init__(self, api: client.ApiClient, env: str, image: str) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.env = env
        self.image = image
        self.jobs = Recorder.custom(api, GROUP, VERSION, env, "jobs")
        self.pods = Recorder.pods(api, env)
        self.created: dict[str, float] = {}
        self.template: JSON | None = None

    def _first(self, recorder: Recorder, name: str, test: Callable[[JSON], bool]) -> Seen | None:
        return recorder.first(lambda s: s.name == name and test(s.obj))

    def job_done(self, name: str) -> Seen | None:
        return self._first(
            self.jobs, name, lambda o: (o.get("status") or {}).get("state") in TERMINAL
        )

    def pod_done(self, name: str) -> Seen | None:
        return self._first(
            self.pods,
            name,
            lambda o: (o.get("status") or {}).get("phase") in ("Succeeded", "Failed"),
        )

    def submit_jobs(self, names: list[str]) -> None:
        for name in names:
            self.created[name] = time.monotonic()
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.env, "jobs", job_body(name, self.image)
            )

    def submit_pods(self, names: list[str]) -> None:
        assert self.template is not None
        for name in names:
            body = bare_pod_body(name, self.template)
            self.created[name] = time.monotonic()
            self.core.create_namespaced_pod(self.env, body)

    def wait_all(self, names: list[str], done: Callable[[str], Seen | None]) -> None:
        wait(
            f"{names} done",
            lambda: all(done(n) for n in names),
            DONE_TIMEOUT,
        )

    def outcome_jobs(self, names: list[str]) -> list[str]:
        """Jobs that did not succeed, with their state and message."""
        bad = []
        for name in names:
            seen = self.job_done(name)
            status = (seen.obj.get("status") or {}) if seen else {}
            if status.get("state") != "SUCCEEDED":
                bad.append(f"{name}: {status.get('state')} {status.get('message')}")
        return bad

    def outcome_pods(self, names: list[str]) -> list[str]:
        bad = []
        for name in names:
            seen = self.pod_done(name)
            phase = (seen.obj.get("status") or {}).get("phase") if seen else None
            if phase != "Succeeded":
                bad.append(f"{name}: {phase}")
        return bad


def report(label: str, values: list[float]) -> str:
    return (
        f"{label:<28} n={len(values):>2}  p50 {statistics.median(values):6.2f}s  "
        f"p95 {percentile(values, 95):6.2f}s  max {max(values):6.2f}s"
    )


def conditions(obj: JSON) -> dict[str, str]:
    return {c["type"]: c["status"] for c in (obj.get("status") or {}).get("conditions") or []}


def create_environment(api: client.ApiClient, env: str, example: example_images.Example) -> None:
    """The Environment, the example's Image in it, and the bare pods' input ConfigMap."""
    custom = client.CustomObjectsApi(api)
    body = {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Environment",
        "metadata": {"name": env},
        "spec": {"credits": 10_000},
    }
    custom.create_cluster_custom_object(GROUP, VERSION, "environments", body)
    wait(
        "Environment Ready",
        lambda: (
            conditions(custom.get_cluster_custom_object(GROUP, VERSION, "environments", env)).get(
                "Ready"
            )
            == "True"
        ),
        90,
        interval=0.2,
    )
    image = example.image_object(env)
    name = image["metadata"]["name"]
    custom.create_namespaced_custom_object(GROUP, VERSION, env, "images", image)
    wait(
        "Image Ready",
        lambda: (
            conditions(
                custom.get_namespaced_custom_object(GROUP, VERSION, env, "images", name)
            ).get("Ready")
            == "True"
        ),
        60,
        interval=0.2,
    )
    client.CoreV1Api(api).create_namespaced_config_map(
        env,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name="bench-input"), data={"input.json": INPUT}
        ),
    )


def warm_up(bench: Bench) -> bool:
    """One Job (its pod is the bare pods' template), then one bare Pod; not measured."""
    bench.submit_jobs(["warm-job"])
    bench.wait_all(["warm-job"], bench.job_done)
    seen = bench.pods.first(lambda s: s.name == "bx-warm-job")
    if seen is None or bench.outcome_jobs(["warm-job"]):
        say(f"warm-up job failed: {bench.outcome_jobs(['warm-job'])}")
        return False
    bench.template = seen.obj
    bench.submit_pods(["warm-pod"])
    bench.wait_all(["warm-pod"], bench.pod_done)
    return True


def measure(bench: Bench, count: int, batch: int) -> tuple[list[str], list[str]]:
    """Alternating batches of Jobs and bare Pods; which goes first alternates per round."""
    job_names: list[str] = []
    pod_names: list[str] = []
    rounds = math.ceil(count / batch)
    say(f"measuring: {rounds} rounds of {batch} Jobs and {batch} bare Pods")
    for r in range(rounds):
        size = min(batch, count - r * batch)
        jobs = [f"job-{r:02d}-{i}" for i in range(size)]
        pods = [f"pod-{r:02d}-{i}" for i in range(size)]
        order = [("jobs", jobs), ("pods", pods)]
        for kind, names in order if r % 2 == 0 else order[::-1]:
            if kind == "jobs":
                bench.submit_jobs(names)
                bench.wait_all(names, bench.job_done)
            else:
                bench.submit_pods(names)
                bench.wait_all(names, bench.pod_done)
        job_names += jobs
        pod_names += pods
    return job_names, pod_names


def elapsed(bench: Bench, names: list[str], done: Callable[[str], Seen | None]) -> list[float]:
    out = []
    for name in names:
        seen = done(name)
        if seen is not None:
            out.append(seen.at - bench.created[name])
    return out


def _containers(pod: JSON) -> dict[str, JSON]:
    status = pod.get("status") or {}
    every = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    return {c["name"]: c.get("state") or {} for c in every}


def _scheduled(pod: JSON) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c["type"] == "PodScheduled" and c["status"] == "True" for c in conditions)


def _started(pod: JSON) -> bool:
    return bool(_containers(pod).get("job", {}).keys() - {"waiting"})


def _exited(pod: JSON, name: str = "job") -> bool:
    return "terminated" in _containers(pod).get(name, {})


def _pod_final(pod: JSON) -> bool:
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


POD_STEPS: list[tuple[str, Callable[[JSON], bool]]] = [
    ("pod created", lambda pod: True),
    ("pod scheduled", _scheduled),
    ("stage-in done", partial(_exited, name="stage-in")),
    ("job container started", _started),
    ("job container exited", _exited),
    ("pod final phase", _pod_final),
]


def breakdown(bench: Bench, names: list[str], pod_of: Callable[[str], str], jobs: bool) -> None:
    """Median time from creation to each step (as the watch saw it), to show where time goes."""

    def admitted(name: str) -> Seen | None:
        return bench.jobs.first(
            lambda s: (
                s.name == name
                and (s.obj.get("status") or {}).get("state") not in (None, "SUBMITTED", "QUEUED")
            )
        )

    def pod_step(test: Callable[[JSON], bool]) -> Callable[[str], Seen | None]:
        return lambda name: bench.pods.first(lambda s: s.name == pod_of(name) and test(s.obj))

    steps: list[tuple[str, Callable[[str], Seen | None]]] = []
    if jobs:
        steps.append(("job admitted (STARTING)", admitted))
    steps += [(label, pod_step(test)) for label, test in POD_STEPS]
    if jobs:
        steps.append(("job final state", bench.job_done))
    for label, find in steps:
        times = elapsed(bench, names, find)
        if times:
            say(f"    {label:<26} p50 {statistics.median(times):6.2f}s  max {max(times):6.2f}s")


def print_report(bench: Bench, job_names: list[str], pod_names: list[str]) -> None:
    job_done = elapsed(bench, job_names, bench.job_done)
    pod_done = elapsed(bench, pod_names, bench.pod_done)
    to_pod = elapsed(bench, job_names, lambda n: bench.pods.first(lambda s: s.name == f"bx-{n}"))
    say("")
    say(report("Job: created -> final state", job_done))
    say(report("Pod: created -> final phase", pod_done))
    ratio50 = statistics.median(job_done) / statistics.median(pod_done)
    ratio95 = percentile(job_done, 95) / percentile(pod_done, 95)
    verdict = "ok" if max(ratio50, ratio95) <= 1.5 else "over the 1.5x goal"
    say(f"{'ratio Jobs / Pods':<28} p50 {ratio50:.2f}x  p95 {ratio95:.2f}x  ({verdict})")
    say("  Jobs, from creation:")
    breakdown(bench, job_names, lambda n: f"bx-{n}", jobs=True)
    say("  bare Pods, from creation:")
    breakdown(bench, pod_names, lambda n: n, jobs=False)
    p99 = percentile(to_pod, 99)
    say(
        f"{'Job created -> Pod created':<28} n={len(to_pod):>2}  p50 "
        f"{statistics.median(to_pod):6.3f}s  p99 {p99:6.3f}s  "
        f"({'ok' if p99 < 1 else 'over the 1 s goal'})"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="Jobs, and as many Pods")
    parser.add_argument("--batch", type=int, default=2, help="created at once per batch")
    args = parser.parse_args()
    t_start = time.monotonic()
    if not cluster.status_quiet():
        say("starting the test bed (`make cluster-down` stops it)")
        cluster.up()
    api = config.new_client_from_config(config_file=str(paths.kubeconfig()))
    workdir = Path(tempfile.mkdtemp(prefix="bench-jobs-"))
    say("setup: CRDs, MinIO on the gateway, runner and example images, operator")
    apply_crds()
    server, store_env = start_store(workdir)
    env = f"bench-{uuid.uuid4().hex[:6]}"
    operator: Operator | None = None
    bench: Bench | None = None
    try:
        runner = product_images.build("runner")
        example = example_images.build_example(EXAMPLE)
        settings = {
            **store_env,
            "KUBECONFIG": str(paths.kubeconfig()),
            "BATCHX_LIVENESS_ENDPOINT": "",
            "BATCHX_READINESS_ENDPOINT": "",
            RUNNER_IMAGE_VARIABLE: runner.pinned,
        }
        operator = Operator(settings, workdir / "operator.log")
        say(f"operator: pid {operator.proc.pid}, log {workdir / 'operator.log'}")
        create_environment(api, env, example)
        reference = f"{example.manifest['name']}:{example.manifest['version']}"
        bench = Bench(api, env, reference)
        bench.jobs.start()
        bench.pods.start()
        rss_idle = operator.rss_now()
        if not warm_up(bench):
            return 1
        job_names, pod_names = measure(bench, args.count, args.batch)
        print_report(bench, job_names, pod_names)
        peak = max(operator.samples, default=0)
        say(
            f"{'operator RSS':<28} idle {rss_idle / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB "
            f"({len(operator.samples)} samples)"
        )
        failures = bench.outcome_jobs(job_names) + bench.outcome_pods(pod_names)
        if failures:
            say(f"NOT ALL SUCCEEDED: {failures}")
        say(f"total {time.monotonic() - t_start:.0f}s")
        return 1 if failures else 0
    finally:
        if bench is not None:
            bench.jobs.stop()
            bench.pods.stop()
        cleanup(api, env, operator)
        s3bed.stop(server)


def cleanup(api: client.ApiClient, env: str, operator: Operator | None) -> None:
    """Delete the Environment (its namespace goes with it) while the operator still runs."""
    custom = client.CustomObjectsApi(api)
    core = client.CoreV1Api(api)
    try:
        custom.delete_cluster_custom_object(GROUP, VERSION, "environments", env)
    except ApiException as exc:
        if exc.status != 404:
            raise

    def gone() -> bool:
        try:
            core.read_namespace(env)
        except ApiException as exc:
            return bool(exc.status == 404)
        return False

    try:
        wait(f"namespace {env} deleted", gone, 90, interval=0.5)
    except TimeoutError as exc:
        say(f"warning: {exc}; `kubectl delete ns {env}` may need finalizers removed")
    finally:
        if operator is not None:
            operator.stop()


if __name__ == "__main__":
    sys.exit(main())
