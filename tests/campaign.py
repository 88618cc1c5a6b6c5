"""A fault campaign: a mixed batch of real jobs runs while one fault is injected, then every
invariant BatchX promises is checked on what happened.

The batch (`mixed_batch`) has jobs with an input file and an output file (wordcount), jobs that
only run (napper, a static binary), a warning and an error exit, and one job that is cancelled
while it runs; the Environment's quota admits two at a time, so jobs also wait QUEUED. The
operator is a real `python -m batchx` process, the store a MinIO of the campaign's own (so that
it can be restarted without touching other tests' store).

A `Fault` is injected while the batch runs: the operator SIGKILLed at random moments, a test bed
component restarted (API server, etcd, kubelet: `testbed.cluster.restart`), the store restarted
or unreachable for a while (`testbed.s3.restart`), a job's Pod or plan ConfigMap deleted by hand,
the node under memory pressure (the kubelet restarted with an eviction threshold it is always
past, so it taints the node and evicts pods; nothing is filled, so the machine is never at risk;
disk pressure is left out: its reclaim deletes images, which the test bed cannot pull again).
Then `check` collects every violation (an empty list is the goal):

- every job ends in the state its image (or the fault: a Pod deleted by hand) dictates;
- no job ever had two Pods (a watch from the start records every Pod, however short-lived);
- the credits add up exactly: ``spent`` = the sum of the jobs' charges, nothing stays reserved,
  the ledger holds one record per charged job, a job whose container ran cost something;
- every output file is readable and has the content its input dictates;
- nothing is orphaned: every Pod and ConfigMap is owned by a Job that exists, no Pod of a
  finished job is still running;
- the operator logged no traceback;
- the test bed is as the fault found it: the node Ready without a pressure taint, the kubelet
  on its own settings.

`Row` is what a run reports: the fault, how many runs and jobs, the violations, and the time to
recover (from the moment the fault ended to the next job state change the watch saw).
"""

from __future__ import annotations

import json
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from kubernetes import client
from kubernetes.client.rest import ApiException

from batchx.models import TERMINAL_STATES
from batchx.store import open_store
from testbed import cluster as testbed_cluster
from testbed import example_images, paths, topology
from testbed import s3 as s3bed
from tests.fixtures_operator import OperatorProcess
from tests.helpers import eventually
from tests.integration.bx import GROUP, VERSION, Bx, condition
from tests.watching import Recorder

JSON = dict[str, Any]
CREDITS = 100
QUOTA = {"cpu": "2", "memory": "2Gi"}
JOB_LABEL = "batchx.io/job"  # on every pod and plan the operator makes for a job
LEDGER_RECORDS = "batchx.io/ledger=charge"
FINISH_TIMEOUT = 420.0  # seconds for the batch after the fault: 9 jobs, 2 at a time, loaded node


@dataclass(frozen=True)
class Case:
    """One job of the batch and how it must end."""

    name: str
    example: str
    spec: JSON = field(default_factory=dict)
    state: str = "SUCCEEDED"
    reason: str | None = None  # of the Succeeded condition, when it is False
    exit_code: int | None = 0
    text: str | None = None  # wordcount: its input file's content (its output is checked)


def mixed_batch() -> list[Case]:
    texts = ["one", "two two", "three three three"]
    return [
        Case("cancel-0", "sleeper", {"timeout": 300}, "CANCELLED", "Cancelled", exit_code=None),
        *(
            Case(f"wc-{i}", "wordcount", {"input": {"text": f"bx://texts/t{i}.txt"}}, text=t)
            for i, t in enumerate(texts)
        ),
        Case("nap-0", "napper", {"input": {"seconds": 6}}),
        Case("nap-1", "napper", {"input": {"seconds": 3}}),
        Case("hello-0", "hello-static", {"input": {"name": "zero"}}),
        Case("warn-0", "exit-warning", state="WARNING", exit_code=3),
        Case("error-0", "exit-error", state="FAILED", exit_code=2),
    ]


# ----------------------------------------------------------------------------------- a run


