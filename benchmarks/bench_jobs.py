"""Jobs as BatchX Jobs vs the same container as bare Pods (a script, not a test).

    make cluster-up
    .venv/bin/python benchmarks/bench_jobs.py [--count 20] [--batch 2] [--burst 20]
        [--figures trivial,files] [--trivial-example hello-json]

Goals (issue 14), printed side by side with the bare-Pod peer of the same run:

- **trivial**: the `hello-json` example (one static binary, 1 vCPU, 32 MB, a small output.json
  and no file: the direct path, no runner container) as a Job, p50 and p95 from creation to
  done at most 1.25x those of the bare Pod (``--trivial-example hello-static`` measures the
  same with an output file, through the stage-out runner);
- **files**: the `wordcount` example (one small input file from the store, one output file
  uploaded: stage-in and stage-out) at most 1.6x its bare Pod, whose input file comes from a
  ConfigMap instead;
- **burst**: `--burst` Jobs created at once, Job created -> Pod created p99 under 1 s, and
  then as many bare Pods at once (the peer: creation to final beside the Jobs');
- the operator's RSS (peak, sampled every 50 ms).

What is compared: each example as a Job (the operator admits it, plans its Pod, reads the
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
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.benchbed import (
    GROUP,
    JSON,
    TERMINAL,
    VERSION,
    Bed,
    Operator,
    bed,
    create_environment,
    delete_environment,
    operator_settings,
    percentile,
    say,
    wait,
)
from kubernetes import client
from tests.watching import Recorder, Seen

from testbed import example_images

TEXT = "the cat saw the dog\nthe end\n"
DONE_TIMEOUT = 180.0


# -- objects -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Figure:
    """One comparison: an example as Jobs and as bare Pods, and its goal (Jobs / Pods)."""

    label: str
    example: str
    input: JSON  # the Job's
    # The bare Pod's ConfigMap: input.json as the job container reads it, and its files.
    pod_input: dict[str, str]
    pod_paths: dict[str, str]  # ConfigMap key -> path under /batchx/input
    goal: float

    @property
    def config_map(self) -> str:
        return f"bench-input-{self.label}"


def figures(trivial_example: str) -> dict[str, Figure]:
    return {
        "trivial": Figure(
            "trivial",
            trivial_example,
            {"name": "bench"},
            {"input.json": '{"name":"bench"}'},
            {"input.json": "input.json"},
            1.25,
        ),
        "files": Figure(
            "files",
            "wordcount",
            {"text": "bx://texts/a.txt"},
            {"input.json": '{"text":"/batchx/input/files/texts/a.txt"}', "a.txt": TEXT},
            {"input.json": "input.json", "a.txt": "files/texts/a.txt"},
            1.6,
        ),
    }


def job_body(name: str, image: str, input_document: JSON) -> JSON:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {
            "image": image,
            "input": input_document,
            "vcpus": 1,
            "memory": 32,
            "timeout": 300,
            "cache": False,  # a cached result would be no run at all
        },
    }


def bare_pod_body(name: str, template: JSON, figure: Figure) -> JSON:
    """A Pod of the Job pod's own `job` container, its input from the figure's ConfigMap."""
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
                {
                    "name": "input",
                    "configMap": {
                        "name": figure.config_map,
                        "items": [{"key": k, "path": v} for k, v in figure.pod_paths.items()],
                    },
                },
                {"name": "output", "emptyDir": {}},
            ],
        },
    }


class Bench:
    def __init__(self, api: client.ApiClient, env: str) -> None:
        self.api = api
        self.custom = client.CustomObjectsApi(api)
        self.core = client.CoreV1Api(api)
        self.env = env
        self.jobs = Recorder.custom(api, GROUP, VERSION, env, "jobs")
        self.pods = Recorder.pods(api, env)
        self.created: dict[str, float] = {}
        self.figure: Figure | None = None
        self.image = ""
        self.template: JSON | None = None

    def use(self, figure: Figure, image: str) -> None:
        self.figure, self.image, self.template = figure, image, None

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
        assert self.figure is not None
        for name in names:
            self.created[name] = time.monotonic()
            self.custom.create_namespaced_custom_object(
                GROUP, VERSION, self.env, "jobs", job_body(name, self.image, self.figure.input)
            )

    def submit_pods(self, names: list[str]) -> None:
        assert self.template is not None
        assert self.figure is not None
        for name in names:
            body = bare_pod_body(name, self.template, self.figure)
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


def prepare(api: client.ApiClient, env: str, figure: Figure, store_env: dict[str, str]) -> None:
    """The bare Pods' input ConfigMap, and the Jobs' input file in the store."""
    client.CoreV1Api(api).create_namespaced_config_map(
        env,
        client.V1ConfigMap(
            metadata=client.V1ObjectMeta(name=figure.config_map), data=figure.pod_input
        ),
    )
    if "a.txt" in figure.pod_input:
        os.environ.update({k: v for k, v in store_env.items() if k.startswith("AWS_")})
        from batchx.store import open_store  # noqa: PLC0415 - only this figure needs boto3

        with open_store(store_env["BATCHX_STORE"]) as store:
            store.env(env).put_bytes("texts/a.txt", TEXT.encode())


def warm_up(bench: Bench, label: str) -> bool:
    """One Job (its pod is the bare pods' template), then one bare Pod; not measured."""
    job, pod = f"{label}-warm-job", f"{label}-warm-pod"
    bench.submit_jobs([job])
    bench.wait_all([job], bench.job_done)
    seen = bench.pods.first(lambda s: s.name == f"bx-{job}")
    if seen is None or bench.outcome_jobs([job]):
        say(f"warm-up job failed: {bench.outcome_jobs([job])}")
        return False
    bench.template = seen.obj
    bench.submit_pods([pod])
    bench.wait_all([pod], bench.pod_done)
    return True


def measure(bench: Bench, label: str, count: int, batch: int) -> tuple[list[str], list[str]]:
    """Alternating batches of Jobs and bare Pods; which goes first alternates per round."""
    job_names: list[str] = []
    pod_names: list[str] = []
    rounds = math.ceil(count / batch)
    say(f"{label}: {rounds} rounds of {batch} Jobs and {batch} bare Pods")
    for r in range(rounds):
        size = min(batch, count - r * batch)
        jobs = [f"{label}-job-{r:02d}-{i}" for i in range(size)]
        pods = [f"{label}-pod-{r:02d}-{i}" for i in range(size)]
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


def burst(bench: Bench, size: int, *, pods: bool = False) -> list[str]:
    """`size` Jobs created at once (the node runs two at a time: the rest wait for the CPU), or
    with `pods` the burst's peer: as many bare Pods of the same container."""
    names = [f"burst-{'pod-' if pods else ''}{i:02d}" for i in range(size)]
    say(f"burst: {size} {'bare Pods' if pods else 'Jobs'} at once")
    if pods:
        bench.submit_pods(names)
        bench.wait_all(names, bench.pod_done)
    else:
        bench.submit_jobs(names)
        bench.wait_all(names, bench.job_done)
    return names


def burst_lines(bench: Bench, size: int, jobs: list[str], pods: list[str]) -> list[str]:
    """Job created -> Pod created (the goal), and creation -> final beside the bare Pods'."""
    lines = [p99_line(f"burst of {size}: Job->Pod", to_pod(bench, jobs))]
    job_done = elapsed(bench, jobs, bench.job_done)
    lines.append(p99_line(f"burst of {size}: Job->final", job_done, goal=None))
    if pods:
        pod_done = elapsed(bench, pods, bench.pod_done)
        lines.append(p99_line(f"burst of {size}: Pod->final", pod_done, goal=None))
        lines.append(
            f"{'burst ratio Jobs / Pods':<28} p50 "
            f"{statistics.median(job_done) / statistics.median(pod_done):.2f}x  p99 "
            f"{percentile(job_done, 99) / percentile(pod_done, 99):.2f}x"
        )
    return lines


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


def to_pod(bench: Bench, names: list[str]) -> list[float]:
    """Job created -> its Pod created, as the watch saw the Pod first."""
    return elapsed(bench, names, lambda n: bench.pods.first(lambda s: s.name == f"bx-{n}"))


def print_report(
    bench: Bench, figure: Figure, job_names: list[str], pod_names: list[str]
) -> tuple[float, float]:
    """The figure's totals and breakdown; returns its p50 and p95 ratios."""
    job_done = elapsed(bench, job_names, bench.job_done)
    pod_done = elapsed(bench, pod_names, bench.pod_done)
    say("")
    say(f"== {figure.label}: examples/{figure.example}")
    say(report("Job: created -> final state", job_done))
    say(report("Pod: created -> final phase", pod_done))
    ratio50 = statistics.median(job_done) / statistics.median(pod_done)
    ratio95 = percentile(job_done, 95) / percentile(pod_done, 95)
    verdict = "ok" if max(ratio50, ratio95) <= figure.goal else f"over the {figure.goal}x goal"
    say(f"{'ratio Jobs / Pods':<28} p50 {ratio50:.2f}x  p95 {ratio95:.2f}x  ({verdict})")
    say("  Jobs, from creation:")
    breakdown(bench, job_names, lambda n: f"bx-{n}", jobs=True)
    say("  bare Pods, from creation:")
    breakdown(bench, pod_names, lambda n: n, jobs=False)
    say(p99_line("Job created -> Pod created", to_pod(bench, job_names)))
    return ratio50, ratio95


def p99_line(label: str, times: list[float], goal: float | None = 1.0) -> str:
    p99 = percentile(times, 99)
    verdict = "" if goal is None else f"  ({'ok' if p99 < goal else f'over the {goal:g} s goal'})"
    return (
        f"{label:<28} n={len(times):>2}  p50 {statistics.median(times):6.3f}s  p99 {p99:6.3f}s  "
        f"max {max(times):6.3f}s{verdict}"
    )


@dataclass(frozen=True)
class Plan:
    """What one run measures."""

    figures: list[Figure]
    trivial: Figure  # what the burst runs
    examples: dict[str, example_images.Example]
    count: int
    batch: int
    burst: int

    def image(self, figure: Figure) -> str:
        manifest = self.examples[figure.example].manifest
        return f"{manifest['name']}:{manifest['version']}"


def run(bench: Bench, plan: Plan, store_env: dict[str, str]) -> tuple[list[str], list[str]]:
    """Every figure, then the burst: the summary lines and the runs that did not succeed."""
    failures: list[str] = []
    summary: list[str] = []
    paced: list[str] = []
    templates: dict[str, JSON | None] = {}  # each figure's bare Pod template
    for figure in plan.figures:
        prepare(bench.api, bench.env, figure, store_env)
        bench.use(figure, plan.image(figure))
        if not warm_up(bench, figure.label):
            return summary, [f"{figure.label}: warm-up failed"]
        templates[figure.label] = bench.template
        job_names, pod_names = measure(bench, figure.label, plan.count, plan.batch)
        r50, r95 = print_report(bench, figure, job_names, pod_names)
        summary.append(
            f"{figure.label + ' (' + figure.example + ')':<28} Jobs / Pods p50 {r50:.2f}x "
            f"p95 {r95:.2f}x (goal <= {figure.goal}x)"
        )
        paced += job_names
        failures += bench.outcome_jobs(job_names) + bench.outcome_pods(pod_names)
    if plan.burst:
        bench.use(plan.trivial, plan.image(plan.trivial))
        names = burst(bench, plan.burst)
        failures += bench.outcome_jobs(names)
        # The peer needs the trivial figure's template (its warm-up ran: `--figures trivial`).
        bench.template = templates.get(plan.trivial.label)
        pods = burst(bench, plan.burst, pods=True) if bench.template is not None else []
        failures += bench.outcome_pods(pods)
        summary += burst_lines(bench, plan.burst, names, pods)
    if paced:
        summary.append(p99_line("paced: Job created->Pod", to_pod(bench, paced)))
    return summary, failures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="Jobs, and as many Pods, per figure")
    parser.add_argument("--batch", type=int, default=2, help="created at once per batch")
    parser.add_argument(
        "--burst", type=int, default=20, help="Jobs created at once for the p99 (0: none)"
    )
    parser.add_argument(
        "--figures", default="trivial,files", help="which comparisons: trivial, files"
    )
    parser.add_argument(
        "--trivial-example",
        default="hello-json",
        choices=sorted(example_images.RECIPES),
        help="the trivial job's example (hello-static: the same with an output file)",
    )
    args = parser.parse_args()
    t_start = time.monotonic()
    say("setup: CRDs, MinIO on the gateway, runner and example images, operator")
    with bed("bench-jobs") as where:
        assert where is not None
        return run_all(where, args, t_start)


