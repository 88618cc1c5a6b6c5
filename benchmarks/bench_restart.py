"""An operator restart with 1,000 finished and 100 running Jobs: first admission, and its writes.

    make cluster-up
    flock /tmp/batchx-cluster.lock .venv/bin/python benchmarks/bench_restart.py \
        [--finished 1000] [--running 100] [--window 30]

Goals (issue 16): the first admission after a restart within 5 s of the operator's start, and
no rewrite of unchanged objects.

How the jobs are made indistinguishable from the operator's own:

- a first operator (``python -m batchx``) runs one real ``hello-static`` job to completion on
  the test bed's node: its metadata (finalizer, Kopf's annotations, labels) and its status are
  the template of the finished jobs, which are created with that metadata while no operator
  runs, given the template's status through the status subresource, and their charge records
  (the ledger's ConfigMaps, made by `batchx.planning.ledger.charge_record`);
- the same operator admits the running jobs for real: they ask for a GPU of a product only a
  fake Node has (`FakeNode`: a Node object with a Lease renewed by this process and no kubelet,
  tainted so that only GPU pods may land there), so the scheduler binds their pods to it; this
  process then writes their pods' status as a kubelet would (containers running), and the
  operator writes RUNNING.

Then the operator is stopped and started again with nothing new to do (the quiet restart):
every write it makes is a rewrite of an unchanged object (goal 0). Then it is stopped, and the
measured run starts it again and submits one new job at once and one more 3 s later, while
the restarted operator still works through its listing (both bound to the fake node too). The
peer of both admission times is the same two submissions to an operator started on the
Environment with one finished job and no running one.

Writes (POST, PUT, PATCH, DELETE, by resource and code) are the
API server's ``apiserver_request_total`` over the first `--window` seconds after each start,
minus the same window's count with no operator running (the peer, measured just before: the
node controllers, the fake node's heartbeat). Everything made here is deleted at the end: the
Environment and its namespace, the jobs' finalizers, the fake Node and its Lease.
"""

from __future__ import annotations

import argparse
import copy
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchbed import (
    GROUP,
    JSON,
    VERSION,
    Operator,
    bed,
    create_environment,
    create_image,
    ignore_missing,
    in_parallel,
    operator_settings,
    release_jobs,
    say,
    wait,
)
from kubernetes import client
from kubernetes.client.rest import ApiException
from prometheus_client.parser import text_string_to_metric_families

from batchx.planning.finished import finished_labels
from batchx.planning.job_pod import pod_name
from batchx.planning.job_protocol import STAGE_OUT
from batchx.planning.labels import CACHE_KEY, FINISHED
from batchx.planning.ledger import JobAccount, charge_record
from testbed import example_images

FAKE_GPU = "bench-fake-gpu"
WRITES = ("POST", "PUT", "PATCH", "DELETE")
ADMITTED_GOAL_SECONDS = 5.0


def now_iso() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- a node without a kubelet ------------------------------------------------------------------


