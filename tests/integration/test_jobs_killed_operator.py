"""Jobs survive a SIGKILLed operator: right end states, one pod each, every charge counted once.

A real `python -m batchx` process runs a batch of real jobs (example images: a static binary, a
busybox script exiting with a warning or an error code, a sleeper that runs into its timeout)
in an Environment whose quota admits two at a time, so that jobs wait QUEUED, start, run and
finish all through the run. The operator is SIGKILLed at random moments (the seed is printed;
BATCHX_KILL_SEED=<seed> replays a schedule) and restarted, sometimes after a pause; some jobs
are created while it is down. A watch records every pod of the namespace from the start, so a
pod that lived only a moment is seen too.

Then: every job ends in the state its image dictates, no job ever had two pods, each job's pod
is `bx-<job>` (deterministic, so a restarted operator finds it instead of making another), and
the Environment's credits add up: `spent` = the sum of the jobs' `charged`, nothing stays
reserved, and `balance` = `granted` - `reserved` - `spent`.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest

from batchx.models import TERMINAL_STATES
from testbed import example_images
from tests.fixtures_jobs import JobBed
from tests.fixtures_operator import OperatorProcess
from tests.helpers import eventually
from tests.integration.bx import GROUP, VERSION, Bx, condition
from tests.watching import Recorder

pytestmark = [pytest.mark.cluster, pytest.mark.s3]

JSON = dict[str, Any]
CREDITS = 50
KILLS = (3, 4)  # how many times the operator is killed: drawn from this range
FINISH_TIMEOUT = 300  # seconds, from the last restart: 8 jobs, 2 at a time, on a busy node


@dataclass(frozen=True)
class Case:
    """One job of the batch and how it must end."""

    name: str
    example: str
    spec: JSON = field(default_factory=dict)
    state: str = "SUCCEEDED"
    reason: str | None = None  # of the Succeeded condition, when it is False
    exit_code: int | None = 0


CASES = [
    Case("hello-0", "hello-static", {"input": {"name": "zero"}}),
    Case("hello-1", "hello-static", {"input": {"name": "one"}}),
    Case("hello-2", "hello-static", {"input": {"name": "two"}}),
    Case("warn-0", "exit-warning", state="WARNING", exit_code=3),
    Case("error-0", "exit-error", state="FAILED", exit_code=2),
    Case("hello-3", "hello-static", {"input": {"name": "three"}}),
    # Created while the operator is down (after the first kill):
    Case("sleep-0", "sleeper", {"timeout": 15}, state="FAILED", reason="Timeout", exit_code=None),
    Case("hello-4", "hello-static", {"input": {"name": "four"}}),
]
LATE = {"sleep-0", "hello-4"}
JOB_LABEL = "batchx.io/job"  # on every pod the operator makes for a job (planning.labels)
LEDGER_RECORDS = "batchx.io/ledger=charge"  # the ledger's record of one charge


@pytest.fixture
def pods_of() -> Iterator[list[Recorder]]:
    """Recorders the test starts; stopped after it whatever happens."""
    recorders: list[Recorder] = []
    yield recorders
    for recorder in recorders:
        recorder.stop()


def _job_body(case: Case, example: example_images.Example) -> JSON:
    spec: JSON = {
        "image": f"{example.manifest['name']}:{example.manifest['version']}",
        "input": {},
        "timeout": 120,
        "cache": False,  # every job runs: a cached one would make no pod and cost nothing
        **case.spec,
    }
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Job",
        "metadata": {"name": case.name},
        "spec": spec,
    }


def _create_jobs(bx: Bx, env: str, cases: list[Case], examples: dict[str, Any]) -> None:
    for case in cases:
        bx.custom.create_namespaced_custom_object(
            GROUP, VERSION, env, "jobs", _job_body(case, examples[case.example])
        )


def _summary(bx: Bx, env: str) -> str:
    """Each job's state, and since when its container ran (for the log of a failure)."""
    out = []
    for job in sorted(bx.jobs(env), key=lambda j: str(j["metadata"]["name"])):
        status = job.get("status") or {}
        started = "+" if status.get("startedAt") else ""
        out.append(f"{job['metadata']['name']}={status.get('state', '-')}{started}")
    return " ".join(out) + "  (+: container started)"


def _milestones(kills: int) -> list[float]:
    """How far the batch must have got before each kill: the first kill lands during
    admission (some job has a state), the others between jobs finishing, evenly spread."""
    return [0.5] + [1 + i * (len(CASES) - 1) / kills for i in range(1, kills)]


def _reached(bx: Bx, env: str, milestone: float) -> bool:
    """Final jobs, plus one half if any job has a state at all (admission has begun)."""
    states = [(j.get("status") or {}).get("state") for j in bx.jobs(env)]
    final = sum(1 for s in states if s in TERMINAL_STATES)
    return final + (0.5 if any(states) else 0.0) >= milestone


def _all_final(bx: Bx, env: str) -> list[JSON] | None:
    jobs = bx.jobs(env)
    final = [j for j in jobs if (j.get("status") or {}).get("state") in TERMINAL_STATES]
    return jobs if len(jobs) == len(CASES) and len(final) == len(jobs) else None