@dataclass
class Run:
    """One batch under one fault: the objects, the watches and the clock."""

    bx: Bx
    env: str
    operator: OperatorProcess
    store: CampaignStore
    cases: list[Case]
    examples: dict[str, example_images.Example]
    rng: random.Random
    pods: Recorder
    jobs: Recorder
    t0: float = field(default_factory=time.monotonic)
    recovered_marks: list[float] = field(default_factory=list)  # when each fault ended
    expected: dict[str, Case] = field(default_factory=dict)  # cases a fault changed the end of
    log: list[str] = field(default_factory=list)
    seconds: float = 0.0  # from submission to every job final

    def say(self, line: str) -> None:
        self.log.append(f"t={time.monotonic() - self.t0:6.1f}s {line}")

    def states(self) -> dict[str, str]:
        return {
            j["metadata"]["name"]: str((j.get("status") or {}).get("state") or "-")
            for j in self.bx.jobs(self.env)
        }

    def wait_for(self, what: str, probe: Callable[[], Any], timeout: float = 240) -> Any:
        return eventually(probe, timeout=timeout, interval=0.25, what=f"{what} ({self.env})")

    def job_in(self, *states: str, names: tuple[str, ...] = ()) -> str | None:
        """The name of a job (of `names`, if given) in one of `states`, if any."""
        for name, state in sorted(self.states().items()):
            if state in states and (not names or name in names):
                return name
        return None

    def submit(self, cases: list[Case]) -> None:
        for case in cases:
            example = self.examples[case.example]
            body = {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "Job",
                "metadata": {"name": case.name},
                "spec": {
                    "image": f"{example.manifest['name']}:{example.manifest['version']}",
                    "input": {},
                    "timeout": 180,
                    "cache": False,  # every job runs: a cached one would make no pod
                    **case.spec,
                },
            }
            self.bx.custom.create_namespaced_custom_object(GROUP, VERSION, self.env, "jobs", body)

    def cancel_when_running(self) -> None:
        name = next(c.name for c in self.cases if c.state == "CANCELLED")
        self.wait_for(f"{name} running", lambda: self.job_in("RUNNING", names=(name,)))
        patch = {"spec": {"cancel": True}}
        self.bx.custom.patch_namespaced_custom_object(GROUP, VERSION, self.env, "jobs", name, patch)
        self.say(f"cancelled {name}")

    def final(self) -> list[JSON] | None:
        jobs = self.bx.jobs(self.env)
        done = [j for j in jobs if (j.get("status") or {}).get("state") in TERMINAL_STATES]
        return jobs if len(jobs) == len(self.cases) and len(done) == len(jobs) else None


class Fault(Protocol):
    """Something that goes wrong while the batch runs."""

    name: str

    def inject(self, run: Run) -> None:
        """Break something at some moment of the batch (marking when it ended), then return."""


# -------------------------------------------------------------------------------- the faults


@dataclass
class OperatorKilled:
    """SIGKILL the operator `kills` times at random moments; jobs created while it is down."""

    kills: int = 3
    name: str = "operator SIGKILL"

    def inject(self, run: Run) -> None:
        late = run.cases[-2:-1]  # one job is created while the operator is down
        for kill in range(self.kills):
            done = len([s for s in run.states().values() if s in TERMINAL_STATES])
            target = 0.5 + kill * (len(run.cases) - 1) / self.kills
            run.wait_for(
                f"progress {target} before kill {kill + 1}",
                lambda d=done, t=target: _progress(run) >= max(t, d),
                timeout=FINISH_TIMEOUT,
            )
            time.sleep(run.rng.uniform(0.0, 3.0))  # a random moment, on purpose
            run.operator.kill()
            run.say(f"operator killed ({kill + 1}/{self.kills}): {run.states()}")
            if kill == 0:
                run.submit(late)
            time.sleep(run.rng.choice([0.0, 0.0, run.rng.uniform(0.5, 3.0)]))
            run.operator.start()
            run.recovered_marks.append(time.monotonic())

    def held_back(self, cases: list[Case]) -> list[Case]:
        return cases[-2:-1]


@dataclass
class ComponentRestarted:
    """Restart one test bed component while jobs run (and, for the kubelet, while a job runs)."""

    component: str
    down_for: float = 0.0
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or (
            f"{self.component} down {self.down_for:.0f}s"
            if self.down_for
            else f"{self.component} restarted"
        )

    def inject(self, run: Run) -> None:
        run.wait_for("a job running", lambda: run.job_in("RUNNING", "DOWNLOADING_INPUT"))
        took = testbed_cluster.restart(self.component, down_for=self.down_for)
        run.recovered_marks.append(time.monotonic())
        run.say(f"{self.component} restarted, answering {took:.1f}s after its start")


