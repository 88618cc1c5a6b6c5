"""Thousands of Jobs on simulated nodes (KWOK) vs as many bare Pods, in one run (a script).

    flock /tmp/batchx-cluster.lock .venv/bin/python benchmarks/bench_scale.py \\
        [--jobs 1000] [--then 10000] [--envs 10] [--nodes 20] [--run-ms 1000]

Needs the running test bed (`make cluster-up`); it starts nothing of it and changes nothing of
it for good. KWOK (`testbed/build-kwok.sh`, built from its Go module) plays the kubelet of
`--nodes` fake Nodes that this script creates, labelled ``type=kwok`` and tainted
``kwok.x-k8s.io/node=fake:NoSchedule`` so that no other pod lands there; the operator
(``python -m batchx``, a child process) puts job Pods there with its ``jobTolerations`` and
``jobNodeSelector`` settings. KWOK's stages (`benchmarks/kwok_stages.yaml`) run every pod for
``--run-ms`` and end it with exit code 0, output.json in the job container's termination message
as the kubelet returns it on the direct path (the scale image's output lists no file: no runner
container at all; a ``stage-out`` sidecar, with ``BATCHX_DIRECT_OUTPUT=false``, reports it as the
real runner does); the operator judges the job as it judges a real one (SUCCEEDED, charged).
The store is a local directory (the runner never runs; the operator only checks the job's
folder before its first pod).

One round per size M: first the peer, M bare Pods (a job Pod's own spec, without its owner)
created directly in a plain namespace, then M Jobs over `--envs` Environments, each created
from `--clients` threads. Printed for each:

- create rate: objects created per second by this script's clients (the offered load);
- admission rate: Jobs whose Pod exists per second, from the first create to the last Pod
  (for the peer: the Pods' own create rate); the ratio of the two is the goal (>= 0.8);
- time until all are final (every Job in a final state; every Pod Succeeded);
- operator RSS (peak, sampled every 0.1 s) and CPU seconds (utime + stime from /proc);
- API requests per object: ``apiserver_request_total`` from the API server's /metrics, after
  minus before; everyone's requests (scheduler, KWOK, this script), so the bare Pods' figure is
  the floor the Jobs' is compared with, and the top (resource, verb) pairs show what the
  operator adds.

Everything made here is deleted at the end (operator stopped first; the jobs' finalizers are
removed, then the Environments, the peer namespace and the Nodes; KWOK last, by its PID).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchbed import (
    GROUP,
    JSON,
    TERMINAL,
    VERSION,
    Operator,
    apply_crds,
    conditions,
    release_jobs,
    say,
    wait,
)
from kubernetes import client, config
from kubernetes.client.rest import ApiException
from tests.watching import Recorder

from testbed import cluster, paths

REPO = Path(__file__).resolve().parents[1]
NODE_LABEL, NODE_VALUE = "type", "kwok"
TAINT = {"key": "kwok.x-k8s.io/node", "value": "fake", "effect": "NoSchedule"}
TOLERATION = {**TAINT, "operator": "Equal"}
BENCH_LABEL = "bench-scale"
# Never pulled: KWOK runs nothing. The Image is admitted by digest like any other.
FAKE_DIGEST = "sha256:" + "ab" * 32
IMAGE_REF = f"batchx.local/bench/scale@{FAKE_DIGEST}"
RUNNER_REF = f"batchx.local/batchx-runner@{FAKE_DIGEST}"
MANIFEST: JSON = {
    "name": "bench/scale",
    "version": "1.0.0",
    "title": "A job that KWOK runs nowhere (benchmarks/bench_scale.py)",
    "author": "batchx benchmarks",
    "changeLog": "first version",
    "schema": {
        "input": {"type": "object", "properties": {"n": {"type": "integer"}}},
        "output": {
            "type": "object",
            "properties": {"ok": {"type": "boolean"}},
            "required": ["ok"],
        },
    },
    "runtime": {"minMem": 32, "defaultVcpus": 1},
}


# -- watching thousands of objects: first times only, raw JSON (no client models) ------------


class Milestones(Recorder):
    """A cluster-wide list+watch of one resource (`tests.watching.Recorder`, raw JSON) that
    keeps, per object, the first moment each named test held (time.monotonic()) and its latest
    status, nothing else: 10,000 objects and their every version would not fit in memory."""

    def __init__(
        self,
        lister: Callable[..., Any],
        tests: dict[str, Callable[[JSON], bool]],
        keep: Callable[[JSON], bool],
    ) -> None:
        super().__init__(lister, lambda obj: obj, raw=True)
        self._tests, self._keep = tests, keep
        self.reached: dict[str, dict[str, float]] = {name: {} for name in tests}
        self.last: dict[str, JSON] = {}  # the latest status of each kept object

    def count(self, test: str, keys: Iterable[str] | None = None) -> int:
        self.check()
        with self._lock:
            seen = self.reached[test]
            return len(seen) if keys is None else sum(1 for k in keys if k in seen)

    def times(self, test: str) -> dict[str, float]:
        with self._lock:
            return dict(self.reached[test])

    def _record(self, kind: str, items: Iterator[JSON]) -> None:
        now = time.monotonic()
        with self._lock:
            for obj in items:
                if kind == "DELETED" or not self._keep(obj):
                    continue
                meta = obj.get("metadata") or {}
                key = f"{meta.get('namespace')}/{meta.get('name')}"
                self.last[key] = obj.get("status") or {}
                for name, test in self._tests.items():
                    if key not in self.reached[name] and test(obj):
                        self.reached[name][key] = now


# -- the API server's request counters -----------------------------------------------------

_SAMPLE = re.compile(r"^apiserver_request_total\{(?P<labels>[^}]*)\} (?P<value>\S+)$")
_LABEL = re.compile(r'(\w+)="([^"]*)"')


def request_counts(api: client.ApiClient) -> Counter[tuple[str, str]]:
    """``apiserver_request_total`` summed by (resource[/subresource], verb)."""
    response = api.rest_client.pool_manager.request("GET", f"{api.configuration.host}/metrics")
    counts: Counter[tuple[str, str]] = Counter()
    for line in response.data.decode().splitlines():
        match = _SAMPLE.match(line)
        if not match:
            continue
        labels = dict(_LABEL.findall(match["labels"]))
        resource = labels.get("resource", "") + (
            f"/{labels['subresource']}" if labels.get("subresource") else ""
        )
        counts[(resource or "-", labels.get("verb", ""))] += int(float(match["value"]))
    return counts


# -- objects -----------------------------------------------------------------------------------


def node_body(name: str, run: str) -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {NODE_LABEL: NODE_VALUE, BENCH_LABEL: run, "kubernetes.io/hostname": name},
            "annotations": {"node.alpha.kubernetes.io/ttl": "0", "kwok.x-k8s.io/node": "fake"},
        },
        "spec": {"taints": [TAINT]},
    }


def job_body(name: str, n: int) -> JSON:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "image": f"{MANIFEST['name']}:{MANIFEST['version']}",
            "input": {"n": n},
            "vcpus": 1,
            "memory": 32,
            "timeout": 3600,
            "cache": False,
        },
    }


def bare_pod_body(name: str, template: JSON, run: str) -> JSON:
    """A job Pod's spec as it is, as a Pod nobody owns (the operator ignores it)."""
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {BENCH_LABEL: run}},
        "spec": template["spec"] | {"nodeName": None},
    }