class FakeNode:
    """A Node object the scheduler binds pods to and nothing runs on; its Lease kept fresh.

    Tainted ``nvidia.com/gpu:NoSchedule`` and labelled with a GPU product of its own, so only
    this benchmark's GPU jobs (which tolerate the taint and select the product) land on it.
    """

    def __init__(self, api: client.ApiClient) -> None:
        self.core = client.CoreV1Api(api)
        self.coordination = client.CoordinationV1Api(api)
        self.name = f"bench-fake-{uuid.uuid4().hex[:6]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._heartbeat, daemon=True)

    def create(self) -> None:
        body = {
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": self.name,
                "labels": {"nvidia.com/gpu.product": FAKE_GPU, "batchx.io/bench": "restart"},
            },
            "spec": {"taints": [{"key": "nvidia.com/gpu", "effect": "NoSchedule"}]},
        }
        self.core.create_node(body)
        lease = {
            "metadata": {"name": self.name, "namespace": "kube-node-lease"},
            "spec": {"holderIdentity": self.name, "leaseDurationSeconds": 40},
        }
        self.coordination.create_namespaced_lease("kube-node-lease", lease)
        self._beat()
        self._thread.start()

    def _beat(self) -> None:
        stamp = now_iso()
        capacity = {"cpu": "1000", "memory": "4Ti", "pods": "1000", "nvidia.com/gpu": "1000"}
        status = {
            "capacity": capacity,
            "allocatable": capacity,
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "KubeletReady",
                    "message": "fake node of bench_restart",
                    "lastHeartbeatTime": stamp,
                    "lastTransitionTime": stamp,
                }
            ],
        }
        self.core.patch_node_status(self.name, {"status": status})
        renew = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        self.coordination.patch_namespaced_lease(
            self.name, "kube-node-lease", {"spec": {"renewTime": renew}}
        )

    def _heartbeat(self) -> None:
        while not self._stop.wait(10):
            try:
                self._beat()
            except ApiException as exc:  # a missed beat is retried at the next one
                say(f"fake node heartbeat: {exc.status} {exc.reason}")

    def delete(self) -> None:
        self._stop.set()
        for call in (
            lambda: self.coordination.delete_namespaced_lease(self.name, "kube-node-lease"),
            lambda: self.core.delete_node(self.name),
        ):
            try:
                call()
            except ApiException as exc:
                if exc.status != 404:
                    raise


def run_pod(core: client.CoreV1Api, namespace: str, pod: JSON) -> None:
    """Write a bound pod's status as its kubelet would: every container started and running."""
    stamp = now_iso()
    spec = pod["spec"]

    def running(container: JSON) -> JSON:
        return {
            "name": container["name"],
            "image": container["image"],
            "imageID": "",
            "ready": True,
            "started": True,
            "restartCount": 0,
            "state": {"running": {"startedAt": stamp}},
        }

    sidecars = [c for c in spec.get("initContainers") or [] if c["name"] == STAGE_OUT]
    status = {
        "phase": "Running",
        "startTime": stamp,
        "hostIP": "10.255.255.1",
        "podIP": "10.255.255.2",
        "conditions": [
            {"type": t, "status": "True", "lastTransitionTime": stamp}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ],
        "initContainerStatuses": [running(c) for c in sidecars],
        "containerStatuses": [running(c) for c in spec["containers"]],
    }
    core.patch_namespaced_pod_status(pod["metadata"]["name"], namespace, {"status": status})


# -- the API server's write counts ------------------------------------------------------------


def write_counts(api: client.ApiClient) -> Counter[tuple[str, str, str]]:
    """``apiserver_request_total`` of write verbs by (verb, resource[/subresource], code)."""
    response = api.call_api(
        "/metrics", "GET", auth_settings=["BearerToken"], _preload_content=False
    )
    # call_api answers a (data, status, headers) tuple, or the raw response without preloading
    raw = response[0] if isinstance(response, tuple) else response
    text = raw.data.decode()
    counts: Counter[tuple[str, str, str]] = Counter()
    for family in text_string_to_metric_families(text):
        if family.name != "apiserver_request":
            continue
        for sample in family.samples:
            labels = sample.labels
            if not sample.name.endswith("_total") or labels.get("verb") not in WRITES:
                continue
            resource = labels.get("resource", "")
            if labels.get("subresource"):
                resource += "/" + labels["subresource"]
            counts[(labels["verb"], resource, labels.get("code", ""))] += int(sample.value)
    return counts


def window(api: client.ApiClient, seconds: float, during: Callable[[], None] | None = None) -> Any:
    """The writes counted over `seconds` from now (`during` runs at the start)."""
    before = write_counts(api)
    start = time.monotonic()
    if during is not None:
        during()
    time.sleep(max(0.0, seconds - (time.monotonic() - start)))
    after = write_counts(api)
    return Counter({k: after[k] - before.get(k, 0) for k in after if after[k] - before.get(k, 0)})


# -- the jobs ---------------------------------------------------------------------------------


def job_body(name: str, image: str, **spec: Any) -> JSON:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"image": image, "input": {}, **spec},
    }