@dataclass
class StoreRestarted:
    """Restart the store (or keep it down `down_for` seconds) while files move."""

    down_for: float = 0.0
    name: str = ""

    def __post_init__(self) -> None:
        self.name = self.name or (
            f"store unreachable {self.down_for:.0f}s" if self.down_for else "store restarted"
        )

    def inject(self, run: Run) -> None:
        wordcounts = tuple(c.name for c in run.cases if c.example == "wordcount")
        run.wait_for(
            "a wordcount staging or running",
            lambda: (
                run.job_in("DOWNLOADING_INPUT", "RUNNING", "UPLOADING_OUTPUT", names=wordcounts)
                or run.job_in("STARTING", names=wordcounts)
            ),
        )
        run.store.restart(self.down_for)
        run.recovered_marks.append(time.monotonic())
        run.say(f"store back after {self.down_for:.0f}s down: {run.states()}")


@dataclass
class PodDeleted:
    """Delete a running job's Pod by hand: that job must end FAILED PodDeleted, the rest as
    usual.

    The victim is a sleeper of its own that runs until its pod is deleted: a batch job (nap-0
    naps 6 s) can end before the fault is injected, or never show RUNNING at all (a pod whose
    container started and ended between two of the operator's looks goes from
    DOWNLOADING_INPUT to UPLOADING_OUTPUT), and the batch then waited for it in vain.
    """

    victim: str = "delete-0"
    name: str = "a job's Pod deleted"

    def inject(self, run: Run) -> None:
        victim = Case(self.victim, "sleeper", {"timeout": 150}, "FAILED", "PodDeleted", None)
        run.cases.append(victim)
        run.submit([victim])
        run.wait_for(f"{self.victim} running", lambda: run.job_in("RUNNING", names=(self.victim,)))
        run.bx.core.delete_namespaced_pod(f"bx-{self.victim}", run.env)
        run.recovered_marks.append(time.monotonic())
        run.say(f"deleted the pod of {self.victim}")


@dataclass
class PlanDeleted:
    """Delete a job's plan ConfigMap while it runs: the job must still end as its image says."""

    victim: str = "wc-2"
    name: str = "a plan ConfigMap deleted"

    def inject(self, run: Run) -> None:
        run.wait_for(
            f"{self.victim} planned",
            lambda: run.job_in("DOWNLOADING_INPUT", "RUNNING", names=(self.victim,)),
        )
        plans = run.bx.core.list_namespaced_config_map(
            run.env, label_selector=f"{JOB_LABEL}={self.victim}"
        ).items
        for plan in plans:
            if plan.metadata.labels.get("batchx.io/ledger") is None:
                run.bx.core.delete_namespaced_config_map(plan.metadata.name, run.env)
        run.recovered_marks.append(time.monotonic())
        run.say(f"deleted {[p.metadata.name for p in plans]} of {self.victim}")


# The kubelet's own eviction thresholds, set so that the node is always past one: it reports
# MemoryPressure, is tainted and evicts pods as a node that ran short of memory would, while
# nothing is actually filled (safe on a shared machine).
PRESSURE = {"evictionHard": {"memory.available": "99%"}, "evictionPressureTransitionPeriod": "1s"}