@dataclass
class Round:
    label: str
    count: int
    create_seconds: float = 0.0
    admitted_seconds: float = 0.0  # first create -> last Pod exists
    final_seconds: float = 0.0  # first create -> all final
    requests: Counter[tuple[str, str]] = field(default_factory=Counter)
    cpu_seconds: float = 0.0
    peak_rss: int = 0
    failures: Counter[str] = field(default_factory=Counter)


class Bench:
    def __init__(self, api: client.ApiClient, args: argparse.Namespace) -> None:
        self.api, self.args = api, args
        self.core = client.CoreV1Api(api)
        self.custom = client.CustomObjectsApi(api)
        self.run = uuid.uuid4().hex[:6]
        self.envs = [f"scale-{self.run}-{i}" for i in range(args.envs)]
        self.bare_ns = f"scale-{self.run}-pods"
        self.nodes = [f"kwok-{self.run}-{i}" for i in range(args.nodes)]
        self.workdir = Path(tempfile.mkdtemp(prefix="bench-scale-"))
        self.kwok: Operator | None = None
        self.operator: Operator | None = None
        self.template: JSON | None = None
        spaces = {*self.envs, self.bare_ns}

        def ours(obj: JSON) -> bool:
            return (obj.get("metadata") or {}).get("namespace") in spaces

        self.jobs = Milestones(
            lambda **kw: self.custom.list_cluster_custom_object(GROUP, VERSION, "jobs", **kw),
            {
                "final": lambda o: (o.get("status") or {}).get("state") in TERMINAL,
            },
            ours,
        )
        self.pods = Milestones(
            self.core.list_pod_for_all_namespaces,
            {
                "created": lambda o: True,
                "succeeded": lambda o: (o.get("status") or {}).get("phase") == "Succeeded",
            },
            ours,
        )

    # -- setup -----------------------------------------------------------------------------

    def start_kwok(self) -> None:
        binary = subprocess.run(
            ["nice", str(REPO / "testbed/build-kwok.sh")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
        stages = (REPO / "benchmarks/kwok_stages.yaml").read_text()
        conf = self.workdir / "kwok.yaml"
        conf.write_text(stages.replace("__RUN_MS__", str(self.args.run_ms)))
        argv = [
            binary,
            f"--kubeconfig={paths.kubeconfig()}",
            f"--config={conf}",
            f"--manage-nodes-with-label-selector={NODE_LABEL}={NODE_VALUE}",
        ]
        self.kwok = Operator({}, self.workdir / "kwok.log", argv, every=0.1)
        say(f"kwok: pid {self.kwok.proc.pid}, log {self.workdir / 'kwok.log'}")

    def create_nodes(self) -> None:
        for name in self.nodes:
            self.core.create_node(node_body(name, self.run))

        def ready() -> bool:
            if self.kwok is not None and not self.kwok.alive():
                raise RuntimeError(f"kwok exited; see {self.workdir / 'kwok.log'}")
            listed = self.core.list_node(label_selector=f"{BENCH_LABEL}={self.run}")
            return sum(
                1
                for n in listed.items
                if any(c.type == "Ready" and c.status == "True" for c in n.status.conditions or [])
            ) == len(self.nodes)

        wait(f"{len(self.nodes)} fake nodes Ready", ready, 60)

    def start_operator(self) -> None:
        store = self.workdir / "store"
        store.mkdir()
        env = {
            "KUBECONFIG": str(paths.kubeconfig()),
            "BATCHX_STORE": f"file://{store}",
            "BATCHX_RUNNER_IMAGE": RUNNER_REF,
            "BATCHX_JOB_TOLERATIONS": json.dumps([TOLERATION]),
            "BATCHX_JOB_NODE_SELECTOR": json.dumps({NODE_LABEL: NODE_VALUE}),
            "BATCHX_LIVENESS_ENDPOINT": "",
            "BATCHX_READINESS_ENDPOINT": "",
            "BATCHX_LOG_FORMAT": "text",
        }
        for setting in self.args.operator_setting:
            key, _, value = setting.partition("=")
            env[key] = value
        log = self.workdir / "operator.log"
        self.operator = Operator(env, log, every=0.1)
        say(f"operator: pid {self.operator.proc.pid}, log {log}")

    def create_environments(self) -> None:
        for env in self.envs:
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Environment",
                "metadata": {"name": env, "labels": {BENCH_LABEL: self.run}},
                "spec": {"credits": 10_000_000},
            }
            self.custom.create_cluster_custom_object(GROUP, VERSION, "environments", body)
        for env in self.envs:
            wait(
                f"Environment {env} Ready",
                lambda env=env: (
                    conditions(
                        self.custom.get_cluster_custom_object(GROUP, VERSION, "environments", env)
                    ).get("Ready")
                    == "True"
                ),
                120,
            )
            image = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Image",
                "metadata": {"name": "scale-1-0-0", "namespace": env},
                "spec": {"image": IMAGE_REF, "manifest": MANIFEST},
            }
            self.custom.create_namespaced_custom_object(GROUP, VERSION, env, "images", image)
        for env in self.envs:
            wait(
                f"Image in {env} Ready",
                lambda env=env: (
                    conditions(
                        self.custom.get_namespaced_custom_object(
                            GROUP, VERSION, env, "images", "scale-1-0-0"
                        )
                    ).get("Ready")
                    == "True"
                ),
                60,
            )
        self.core.create_namespace(
            client.V1Namespace(
                metadata=client.V1ObjectMeta(name=self.bare_ns, labels={BENCH_LABEL: self.run})
            )
        )

        def has_account() -> bool:  # the ServiceAccount admission refuses pods before it
            try:
                return bool(self.core.read_namespaced_service_account("default", self.bare_ns))
            except ApiException as exc:
                if exc.status == 404:
                    return False
                raise

        wait(f"the default ServiceAccount of {self.bare_ns}", has_account, 60)

    def warm_up(self) -> bool:
        """One Job through KWOK: proves the stages end a job SUCCEEDED; its Pod is the peer's
        template."""
        env = self.envs[0]
        self.custom.create_namespaced_custom_object(
            GROUP, VERSION, env, "jobs", job_body("warm", 0)
        )
        key = f"{env}/warm"
        try:
            wait("the warm-up job final", lambda: self.jobs.count("final", [key]), 120)
        except TimeoutError:
            say(f"warm-up job not final: {self.jobs.last.get(key)}")
            return False
        status = self.jobs.last[key]
        if status.get("state") != "SUCCEEDED":
            say(f"warm-up job ended {status.get('state')}: {status.get('message')}")
            return False
        pod = self.core.read_namespaced_pod("bx-warm", env)
        self.template = self.api.sanitize_for_serialization(pod)
        if not (self.template["spec"].get("nodeName") or "").startswith("kwok-"):
            say(f"the warm-up pod ran on {self.template['spec'].get('nodeName')}, not KWOK's")
            return False
        return True

    # -- rounds ----------------------------------------------------------------------------

    def _create_all(self, create: Callable[[int], None], count: int) -> float:
        started = time.monotonic()
        with ThreadPoolExecutor(self.args.clients) as pool:
            list(pool.map(create, range(count)))
        return time.monotonic() - started

    def _wait_count(
        self, what: str, tracker: Milestones, test: str, keys: list[str], timeout: float
    ) -> float:
        """Seconds from now until `test` held for every key; the time of the last one."""

        def done() -> bool:
            if self.operator is not None and not self.operator.alive():
                raise RuntimeError("the operator exited")
            tracker.check()  # raises what stopped its watch
            return tracker.count(test, keys) == len(keys)

        try:
            wait(what, done, timeout, interval=0.5)
        except TimeoutError:
            say(f"  {what}: {tracker.count(test, keys)} of {len(keys)} within {timeout:.0f}s")
            raise
        times = tracker.times(test)
        return max(times[k] for k in keys)

    def bare_round(self, count: int) -> Round:
        assert self.template is not None
        template = self.template
        out = Round("bare Pods", count)
        names = [f"pod-{count}-{i}" for i in range(count)]
        keys = [f"{self.bare_ns}/{n}" for n in names]
        before = request_counts(self.api)

        def create(i: int) -> None:
            body = bare_pod_body(names[i], template, self.run)
            self.core.create_namespaced_pod(self.bare_ns, body)

        start = time.monotonic()
        out.create_seconds = self._create_all(create, count)
        last = self._wait_count("bare Pods created", self.pods, "created", keys, 60)
        out.admitted_seconds = last - start
        last = self._wait_count(
            "bare Pods Succeeded", self.pods, "succeeded", keys, self.args.final_timeout
        )
        out.final_seconds = last - start
        out.requests = request_counts(self.api) - before
        phases = Counter(str(self.pods.last[k].get("phase")) for k in keys)
        out.failures = Counter({p: n for p, n in phases.items() if p != "Succeeded"})
        return out

    def job_round(self, count: int) -> Round:
        assert self.operator is not None
        out = Round("Jobs", count)
        names = [f"job-{count}-{i}" for i in range(count)]
        where = [self.envs[i % len(self.envs)] for i in range(count)]
        keys = [f"{ns}/{n}" for ns, n in zip(where, names, strict=True)]
        pod_keys = [f"{ns}/bx-{n}" for ns, n in zip(where, names, strict=True)]
        before = request_counts(self.api)
        cpu_before = self.operator.cpu_seconds()
        first_sample = len(self.operator.samples)

        def create(i: int) -> None:
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, where[i], "jobs", job_body(names[i], i)
            )

        start = time.monotonic()
        out.create_seconds = self._create_all(create, count)
        last = self._wait_count(
            "job Pods created", self.pods, "created", pod_keys, self.args.final_timeout
        )
        out.admitted_seconds = last - start
        last = self._wait_count("Jobs final", self.jobs, "final", keys, self.args.final_timeout)
        out.final_seconds = last - start
        out.requests = request_counts(self.api) - before
        out.cpu_seconds = self.operator.cpu_seconds() - cpu_before
        out.peak_rss = self.operator.peak_since(first_sample)
        states = Counter(str(self.jobs.last[k].get("state")) for k in keys)
        out.failures = Counter({s: n for s, n in states.items() if s != "SUCCEEDED"})
        return out

    # -- cleanup ---------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Operator first (nothing re-adds finalizers), then every object made, KWOK last."""
        try:
            if self.operator is not None:
                self.operator.stop()
            self.jobs.stop()
            self.pods.stop()
            self._delete_namespaces()
        finally:
            for name in self.nodes:
                try:
                    self.core.delete_node(name)
                except ApiException as exc:
                    if exc.status != 404:
                        say(f"warning: node {name} not deleted: {exc.reason}")
            if self.kwok is not None:
                self.kwok.stop()

    def _delete_namespaces(self) -> None:
        """The jobs' finalizers removed (the operator is stopped), then the Environments and
        every namespace made, waited for (KWOK ends their pods)."""
        for env in self.envs:
            release_jobs(self.custom, env, threads=self.args.clients)
            try:
                self.custom.delete_cluster_custom_object(GROUP, VERSION, "environments", env)
            except ApiException as exc:
                if exc.status != 404:
                    say(f"warning: Environment {env} not deleted: {exc.reason}")
        spaces = [*self.envs, self.bare_ns]
        for namespace in spaces:  # the Environments' go with them too (owner references)
            try:
                self.core.delete_namespace(namespace)
            except ApiException as exc:
                if exc.status != 404:
                    say(f"warning: namespace {namespace} not deleted: {exc.reason}")

        def gone() -> bool:
            left = self.core.list_namespace().items
            return not any(ns.metadata.name in spaces for ns in left)

        try:
            wait("the benchmark's namespaces deleted", gone, 300, interval=1)
        except TimeoutError as exc:
            say(f"warning: {exc}")