def gpu_manifest(example: example_images.Example) -> JSON:
    manifest = copy.deepcopy(example.manifest)
    manifest["name"] = "bench/gpu-hello"
    manifest["runtime"]["gpus"] = "supported"
    return manifest


def setup_environment(api: client.ApiClient, env: str, example: example_images.Example) -> None:
    """The Environment with the example's Image and a GPU twin of it (the fake node's jobs)."""
    create_environment(api, env, [example], credits=10_000_000)
    gpu = copy.deepcopy(example.image_object(env))
    gpu["metadata"]["name"] = "gpu-hello-1-0-0"
    gpu["spec"]["manifest"] = gpu_manifest(example)
    create_image(client.CustomObjectsApi(api), env, gpu)


def state(custom: client.CustomObjectsApi, env: str, name: str) -> str | None:
    job = custom.get_namespaced_custom_object(GROUP, VERSION, env, "jobs", name)
    return (job.get("status") or {}).get("state")


# cache false: identical jobs would otherwise wait for the first one (execution caching)
GPU_JOB = {"gpus": 1, "gpuType": FAKE_GPU, "timeout": 86_400, "cache": False}


def start_running_jobs(
    api: client.ApiClient, env: str, count: int, made: tuple[str, ...] = ()
) -> None:
    """`count` GPU jobs the operator admits (and those `made` already); their pods bound to the
    fake node, then 'running'."""
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    new = [f"running-{i:04d}" for i in range(count)]
    in_parallel(
        lambda n: custom.create_namespaced_custom_object(
            GROUP, VERSION, env, "jobs", job_body(n, "bench/gpu-hello:1.0.0", **GPU_JOB)
        ),
        new,
    )
    names = [*made, *new]

    def bound(name: str) -> JSON | None:
        try:
            pod = api.sanitize_for_serialization(core.read_namespaced_pod(pod_name(name), env))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return pod if (pod.get("spec") or {}).get("nodeName") else None

    def start(name: str) -> None:
        run_pod(core, env, wait(f"pod of {name} bound", lambda: bound(name), 120, 0.5))

    in_parallel(start, names)
    for name in names:
        wait(f"{name} RUNNING", lambda n=name: state(custom, env, n) == "RUNNING", 120, 0.2)


def make_finished_jobs(api: client.ApiClient, env: str, template: JSON, count: int) -> None:
    """`count` jobs as the operator leaves a finished one: metadata, status, charge record."""
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    meta = template["metadata"]
    keep = {k: meta[k] for k in ("labels", "annotations", "finalizers") if meta.get(k)}

    # The finished labels come last, as the operator sets them: the API server's policy
    # refuses them on a job that is not final yet (batchx.planning.finished).
    keep["labels"] = {
        k: v for k, v in keep.get("labels", {}).items() if k not in (FINISHED, CACHE_KEY)
    }

    def make(index: int) -> None:
        name = f"done-{index:04d}"
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Job",
            "metadata": {"name": name, **copy.deepcopy(keep)},
            "spec": copy.deepcopy(template["spec"]),
        }
        created = custom.create_namespaced_custom_object(GROUP, VERSION, env, "jobs", body)
        done = custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, env, "jobs", name, {"status": template["status"]}
        )
        account = JobAccount.from_body(done)
        if account.charged > 0:
            core.create_namespaced_config_map(env, charge_record(env, account))
        if (labels := finished_labels(done)) is not None:
            custom.patch_namespaced_custom_object(
                GROUP, VERSION, env, "jobs", name, {"metadata": {"labels": labels}}
            )
        assert created["metadata"]["uid"] == done["metadata"]["uid"]

    in_parallel(make, range(count))


# -- main ---------------------------------------------------------------------------------------


def report(label: str, counts: Counter[tuple[str, str, str]]) -> None:
    say(f"  {label}: {_total(counts)} writes")
    for (verb, resource, code), value in sorted(counts.items(), key=lambda kv: -kv[1]):
        if value:
            say(f"    {value:>6}  {verb:<6} {resource:<32} {code}")