@dataclass
class NodePressure:
    """The node under memory pressure until the kubelet has evicted a running job's pod.

    The kubelet is restarted with `PRESSURE`, then, once a pod is evicted, with its own
    settings again. A job whose pod was evicted while its container ran must end FAILED
    (Evicted); the others as their image says (pods made meanwhile wait for the node's taint to
    go, then run).
    """

    name: str = "node memory pressure (pods evicted)"

    def inject(self, run: Run) -> None:
        # A job that runs until it is evicted (the batch's others may all end meanwhile).
        victim = Case("evict-0", "sleeper", {"timeout": 150}, "FAILED", "Evicted", exit_code=None)
        run.cases.append(victim)
        run.submit([victim])
        run.wait_for("evict-0 running", lambda: run.job_in("RUNNING", names=("evict-0",)))
        try:  # the kubelet gets its own settings back however the pressure went
            testbed_cluster.restart("kubelet", kubelet=PRESSURE)
            run.say(f"node under memory pressure: {run.states()}")
            run.wait_for("a pod evicted", lambda: _evictions(run), timeout=120)
        finally:
            took = testbed_cluster.restart("kubelet")
            run.wait_for("the node without pressure", lambda: _node_unpressed(run), timeout=120)
        run.recovered_marks.append(time.monotonic())
        for job, (ended, uploaded) in sorted(_evictions(run).items()):
            case = next(c for c in run.cases if c.name == job)
            # Its end stands when it was complete before the eviction: uploaded, or a failure
            # by its own exit code; a cancelled job ends CANCELLED whatever killed its pod.
            decided = uploaded or (ended and case.state not in ("SUCCEEDED", "WARNING"))
            if not decided and case.state != "CANCELLED":
                run.expected[job] = Case(job, case.example, case.spec, "FAILED", "Evicted", None)
        run.say(f"pressure over (kubelet ready in {took:.1f}s); evicted: {sorted(run.expected)}")


def _node_unpressed(run: Run) -> bool:
    """The node as the campaign found it: Ready, no MemoryPressure, no pressure taint."""
    for node in run.bx.core.list_node().items:
        conditions = {c.type: c.status for c in node.status.conditions or []}
        taints = {t.key for t in node.spec.taints or []}
        if conditions.get("Ready") != "True" or conditions.get("MemoryPressure") == "True":
            return False
        if "node.kubernetes.io/memory-pressure" in taints:
            return False
    return True


def _evictions(run: Run) -> dict[str, tuple[bool, bool]]:
    """Each evicted job's pod, as the watch saw it before the eviction: (whether the job's
    container had ended, whether the uploader had ended, i.e. reported)."""
    before: dict[str, tuple[bool, bool]] = {}
    evicted: dict[str, tuple[bool, bool]] = {}
    for seen in run.pods.seen():
        job = (seen.obj["metadata"].get("labels") or {}).get(JOB_LABEL)
        if job is None or job in evicted:
            continue
        status = seen.obj.get("status") or {}
        if status.get("reason") == "Evicted":
            evicted[job] = before.get(job, (False, False))
            continue
        ended = {  # the uploader is a native sidecar: an init container
            c.get("name")
            for c in (status.get("initContainerStatuses") or [])
            + (status.get("containerStatuses") or [])
            if "terminated" in (c.get("state") or {})
        }
        was = before.get(job, (False, False))
        before[job] = (was[0] or "job" in ended, was[1] or "stage-out" in ended)
    return evicted


@dataclass
class NoFault:
    """The peer: the same batch with nothing broken (its time is what the faults add to)."""

    name: str = "no fault (the peer)"

    def inject(self, run: Run) -> None:
        run.say("no fault")


def short_faults() -> list[Fault]:
    """Each kind of fault once: the test suite's variant."""
    return [
        OperatorKilled(kills=3),
        ComponentRestarted("kube-apiserver"),
        ComponentRestarted("kubelet"),
        StoreRestarted(),
        PodDeleted(),
        PlanDeleted(),
        NodePressure(),
    ]


def long_faults(kills: int = 50, store_down: float = 60.0) -> list[Fault]:
    """`make chaos`: the peer, then every fault, harder (many kills, a store gone for a minute)."""
    return [
        NoFault(),
        OperatorKilled(kills=kills),
        ComponentRestarted("kube-apiserver"),
        ComponentRestarted("kube-apiserver", down_for=20.0),
        ComponentRestarted("etcd"),
        ComponentRestarted("kubelet"),
        ComponentRestarted("kube-scheduler"),
        ComponentRestarted("kube-controller-manager"),
        StoreRestarted(),
        StoreRestarted(down_for=store_down),
        PodDeleted(),
        PlanDeleted(),
        NodePressure(),
    ]


def _progress(run: Run) -> float:
    states = list(run.states().values())
    return sum(1 for s in states if s in TERMINAL_STATES) + (
        0.5 if any(s != "-" for s in states) else 0
    )


# ------------------------------------------------------------------------------ the report