def run_all(where: Bed, args: argparse.Namespace, t_start: float) -> int:
    api, workdir, store_env = where.api, where.workdir, where.store
    known = figures(args.trivial_example)
    chosen = [known[f] for f in args.figures.split(",") if f]
    env = f"bench-{uuid.uuid4().hex[:6]}"
    operator: Operator | None = None
    bench: Bench | None = None
    try:
        wanted = {f.example for f in chosen} | ({known["trivial"].example} if args.burst else set())
        examples = {name: example_images.build_example(name) for name in sorted(wanted)}
        operator = Operator(operator_settings(store_env, where.runner()), workdir / "operator.log")
        say(f"operator: pid {operator.proc.pid}, log {workdir / 'operator.log'}")
        create_environment(api, env, list(examples.values()))
        bench = Bench(api, env)
        bench.jobs.start()
        bench.pods.start()
        rss_idle = operator.rss_now()
        plan = Plan(chosen, known["trivial"], examples, args.count, args.batch, args.burst)
        summary, failures = run(bench, plan, store_env)
        peak = max(operator.samples, default=0)
        say("")
        say("== summary (issue 14 goals)")
        for line in summary:
            say(line)
        say(
            f"{'operator RSS':<28} idle {rss_idle / 2**20:.0f} MiB, peak {peak / 2**20:.0f} MiB "
            f"({len(operator.samples)} samples)"
        )
        if failures:
            say(f"NOT ALL SUCCEEDED: {failures}")
        say(f"total {time.monotonic() - t_start:.0f}s")
        return 1 if failures else 0
    finally:
        if bench is not None:
            bench.jobs.stop()
            bench.pods.stop()
        delete_environment(api, env, operator)


if __name__ == "__main__":
    sys.exit(main())