def test_jobs_end_right_with_one_pod_each_under_a_killed_operator(
    operator_process: OperatorProcess,
    job_bed: JobBed,
    bx: Bx,
    pods_of: list[Recorder],
) -> None:
    seed = int(os.environ.get("BATCHX_KILL_SEED") or random.randrange(2**32))
    rng = random.Random(seed)
    kills = rng.randint(*KILLS)
    print(f"kill schedule: seed {seed} (BATCHX_KILL_SEED={seed} replays it), {kills} kills")

    op = operator_process
    op.env.update(job_bed.operator_env())
    examples = {case.example: job_bed.examples[case.example] for case in CASES}
    op.start()
    env = bx.create_environment(quota={"cpu": "2", "memory": "2Gi"}, credits=CREDITS)
    bx.wait_ready(env, timeout=90)
    for example in examples.values():
        image = example.image_object(env)
        bx.create_image(env, image["metadata"]["name"], image["spec"])
        bx.wait_image(env, image["metadata"]["name"], "True", "Accepted", timeout=60)

    pods = Recorder.pods(bx.api, env)
    pods_of.append(pods)
    pods.start()

    t0 = time.monotonic()
    _create_jobs(bx, env, [c for c in CASES if c.name not in LATE], examples)
    for kill, milestone in enumerate(_milestones(kills), start=1):
        # Kills are spread over the whole run: each waits (with a deadline) for the batch to
        # reach a milestone, then for a random moment, not synchronised with anything.
        eventually(
            partial(_reached, bx, env, milestone),
            timeout=FINISH_TIMEOUT,
            interval=0.25,
            what=f"progress {milestone} before kill {kill} (seed {seed})",
        )
        time.sleep(rng.uniform(0.0, 4.0))
        op.kill()
        print(f"t={time.monotonic() - t0:5.1f}s kill {kill}: {_summary(bx, env)}")
        if kill == 1:
            _create_jobs(bx, env, [c for c in CASES if c.name in LATE], examples)
        time.sleep(rng.choice([0.0, 0.0, rng.uniform(0.5, 3.0)]))
        op.start()

    jobs = eventually(
        lambda: _all_final(bx, env),
        timeout=FINISH_TIMEOUT,
        interval=0.5,
        what=f"all {len(CASES)} jobs in a final state (seed {seed})",
    )
    print(f"t={time.monotonic() - t0:5.1f}s all final: {_summary(bx, env)}")
    by_name = {j["metadata"]["name"]: j for j in jobs}

    wrong = _wrong_outcomes(by_name)
    assert not wrong, f"jobs ended in the wrong state (seed {seed}): {wrong}"
    _assert_one_pod_each(pods, by_name, seed)
    credits = _assert_credits_add_up(bx, env, by_name)
    print(f"environment credits {credits}; operator restarts {op.starts - 1}")


def _wrong_outcomes(by_name: dict[str, JSON]) -> dict[str, JSON]:
    wrong = {}
    for case in CASES:
        status = by_name[case.name]["status"]
        got: JSON = {"state": status.get("state")}
        want: JSON = {"state": case.state}
        if case.exit_code is not None:
            got["exitCode"], want["exitCode"] = status.get("exitCode"), case.exit_code
        if case.reason is not None:
            got["reason"] = (condition(by_name[case.name], "Succeeded") or {}).get("reason")
            want["reason"] = case.reason
        if got != want:
            wrong[case.name] = {"got": got, "want": want, "message": status.get("message")}
    return wrong


def _assert_one_pod_each(pods: Recorder, by_name: dict[str, JSON], seed: int) -> None:
    """One pod per job, ever, named after the job (`bx-<job>`) and owned by it."""
    uids = pods.uids_by_label(JOB_LABEL)
    names = pods.names_by_uid()
    latest = pods.latest()
    twice = {job: sorted(names[u] for u in us) for job, us in uids.items() if len(us) > 1}
    assert not twice, f"jobs with more than one pod (seed {seed}): {twice}"
    assert set(uids) == set(by_name), f"pods by {JOB_LABEL} label: {uids}"
    for job_name, job in by_name.items():
        (uid,) = uids[job_name]
        assert names[uid] == f"bx-{job_name}" == job["status"].get("podName")
        owners = latest[uid]["metadata"].get("ownerReferences") or []
        assert [(o["kind"], o["uid"]) for o in owners] == [("Job", job["metadata"]["uid"])]


def _assert_credits_add_up(bx: Bx, env: str, by_name: dict[str, JSON]) -> JSON:
    """Every charge counted once: `spent` is the sum of the jobs' charges, nothing reserved."""
    charged = {n: float(j["status"]["credits"]["charged"]) for n, j in by_name.items()}
    ran = {n for n, j in by_name.items() if j["status"].get("startedAt")}
    free = sorted(n for n in ran if charged[n] <= 0)
    assert not free, f"jobs whose container ran must cost something: {free} of {charged}"
    reserved = {n: float(j["status"]["credits"]["reserved"]) for n, j in by_name.items()}
    over = sorted(n for n in charged if charged[n] > reserved[n])
    assert not over, f"charged more than reserved: {over}: {charged} vs {reserved}"
    print(f"charged: {charged}")

    def settled() -> JSON | None:
        credits: JSON = bx.environment(env)["status"]["credits"]
        spent_ok = float(credits["spent"]) == pytest.approx(sum(charged.values()), abs=1e-6)
        return credits if spent_ok and float(credits["reserved"]) == 0 else None

    credits: JSON = eventually(
        settled, timeout=60, what=f"spent = {sum(charged.values())}, the sum of {charged}"
    )
    # The ledger's records (one ConfigMap per charged job) hold each charge exactly once.
    records = bx.core.list_namespaced_config_map(env, label_selector=LEDGER_RECORDS).items
    recorded = sorted((m.data["job"], float(m.data["charged"])) for m in records)
    assert recorded == sorted(charged.items())
    assert float(credits["granted"]) == CREDITS
    assert float(credits["balance"]) == pytest.approx(
        float(credits["granted"]) - float(credits["reserved"]) - float(credits["spent"]),
        abs=1e-6,
    )
    return credits