@dataclass
class Row:
    fault: str
    runs: int = 0
    jobs: int = 0
    violations: list[str] = field(default_factory=list)
    recover: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)  # each batch, submission to all final

    def add(self, run: Run, violations: list[str]) -> None:
        self.runs += 1
        self.jobs += len(run.cases)
        self.violations.extend(violations)
        self.recover.extend(_recovery(run))
        self.seconds.append(run.seconds)

    def line(self) -> str:
        worst = f"{max(self.recover):.1f}" if self.recover else "-"
        batch = f"{max(self.seconds):.0f}" if self.seconds else "-"
        return (
            f"{self.fault:<36} {self.runs:>4} {self.jobs:>5} {len(self.violations):>10}"
            f" {worst:>14} {batch:>8}"
        )


HEADER = (
    f"{'fault':<36} {'runs':>4} {'jobs':>5} {'violations':>10} {'max recover s':>14} {'batch s':>8}"
)


def _recovery(run: Run) -> list[float]:
    """Seconds from each fault's end to the next job state change the watch saw."""
    changes = [s.at for s in run.jobs.seen() if s.type == "MODIFIED"]
    out = []
    for mark in run.recovered_marks:
        after = [at for at in changes if at >= mark]
        if after:
            out.append(min(after) - mark)
    return out


# ------------------------------------------------------------------------------- a batch


@dataclass
class CampaignStore:
    """The campaign's own MinIO, where pods reach it (the bridge's gateway), and its bucket.

    A restart keeps address, data and keys; `server` is always the running process.
    """

    server: s3bed.S3Server
    url: str

    def restart(self, down_for: float = 0.0) -> None:
        self.server = s3bed.restart(self.server, down_for=down_for)

    def operator_env(self) -> dict[str, str]:
        return {
            "BATCHX_STORE": self.url,
            "AWS_ACCESS_KEY_ID": self.server.access_key,
            "AWS_SECRET_ACCESS_KEY": self.server.secret_key,
        }


@contextmanager
def campaign_store(workdir: Path) -> Iterator[CampaignStore]:
    started = s3bed.start(workdir / "s3", host=topology.GATEWAY)
    store = CampaignStore(started, "")
    try:
        bucket = started.make_bucket("bx-campaign")
        store.url = f"s3://{bucket}/store?endpoint={started.endpoint}"
        yield store
    finally:
        s3bed.stop(store.server)


def run_batch(  # noqa: PLR0917 - the campaign's parts, each used
    bx: Bx,
    fault: Fault,
    operator: OperatorProcess,
    store: CampaignStore,
    examples: dict[str, example_images.Example],
    seed: int,
) -> tuple[Run, list[str]]:
    """One batch under `fault` in a new Environment; the run and its violations."""
    cases = mixed_batch()
    env = bx.create_environment(quota=QUOTA, credits=CREDITS)
    bx.wait_ready(env, timeout=90)
    for example in [examples[name] for name in sorted({c.example for c in cases})]:
        image = example.image_object(env)
        bx.create_image(env, image["metadata"]["name"], image["spec"])
        bx.wait_image(env, image["metadata"]["name"], "True", "Accepted", timeout=60)
    with _env_files(store, env) as files:
        for case in cases:
            if case.text is not None:
                files.put_bytes(
                    case.spec["input"]["text"].removeprefix("bx://"), case.text.encode()
                )
    pods = Recorder.pods(bx.api, env)
    jobs = Recorder.custom(bx.api, GROUP, VERSION, env, "jobs")
    pods.start()
    jobs.start()
    run = Run(bx, env, operator, store, cases, examples, random.Random(seed), pods, jobs)
    supervisor = _Supervisor(run)
    supervisor.start()
    try:
        held = getattr(fault, "held_back", lambda _cases: [])(cases)
        run.submit([c for c in cases if c not in held])
        run.say(f"submitted {len(cases) - len(held)} jobs; fault: {fault.name} (seed {seed})")
        run.cancel_when_running()  # the first job: the fault then hits all the others
        fault.inject(run)
        jobs_final = run.wait_for("every job final", run.final, timeout=FINISH_TIMEOUT)
        run.seconds = time.monotonic() - run.t0
        run.say(f"all final after {run.seconds:.0f}s: {run.states()}")
        return run, check(run, jobs_final)
    finally:
        supervisor.stop()
        pods.stop()
        jobs.stop()