LATE_SECONDS = 3.0  # the second job is submitted this long after the operator's start


def submit_and_wait(custom: client.CustomObjectsApi, env: str, name: str) -> None:
    """Submit a GPU job and wait until it is admitted (a state past QUEUED)."""
    custom.create_namespaced_custom_object(
        GROUP, VERSION, env, "jobs", job_body(name, "bench/gpu-hello:1.0.0", **GPU_JOB)
    )
    wait(
        f"{name} admitted",
        lambda: state(custom, env, name) not in (None, "SUBMITTED", "QUEUED"),
        300,
        0.05,
    )


def first_admissions(
    custom: client.CustomObjectsApi,
    env: str,
    names: tuple[str, str],
    settings: dict[str, str],
    log: Path,
) -> tuple[Operator, float, float]:
    """Start an operator, submit a GPU job at once and another `LATE_SECONDS` later (while the
    operator still works through its start): the operator, the seconds from its start to the
    first one's admission, and from the second one's submission to its admission."""
    started = time.monotonic()
    operator = Operator(settings, log)
    try:
        submit_and_wait(custom, env, names[0])
        first = time.monotonic() - started
        # A moment of the start, not a synchronisation: the job comes in while the listing is
        # still being worked through (when the first admission came sooner).
        time.sleep(max(0.0, started + LATE_SECONDS - time.monotonic()))
        submitted = time.monotonic()
        submit_and_wait(custom, env, names[1])
        late = time.monotonic() - submitted
    except BaseException:
        operator.stop()
        raise
    return operator, first, late


def prepare(
    api: client.ApiClient, env: str, settings: dict[str, str], args: Any, log: Path
) -> tuple[float, float]:
    """The first operators' lives: the Environment and a template job; then (the peer) an
    operator started on that nearly empty Environment with a job submitted at once, and the
    running jobs; then the finished jobs are added while no operator runs. Returns the peer's
    seconds to its first admissions (at its start, and a job submitted later)."""
    custom = client.CustomObjectsApi(api)
    example = example_images.build_example("hello-static")
    operator = Operator(settings, log)
    try:
        setup_environment(api, env, example)
        reference = f"{example.manifest['name']}:{example.manifest['version']}"
        custom.create_namespaced_custom_object(
            GROUP, VERSION, env, "jobs", job_body("template", reference)
        )
        wait("template job done", lambda: state(custom, env, "template") == "SUCCEEDED", 180, 0.2)
        template = custom.get_namespaced_custom_object(GROUP, VERSION, env, "jobs", "template")
    finally:
        operator.stop()
    peers = ("running-peer", "running-peer-late")
    operator, *peer = first_admissions(custom, env, peers, settings, log)
    try:
        say(
            f"  peer: first admission {peer[0]:.2f}s after the start, a job submitted "
            f"{LATE_SECONDS:.0f}s after it admitted in {peer[1]:.2f}s "
            "(1 finished job, none running)"
        )
        t0 = time.monotonic()
        start_running_jobs(api, env, args.running - len(peers), made=peers)
        say(f"  {args.running} running jobs in {time.monotonic() - t0:.0f}s")
    finally:
        operator.stop()
    t0 = time.monotonic()
    make_finished_jobs(api, env, template, args.finished)
    say(f"  {args.finished} finished jobs in {time.monotonic() - t0:.0f}s")
    return peer[0], peer[1]