# -- the report ------------------------------------------------------------------------------


def rate(count: int, seconds: float) -> str:
    return f"{count / seconds:8.1f}/s" if seconds > 0 else "       -"


def print_round(bare: Round, jobs: Round) -> None:
    per_pod = sum(bare.requests.values()) / bare.count
    per_job = sum(jobs.requests.values()) / jobs.count
    say("")
    say(f"M = {jobs.count}")
    say(f"  {'':<34}{'bare Pods':>14}{'Jobs':>14}")
    say(
        f"  {'create rate (this script)':<34}{rate(bare.count, bare.create_seconds):>14}"
        f"{rate(jobs.count, jobs.create_seconds):>14}"
    )
    say(
        f"  {'admission rate (Pod exists)':<34}{rate(bare.count, bare.admitted_seconds):>14}"
        f"{rate(jobs.count, jobs.admitted_seconds):>14}"
    )
    ratio = bare.admitted_seconds / jobs.admitted_seconds if jobs.admitted_seconds else 0.0
    say(f"  {'  ratio Jobs / bare Pods':<34}{'':>14}{ratio:>13.2f}x  (goal >= 0.8)")
    say(f"  {'time until all final':<34}{bare.final_seconds:>13.1f}s{jobs.final_seconds:>13.1f}s")
    say(f"  {'API requests per object':<34}{per_pod:>14.1f}{per_job:>14.1f}")
    say(
        f"  {'operator CPU seconds':<34}{'':>14}{jobs.cpu_seconds:>13.1f}s"
        f"  ({jobs.cpu_seconds / jobs.count * 1000:.1f} ms per job)"
    )
    say(f"  {'operator RSS peak':<34}{'':>14}{jobs.peak_rss / 2**20:>11.0f}MiB  (goal < 300)")
    extra = jobs.requests.copy()
    extra.subtract({k: v * jobs.count / bare.count for k, v in bare.requests.items()})
    top = sorted(((v / jobs.count, k) for k, v in extra.items() if v > 0), reverse=True)[:8]
    say("  requests per job beyond a bare Pod's, top (resource, verb):")
    for per, (resource, verb) in top:
        say(f"    {resource + ' ' + verb:<40}{per:6.2f}")
    for r in (bare, jobs):
        if r.failures:
            say(f"  NOT ALL SUCCEEDED ({r.label}): {dict(r.failures)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000, help="Jobs (and bare Pods), first round")
    parser.add_argument(
        "--then",
        type=int,
        default=0,
        help="a second round of this many, if the first took under --then-if seconds",
    )
    parser.add_argument("--then-if", type=float, default=240.0)
    parser.add_argument("--envs", type=int, default=10)
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--clients", type=int, default=10, help="threads creating objects")
    parser.add_argument("--run-ms", type=int, default=1000, help="how long each pod 'runs'")
    parser.add_argument("--final-timeout", type=float, default=600.0)
    parser.add_argument(
        "--operator-setting",
        action="append",
        default=[],
        metavar="BATCHX_X=VALUE",
        help="an operator setting for this run (e.g. BATCHX_API_QPS=100); repeatable",
    )
    args = parser.parse_args()
    if not cluster.status_quiet():
        say("the test bed is not running: `make cluster-up` first")
        return 2
    t_start = time.monotonic()
    api = config.new_client_from_config(config_file=str(paths.kubeconfig()))
    api.configuration.connection_pool_maxsize = max(args.clients, 10)
    api.rest_client = client.rest.RESTClientObject(api.configuration)
    bench = Bench(api, args)
    failed = False
    try:
        say(f"setup: kwok, {args.nodes} fake nodes, the operator, {args.envs} Environments")
        apply_crds()
        bench.start_kwok()
        bench.create_nodes()
        bench.start_operator()
        bench.jobs.start(60)
        bench.pods.start(60)
        bench.create_environments()
        if not bench.warm_up():
            return 1
        say(f"setup done in {time.monotonic() - t_start:.0f}s")
        sizes = [args.jobs] + ([args.then] if args.then else [])
        for size in sizes:
            round_start = time.monotonic()
            bare = bench.bare_round(size)
            say(f"  {size} bare Pods final in {bare.final_seconds:.1f}s")
            jobs = bench.job_round(size)
            print_round(bare, jobs)
            failed = failed or bool(bare.failures or jobs.failures)
            if time.monotonic() - round_start > args.then_if:
                say(f"  (the round took over {args.then_if:.0f}s: no larger round)")
                break
        say(f"total {time.monotonic() - t_start:.0f}s; logs in {bench.workdir}")
        return 1 if failed else 0
    finally:
        bench.cleanup()


if __name__ == "__main__":
    sys.exit(main())