class _Supervisor(threading.Thread):
    """Restarts the operator when it exits by itself, as its Deployment would (and says so)."""

    def __init__(self, run: Run) -> None:
        super().__init__(name="operator-supervisor", daemon=True)
        self.run_ = run
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(0.5):  # polling a child process: nothing to wait on
            code = self.run_.operator.restart_if_exited()
            if code is not None:
                self.run_.say(f"the operator exited ({code}); restarted, as its Deployment would")

    def stop(self) -> None:
        self._done.set()
        self.join(timeout=10)


@contextmanager
def _env_files(store: CampaignStore, env: str) -> Iterator[Any]:
    keys = {k: v for k, v in store.operator_env().items() if k.startswith("AWS_")}
    previous = {k: os.environ.get(k) for k in keys}
    os.environ.update(keys)
    try:
        opened = open_store(store.url)
    finally:
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
    try:
        yield opened.env(env)
    finally:
        opened.close()


# ------------------------------------------------------------------------------ invariants


def check(run: Run, jobs: list[JSON]) -> list[str]:
    """Every invariant of the campaign, as a list of violations (empty: all hold)."""
    by_name = {j["metadata"]["name"]: j for j in jobs}
    return [
        *_wrong_ends(run, by_name),
        *_pods_per_job(run, by_name),
        *_credits(run, by_name),
        *_outputs(run, by_name),
        *_orphans(run, by_name),
        *_tracebacks(run),
        *[f"the operator exited by itself with code {c}" for c in run.operator.exits],
        *_cluster_as_found(run),
    ]


def _cluster_as_found(run: Run) -> list[str]:
    """The fault left the test bed as it found it: the node Ready without pressure, the
    kubelet on its own settings (a fault that overrides them restores them)."""
    out = []
    try:
        eventually(lambda: _node_unpressed(run), timeout=120, what="the node Ready, no pressure")
    except AssertionError as err:
        out.append(f"the node is not as the campaign found it: {err}")
    config = paths.state_dir() / "kubelet.yaml"
    settings = json.loads(config.read_text()) if config.exists() else {}
    changed = {k: settings.get(k) for k, v in PRESSURE.items() if settings.get(k) == v}
    if changed:
        out.append(f"the kubelet still runs with the fault's settings {changed}")
    return out


def _wrong_ends(run: Run, by_name: dict[str, JSON]) -> list[str]:
    out = []
    for case in run.cases:
        want_case = run.expected.get(case.name, case)
        status = by_name[case.name].get("status") or {}
        got: JSON = {"state": status.get("state")}
        want: JSON = {"state": want_case.state}
        if want_case.exit_code is not None:
            got["exitCode"], want["exitCode"] = status.get("exitCode"), want_case.exit_code
        if want_case.reason is not None:
            got["reason"] = (condition(by_name[case.name], "Succeeded") or {}).get("reason")
            want["reason"] = want_case.reason
        if got != want:
            out.append(
                f"{case.name}: ended {got}, wanted {want}: {status.get('message')}"
                f"{_runner_logs(run, case.name)}{_same_address(run, case.name)}"
            )
    return out


def _same_address(run: Run, job: str) -> str:
    """Other pods that had the job's pod's address (a network fault shows here)."""
    ips: dict[str, set[str]] = {}
    for seen in run.pods.seen():
        ip = (seen.obj.get("status") or {}).get("podIP")
        if ip:
            ips.setdefault(ip, set()).add(seen.name)
    mine = {ip for ip, names in ips.items() if f"bx-{job}" in names}
    shared = {ip: sorted(names) for ip, names in ips.items() if ip in mine and len(names) > 1}
    return f"\n    address {sorted(mine)}; shared: {shared}"


def _runner_logs(run: Run, job: str) -> str:
    """The runner containers' last lines, for a violation's message."""
    lines = []
    for container in ("stage-in", "stage-out"):
        try:
            text = run.bx.core.read_namespaced_pod_log(f"bx-{job}", run.env, container=container)
        except ApiException as exc:
            text = f"<{exc.status}>"
        tail = " | ".join(str(text).strip().splitlines()[-60:])
        lines.append(f"\n    {container}: {tail}")
    return "".join(lines)