def measure(
    api: client.ApiClient,
    env: str,
    settings: dict[str, str],
    args: Any,
    log: Path,
    *,
    peer: tuple[float, float],
) -> bool:
    """The peer window (no operator), then the restart's window; prints both and the goals
    (the first admission against `peer`, an operator's start on a nearly empty Environment)."""
    custom = client.CustomObjectsApi(api)
    say(f"peer: {args.window:.0f}s with no operator running")
    quiet = window(api, args.window)
    say(f"quiet restart: {args.window:.0f}s from the operator's start, nothing new submitted")
    idle: list[Operator] = []
    quiet_log = log.with_name("operator-quiet-restart.log")
    try:
        resumed = window(api, args.window, lambda: idle.append(Operator(settings, quiet_log)))
    finally:
        for operator in idle:
            operator.stop()
    rewrites = _difference(resumed, quiet)
    admitted: list[float] = []
    operators: list[Operator] = []

    def restart() -> None:
        operator, first, late = first_admissions(custom, env, ("new", "late"), settings, log)
        operators.append(operator)
        admitted.extend((first, late))

    say(f"restart: {args.window:.0f}s from the operator's start")
    try:
        busy = window(api, args.window, restart)
    finally:
        for operator in operators:
            operator.stop()
    diff = _difference(busy, quiet)
    ok = max(admitted) < ADMITTED_GOAL_SECONDS and _total(rewrites) == 0
    say("")
    say(
        f"first admission after the restart: {admitted[0]:.2f}s from the operator's start; "
        f"a job submitted {LATE_SECONDS:.0f}s after the start: admitted {admitted[1]:.2f}s after "
        f"its submission ({'ok' if ok else 'over the 5 s goal'})"
    )
    say(f"  peer, a start with 1 finished job and none running: {peer[0]:.2f}s, and {peer[1]:.2f}s")
    say(
        f"writes in the first {args.window:.0f}s ({args.finished} finished, {args.running} running)"
    )
    report("with the operator restarting", busy)
    report("peer, no operator", quiet)
    report("the operator's (difference)", diff)
    say(f"quiet restart (nothing new submitted), {args.window:.0f}s from the operator's start")
    report("rewrites of unchanged objects (the operator's, goal 0)", rewrites)
    return ok


def _difference(
    counts: Counter[tuple[str, str, str]], peer: Counter[tuple[str, str, str]]
) -> Counter[tuple[str, str, str]]:
    return Counter({k: counts[k] - peer.get(k, 0) for k in set(counts) | set(peer)})


def _total(counts: Counter[tuple[str, str, str]]) -> int:
    return sum(v for v in counts.values() if v > 0)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finished", type=int, default=1000)
    parser.add_argument("--running", type=int, default=100)
    parser.add_argument("--window", type=float, default=30, help="seconds of writes counted")
    args = parser.parse_args()
    t_start = time.monotonic()
    with bed("bench-restart", start=False) as where:
        if where is None:
            return 2
        api, workdir = where.api, where.workdir
        env = f"restart-{uuid.uuid4().hex[:6]}"
        node = FakeNode(api)
        try:
            settings = operator_settings(where.store, where.runner())
            node.create()
            say(f"setup: fake node {node.name}, environment {env}, operator logs in {workdir}")
            peer = prepare(api, env, settings, args, workdir / "operator-setup.log")
            ok = measure(api, env, settings, args, workdir / "operator-restart.log", peer=peer)
            say(f"total {time.monotonic() - t_start:.0f}s")
            return 0 if ok else 1
        finally:
            clean_up(api, env)
            node.delete()


def clean_up(api: client.ApiClient, env: str) -> None:
    """Delete the Environment with no operator running: finalizers dropped, pods forced."""
    custom, core = client.CustomObjectsApi(api), client.CoreV1Api(api)
    unfinalized = {"metadata": {"finalizers": None}}
    ignore_missing(lambda: custom.delete_cluster_custom_object(GROUP, VERSION, "environments", env))
    release_jobs(custom, env)
    ignore_missing(
        lambda: custom.patch_cluster_custom_object(GROUP, VERSION, "environments", env, unfinalized)
    )
    # Pods on a node without a kubelet never confirm their end: delete them at once.
    try:
        pods = core.list_namespaced_pod(env).items
    except ApiException:
        pods = []
    in_parallel(
        lambda pod: ignore_missing(
            lambda: core.delete_namespaced_pod(pod.metadata.name, env, grace_period_seconds=0)
        ),
        pods,
    )
    ignore_missing(lambda: core.delete_namespace(env))


if __name__ == "__main__":
    sys.exit(main())
