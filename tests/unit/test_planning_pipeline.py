"""Pipelines: step matching, a child judged against its parent, and the no-deadlock rule.

The admission cases at the bottom are the ones strict first in, first out deadlocks on: each
shows the order that would admit a job that can never finish, and what the rule admits instead.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal

import pytest

from batchx.domain.coordinates import parse_coordinates
from batchx.models import (
    EnvironmentQuota,
    JobAdmission,
    JobChildren,
    JobCredits,
    JobImage,
    JobResources,
    JobState,
)
from batchx.models import JobStatus as Status
from batchx.planning.job_admission import (
    Admit,
    Capacity,
    Reason,
    Refusal,
    Request,
    Usage,
    Wait,
    admit_fifo,
)
from batchx.planning.job_pod import JobRef, plan_pod, staging_plan
from batchx.planning.job_protocol import STAGE_IN
from batchx.planning.pipeline import (
    Parent,
    by_coordinates,
    children_summary,
    judge_child,
    name_refusal,
    parent_of,
    pipeline_steps,
    staged_files,
    step_allowed,
    step_usage,
)
from tests.job_builders import (
    FILE_INPUT_SCHEMA,
    POD_POLICY,
    PRICES,
    T0,
    candidate,
    make_bx_job,
    request_for,
)

STEPS = (parse_coordinates("lab@examples/wordcount:1.2.0"),)
WORDCOUNT = candidate("1.2.3", name="examples/wordcount", runtime={"minMem": 128})
PIPELINE = candidate(
    "1.0.0",
    name="examples/count-all",
    pipeline={"steps": ["lab@examples/wordcount:1.2.0"]},
)


@pytest.mark.parametrize(
    ("image", "allowed"),
    [
        ("lab@examples/wordcount:1.2.0", True),  # exactly the step
        ("lab@examples/wordcount:1.2.9", True),  # a later patch
        ("lab@examples/wordcount:1.9.0", True),  # a later minor
        ("lab@examples/wordcount:1.1.0", False),  # older than the step
        ("lab@examples/wordcount:2.0.0", False),  # another major
        ("other@examples/wordcount:1.2.0", False),  # another environment's image
        ("lab@examples/wordcounter:1.2.0", False),  # another name
    ],
)
def test_steps_match_by_base_name_and_major_at_least_the_version(image: str, allowed: bool) -> None:
    assert step_allowed(parse_coordinates(image), STEPS) is allowed


def child(image: str = "examples/wordcount:1.2.3", timeout: int = 600) -> Request:
    job = make_bx_job(image).timeout(timeout).model()
    return request_for(job, WORDCOUNT, candidate("2.0.0", name="examples/wordcount"))


def running_parent(**fields: object) -> Parent:
    parent = Parent("count-all", "uid-p", True, STEPS, T0 + timedelta(seconds=3600), "t0")
    return replace(parent, **fields)  # type: ignore[arg-type]


def test_a_child_of_a_step_image_is_allowed_as_it_is() -> None:
    request = child()
    judged = judge_child(request, running_parent(), owner_uid="uid-p", now=T0, prices=PRICES)
    assert judged == request


V1, V2 = "examples/wordcount:^1", "examples/wordcount:2.0.0"
STEP, NOT_RUNNING = Reason.STEP_NOT_ALLOWED, Reason.PARENT_NOT_RUNNING
OWNER = "$.metadata.ownerReferences"


@pytest.mark.parametrize(
    ("parent", "owner", "image", "reason", "path"),
    [
        (running_parent(), "uid-p", V2, STEP, "$.spec.image"),
        (running_parent(steps=None), "uid-p", V1, STEP, "$.spec.image"),
        (running_parent(running=False), "uid-p", V1, NOT_RUNNING, "$.metadata.labels"),
        (None, "uid-p", V1, NOT_RUNNING, "$.metadata.labels"),
        (running_parent(), None, V1, NOT_RUNNING, OWNER),
        (running_parent(), "uid-x", V1, NOT_RUNNING, OWNER),
        (running_parent(deadline=T0), "uid-p", V1, NOT_RUNNING, "$.spec.timeout"),
    ],
)  # fmt: skip
def test_children_the_parent_does_not_allow_are_refused(
    parent: Parent | None, owner: str | None, image: str, reason: Reason, path: str
) -> None:
    judged = judge_child(child(image), parent, owner_uid=owner, now=T0, prices=PRICES)
    assert isinstance(judged, Refusal)
    assert (judged.reason, judged.path) == (reason, path)


def test_the_step_refusal_names_the_steps() -> None:
    judged = judge_child(
        child("examples/wordcount:2.0.0"),
        running_parent(),
        owner_uid="uid-p",
        now=T0,
        prices=PRICES,
    )
    assert isinstance(judged, Refusal)
    assert "lab@examples/wordcount:2.0.0 is not one of the steps" in judged.message
    assert "lab@examples/wordcount:1.2.0" in judged.message


def test_a_child_cannot_outlive_its_parent_deadline() -> None:
    request = child(timeout=3600)
    parent = running_parent(deadline=T0 + timedelta(seconds=120))
    judged = judge_child(request, parent, owner_uid="uid-p", now=T0, prices=PRICES)
    assert isinstance(judged, Request)
    assert judged.resources.timeout == 120
    # Reserved for 120 s, not 3600 s: 1 vCPU + 128 MB at 1.0 + 0.5 / GB per hour.
    assert judged.reservation == Decimal("0.035417")
    assert judged.rate == request.rate


def test_parent_of_reads_the_steps_and_deadline_of_the_parent_job() -> None:
    status = Status(
        state=JobState.RUNNING,
        image=JobImage(coordinates=str(PIPELINE.coordinates), container=PIPELINE.container),
        admission=JobAdmission(
            resources=JobResources(vcpus=1, memory=64, gpus=0, timeout=300),
            rate=1.0,
            admitted_at=T0,
        ),
        started_at=T0 + timedelta(seconds=5),
    )
    parent = parent_of("count-all", "uid-p", "t0", status, by_coordinates([PIPELINE, WORDCOUNT]))
    assert parent == Parent("count-all", "uid-p", True, STEPS, T0 + timedelta(seconds=305), "t0")
    queued = parent_of("p", "u", "t0", Status(state=JobState.QUEUED), by_coordinates([PIPELINE]))
    assert not queued.running
    assert pipeline_steps(str(WORDCOUNT.coordinates), by_coordinates([WORDCOUNT])) is None


def test_step_usage_is_the_largest_step_at_its_defaults() -> None:
    big = candidate("1.0.0", name="examples/merge", runtime={"minMem": 512, "defaultVcpus": 2})
    steps = (*STEPS, parse_coordinates("lab@examples/merge:1.0.0"))
    assert step_usage(steps, [WORDCOUNT, big]) == Usage(Decimal(2), 512 * 2**20, 0, 1)
    assert step_usage(steps, []) is None


# ------------------------------------------------------------------- the no-deadlock rule


def req(name: str, created: str, **fields: object) -> Request:
    request = request_for(make_bx_job().model(), name=name, created=created)
    return replace(request, **fields)  # type: ignore[arg-type]


ONE_STEP = Usage(Decimal(1), 64 * 2**20, 0, 1)


def capacity(jobs: int, running: int = 0, **fields: object) -> Capacity:
    held = Usage(Decimal(running), running * 64 * 2**20, 0, running)
    return Capacity.of(
        EnvironmentQuota(jobs=jobs),
        running=held,
        balance=Decimal(100),
        running_reserved=Decimal(0),
        **fields,  # type: ignore[arg-type]
    )


def admitted(decisions: list[Admit | Wait]) -> list[str]:
    return [d.request.name for d in decisions if isinstance(d, Admit)]


def test_a_child_goes_ahead_of_jobs_submitted_after_its_parent() -> None:
    # Parent P (t1) runs and holds one of two slots. Q, a pipeline submitted at t2, and its
    # child C (t3) wait. Strict FIFO admits Q, which takes the last slot: P waits for C, C
    # waits for a slot, Q waits for a child that can never start. Deadlock.
    later = req("q", "t2", step_need=ONE_STEP)
    kid = req("c", "t3", parent=("t1", "p"))
    strict = admit_fifo([later, replace(kid, parent=None)], capacity(jobs=2, running=1))
    assert admitted(strict) == []  # Q now needs room for its own step: no deadlock even so
    decisions = admit_fifo([later, kid], capacity(jobs=2, running=1, steps_running=ONE_STEP))
    assert admitted(decisions) == ["c"]
    assert [d.request.name for d in decisions] == ["c", "q"]


def test_a_plain_job_submitted_after_the_parent_waits_for_its_child() -> None:
    # Strict FIFO: X (t2) takes the slot the running parent's child (t3) needs; the child waits
    # for X, which is fine only as long as X ends. Children come first all the same.
    decisions = admit_fifo(
        [req("x", "t2"), req("c", "t3", parent=("t1", "p"))], capacity(jobs=2, running=1)
    )
    assert admitted(decisions) == ["c"]
    waiting = next(d for d in decisions if isinstance(d, Wait))
    assert waiting.request.name == "x"
    assert "behind job c" not in waiting.message  # X waits for room, not in line behind C


def test_a_pipeline_needs_room_for_its_largest_step_besides_itself() -> None:
    # quota.jobs 1: strict FIFO admits the pipeline, whose child can then never start (it
    # waits behind itself). The pipeline waits instead, saying why, and blocks nothing.
    decisions = admit_fifo([req("p", "t1", step_need=ONE_STEP), req("x", "t2")], capacity(jobs=1))
    assert admitted(decisions) == ["x"]
    wait = decisions[0]
    assert isinstance(wait, Wait)
    assert wait.reason is Reason.QUOTA_EXCEEDED
    assert not wait.blocking
    assert "a pipeline needs room for itself and its largest step" in wait.message


def test_two_pipelines_are_not_both_admitted_into_room_for_one_child() -> None:
    # quota.jobs 3, nothing running: strict FIFO admits P1 and P2 (and a third), and with both
    # parents holding two slots their children share the last. P1 needs 2 slots (itself and
    # one step); P2 then needs 1 + 1 besides P1: 3 fits. A third pipeline would need 4.
    pipelines = [req(f"p{i}", f"t{i}", step_need=ONE_STEP) for i in (1, 2, 3)]
    decisions = admit_fifo(pipelines, capacity(jobs=3))
    assert admitted(decisions) == ["p1", "p2"]


def test_a_running_pipeline_keeps_room_for_its_step_from_later_pipelines() -> None:
    big_step = Usage(Decimal(1), 64 * 2**20, 0, 1)
    decisions = admit_fifo(
        [req("q", "t2", step_need=big_step)],
        capacity(jobs=2, running=1, steps_running=big_step),
    )
    assert admitted(decisions) == []


def test_a_pipeline_whose_quota_fits_it_and_one_child_runs_to_the_end() -> None:
    # quota.jobs 2: the parent is admitted, then its child (the parent holds the other slot),
    # then, the first child done, the next one.
    first = admit_fifo([req("p", "t1", step_need=ONE_STEP)], capacity(jobs=2))
    assert admitted(first) == ["p"]
    children = [req(f"c{i}", f"t{i + 1}", parent=("t1", "p")) for i in (1, 2)]
    second = admit_fifo(children, capacity(jobs=2, running=1, steps_running=ONE_STEP))
    assert admitted(second) == ["c1"]
    third = admit_fifo(children[1:], capacity(jobs=2, running=1, steps_running=ONE_STEP))
    assert admitted(third) == ["c2"]


# ------------------------------------------------------------------ inputs as references


def pipeline_request(read: list[str]) -> Request:
    image = candidate(
        "1.0.0",
        name="examples/count-all",
        schema={"input": FILE_INPUT_SCHEMA, "output": {"type": "object"}},
        pipeline={
            "steps": ["lab@examples/wordcount:1.2.0"],
            **({"readInputFiles": read} if read else {}),
        },
    )
    job = make_bx_job("examples/count-all").input(
        reads="bx://a/r.txt", more=["bx://a/m1", "bx://a/m2"]
    )
    return request_for(job.model(), image)


REF = JobRef("count-all", "lab", "uid-p", 1)
INPUT = {"reads": "bx://a/r.txt", "more": ["bx://a/m1", "bx://a/m2"]}


@pytest.mark.parametrize(
    ("read", "staged"),
    [
        ([], []),
        (["$.reads"], ["a/r.txt"]),
        (["$.more"], ["a/m1", "a/m2"]),
        (["$.more[*]"], ["a/m1", "a/m2"]),
        (["$.more[1]"], ["a/m2"]),
    ],
)
def test_a_pipeline_stages_only_the_files_it_reads(read: list[str], staged: list[str]) -> None:
    request = pipeline_request(read)
    assert [r.target for r in staged_files(request)] == staged
    assert len(request.files) == 3  # all are still checked and keyed for the cache
    plan = staging_plan(REF, request, INPUT)
    assert [bx for bx, _ in plan.files] == [f"bx://{s}" for s in staged]
    assert plan.input == INPUT  # what is not staged reaches the container as written


def test_a_pipeline_reading_no_file_gets_its_input_as_written_without_stage_in() -> None:
    pod = plan_pod(REF, pipeline_request([]), POD_POLICY)
    assert STAGE_IN not in [c["name"] for c in pod["spec"].get("initContainers", [])]
    input_volume = next(v for v in pod["spec"]["volumes"] if v["name"] == "input")
    assert "configMap" in input_volume


def test_a_plain_job_stages_every_file() -> None:
    job = make_bx_job().input(reads="bx://a/r.txt", more=["bx://a/m1"])
    image = candidate(schema={"input": FILE_INPUT_SCHEMA, "output": {"type": "object"}})
    request = request_for(job.model(), image)
    assert staged_files(request) == request.files


def test_a_pipeline_name_must_fit_its_children_label() -> None:
    assert name_refusal("p" * 63) is None
    refusal = name_refusal("p" * 64)
    assert refusal is not None
    assert (refusal.reason, refusal.path) == (Reason.INVALID_RESOURCES, "$.metadata.name")
    assert "at most 63 characters" in refusal.message


def test_the_children_summary_counts_states_and_credits() -> None:
    done = Status(state=JobState.SUCCEEDED, credits=JobCredits(reserved=0, charged=0.1))
    served = Status(state=JobState.SUCCEEDED, cached=True, credits=JobCredits(charged=0))
    failed = Status(state=JobState.FAILED, credits=JobCredits(charged=0.2))
    running = Status(state=JobState.RUNNING, credits=JobCredits(reserved=1.0))
    summary = children_summary([done, served, failed, running, None])
    assert summary == JobChildren(total=5, active=2, succeeded=2, failed=1, cached=1, credits=0.3)
    assert children_summary([]) == JobChildren()