def _pods_per_job(run: Run, by_name: dict[str, JSON]) -> list[str]:
    uids = run.pods.uids_by_label(JOB_LABEL)
    names = run.pods.names_by_uid()
    return [
        f"{job}: {len(us)} pods ({sorted(names[u] for u in us)})"
        for job, us in uids.items()
        if job in by_name and len(us) > 1
    ]


def _credits(run: Run, by_name: dict[str, JSON]) -> list[str]:
    out = []
    charged = {n: float(j["status"]["credits"]["charged"]) for n, j in by_name.items()}
    for name, job in by_name.items():
        if job["status"].get("startedAt") and charged[name] <= 0:
            out.append(f"{name}: its container ran, yet it was charged {charged[name]}")
        if charged[name] > float(job["status"]["credits"]["reserved"]):
            out.append(f"{name}: charged {charged[name]}, more than it reserved")

    def settled() -> JSON | None:
        credits: JSON = run.bx.environment(run.env)["status"]["credits"]
        spent_ok = abs(float(credits["spent"]) - sum(charged.values())) < 1e-6
        return credits if spent_ok and float(credits["reserved"]) == 0 else None

    try:
        eventually(settled, timeout=60, what="the environment's credits settled")
    except AssertionError:
        credits = run.bx.environment(run.env)["status"]["credits"]
        out.append(
            f"credits {credits} vs the jobs' charges {charged} (sum {sum(charged.values())})"
        )
    records = run.bx.core.list_namespaced_config_map(run.env, label_selector=LEDGER_RECORDS).items
    recorded = sorted((m.data["job"], float(m.data["charged"])) for m in records)
    wanted = sorted((n, c) for n, c in charged.items() if c > 0)
    if recorded != wanted:
        out.append(f"ledger records {recorded}, charges {wanted}")
    return out


def _outputs(run: Run, by_name: dict[str, JSON]) -> list[str]:
    out = []
    with _env_files(run.store, run.env) as files:
        for case in run.cases:
            status = by_name[case.name]["status"]
            if case.text is None or status.get("state") != "SUCCEEDED":
                continue  # a wrong end is reported once, by _wrong_ends
            output = status.get("output") or {}
            path = str(output.get("counts", "")).removeprefix("bx://")
            try:
                counts = files.read_bytes(path)
            except Exception as err:  # any failure to read is a violation, with its words
                out.append(f"{case.name}: output {path!r} unreadable: {err}")
                continue
            words = case.text.split()
            wanted = sorted((str(words.count(w)), w) for w in set(words))
            got = sorted(tuple(line.split()) for line in counts.decode().splitlines())
            if got != wanted or output.get("words") != len(words):
                out.append(f"{case.name}: output {got} / {output.get('words')}, wanted {wanted}")
    return out


def _orphans(run: Run, by_name: dict[str, JSON]) -> list[str]:
    out = []
    uids = {j["metadata"]["uid"] for j in by_name.values()}

    def owned(meta: client.V1ObjectMeta) -> bool:
        return any(o.uid in uids for o in meta.owner_references or [])

    def settled() -> list[str] | None:
        found = []
        for pod in run.bx.core.list_namespaced_pod(run.env).items:
            if not owned(pod.metadata):
                found.append(f"pod {pod.metadata.name} owned by no job")
            elif (
                pod.status.phase in ("Pending", "Running")
                and pod.metadata.deletion_timestamp is None
            ):
                found.append(f"pod {pod.metadata.name} {pod.status.phase} for a finished job")
        for cm in run.bx.core.list_namespaced_config_map(run.env).items:
            if (cm.metadata.labels or {}).get(JOB_LABEL) and not owned(cm.metadata):
                found.append(f"configmap {cm.metadata.name} owned by no job")
        return found or None

    try:
        # Pods of finished jobs stop within their grace period; wait for that, not longer.
        eventually(lambda: not settled(), timeout=60, what="no orphans")
    except AssertionError:
        out.extend(settled() or [])
    return out


def _tracebacks(run: Run) -> list[str]:
    try:
        text = run.operator.log.read_text(errors="replace")
    except OSError:
        return []
    count = text.count("Traceback (most recent call last)")
    return [f"the operator logged {count} traceback(s) (log: {run.operator.log})"] if count else []
