"""Job admission: image resolution, resource rules, input validation, prices and FIFO queueing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import pytest

from batchx.models import (
    Condition,
    ConditionStatus,
    EnvironmentQuota,
    JobAdmission,
    JobCredits,
    JobImage,
    JobResources,
    JobState,
    JobStatus,
)
from batchx.planning.job_admission import (
    Admit,
    Capacity,
    ImageCandidate,
    Reason,
    Refusal,
    Request,
    Resources,
    Usage,
    Wait,
    admission_status,
    admit_fifo,
    cancelled_status,
    charge,
    hourly_rate,
    judge_job,
    parse_quantity,
    reservation,
    submitted_status,
)
from batchx.planning.job_checks import (
    missing_files_refusal,
    no_environment_status,
    offered_gpu_types,
    unoffered_gpu_type,
)
from tests.job_builders import (
    FILE_INPUT_SCHEMA,
    POLICY,
    PRICES,
    BxJobBuilder,
    candidate,
    make_bx_job,
    request_for,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
IMAGES = (
    candidate("1.0.0"),
    candidate("1.2.0"),
    candidate("2.0.0"),
    candidate("1.0.0", env="shared", name="tools/bwa", public=True),
    candidate("1.0.0", env="secret", name="tools/private"),
)


def judge(builder: BxJobBuilder, *images: ImageCandidate) -> Request | Refusal:
    return judge_job(
        builder.model(),
        name="job-1",
        namespace="lab",
        created="2026-01-01T00:00:00Z",
        images=images or IMAGES,
        policy=POLICY,
    )


# -------------------------------------------------------------------------------- resolution


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("tutorial/hello", "lab@tutorial/hello:2.0.0"),
        ("tutorial/hello:1.0.0", "lab@tutorial/hello:1.0.0"),
        ("tutorial/hello:^1.0", "lab@tutorial/hello:1.2.0"),
        ("tutorial/hello:~1.0.0", "lab@tutorial/hello:1.0.0"),
        ("tutorial/hello:1.x", "lab@tutorial/hello:1.2.0"),
        ("lab@tutorial/hello:2.0.0", "lab@tutorial/hello:2.0.0"),
        ("shared@tools/bwa:1.0.0", "shared@tools/bwa:1.0.0"),
    ],
)
def test_resolution_pins_coordinates_and_container(ref: str, expected: str) -> None:
    verdict = judge(make_bx_job(ref))
    assert isinstance(verdict, Request)
    name, version = expected.split("@")[1].split(":")
    assert verdict.image == JobImage(
        coordinates=expected,
        container=f"registry.example/{name}-{version}@sha256:" + "ab" * 32,
    )


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        (
            "tutorial/hello:3.0.0",
            Refusal(
                Reason.IMAGE_NOT_FOUND,
                "$.spec.image",
                "no version of lab@tutorial/hello matches '3.0.0' (available: 1.0.0, 1.2.0, 2.0.0)",
            ),
        ),
        (
            "tools/missing",
            Refusal(
                Reason.IMAGE_NOT_FOUND,
                "$.spec.image",
                "no image lab@tools/missing in the cluster (reference 'lab@tools/missing')",
            ),
        ),
        (
            "secret@tools/private:1.0.0",
            Refusal(
                Reason.IMAGE_NOT_FOUND,
                "$.spec.image",
                "image secret@tools/private exists but is not public, so environment lab cannot "
                "run it",
            ),
        ),
        (
            "tutorial/hello:1.0",
            Refusal(
                Reason.INVALID_IMAGE_REFERENCE,
                "$.spec.image",
                "version '1.0' is incomplete: write the full MAJOR.MINOR.PATCH, or a range such "
                "as ^1.0 or 1.0.x",
            ),
        ),
    ],
)
def test_unresolvable_references_are_refused_with_the_reason(ref: str, expected: Refusal) -> None:
    assert judge(make_bx_job(ref)) == expected


def test_a_pinned_resolution_survives_a_newer_version() -> None:
    job = make_bx_job("tutorial/hello").status(
        image={"coordinates": "lab@tutorial/hello:1.0.0", "container": "x"}
    )
    verdict = judge(job)
    assert isinstance(verdict, Request)
    assert verdict.image.coordinates == "lab@tutorial/hello:1.0.0"


def test_a_pinned_image_that_was_deleted_is_not_found() -> None:
    job = make_bx_job("tutorial/hello").status(
        image={"coordinates": "lab@tutorial/hello:1.1.0", "container": "x"}
    )
    assert judge(job) == Refusal(
        Reason.IMAGE_NOT_FOUND,
        "$.spec.image",
        "image lab@tutorial/hello:1.1.0 (resolved from 'tutorial/hello') no longer exists",
    )


# --------------------------------------------------------------------------------- resources


@pytest.mark.parametrize(
    ("builder", "runtime", "expected"),
    [
        (make_bx_job(), {"minMem": 64}, Resources(1, 64, 0, None, 3600)),
        (make_bx_job(), {"minMem": 2048, "defaultVcpus": 4}, Resources(4, 2048, 0, None, 3600)),
        (
            make_bx_job().vcpus(2).memory(4096).timeout(60),
            {"minMem": 2048, "defaultVcpus": 4},
            Resources(2, 4096, 0, None, 60),
        ),
        (make_bx_job(), {"minMem": 64, "gpus": "required"}, Resources(1, 64, 1, None, 3600)),
        (make_bx_job(), {"minMem": 64, "gpus": "supported"}, Resources(1, 64, 0, None, 3600)),
        (
            make_bx_job().gpus(2).gpu_type("T4"),
            {"minMem": 64, "gpus": "supported"},
            Resources(1, 64, 2, "T4", 3600),
        ),
    ],
)
def test_resource_defaults_follow_the_manifest(
    builder: BxJobBuilder, runtime: dict[str, object], expected: Resources
) -> None:
    verdict = judge(builder, candidate("2.0.0", runtime=runtime))
    assert isinstance(verdict, Request)
    assert verdict.resources == expected


@pytest.mark.parametrize(
    ("builder", "runtime", "path", "message"),
    [
        (
            make_bx_job().memory(1000),
            {"minMem": 2048},
            "$.spec.memory",
            "memory 1000 MB is below the image's minimum runtime.minMem 2048 MB",
        ),
        (
            make_bx_job().gpus(1),
            {"minMem": 64},
            "$.spec.gpus",
            "1 GPUs requested, but image tutorial/hello:2.0.0 declares no GPU support (its "
            "manifest has no runtime.gpus)",
        ),
        (
            make_bx_job().gpus(0),
            {"minMem": 64, "gpus": "required"},
            "$.spec.gpus",
            "image tutorial/hello:2.0.0 requires GPUs (runtime.gpus: required); gpus must be at "
            "least 1, got 0",
        ),
        (
            make_bx_job().gpu_type("T4"),
            {"minMem": 64, "gpus": "supported"},
            "$.spec.gpuType",
            "gpuType 'T4' needs at least one GPU, but gpus is 0",
        ),
        (
            make_bx_job().timeout(100_000),
            {"minMem": 64},
            "$.spec.timeout",
            "timeout 100000 s exceeds the operator's maximum 86400 s",
        ),
    ],
)
def test_invalid_resources_are_refused_with_path_and_numbers(
    builder: BxJobBuilder, runtime: dict[str, object], path: str, message: str
) -> None:
    verdict = judge(builder, candidate("2.0.0", runtime=runtime))
    assert verdict == Refusal(Reason.INVALID_RESOURCES, path, message)


# ------------------------------------------------------------------------------------- input


def file_image() -> ImageCandidate:
    return candidate(schema={"input": FILE_INPUT_SCHEMA, "output": {"type": "object"}})


def test_input_files_are_found_in_strings_and_arrays() -> None:
    verdict = judge(
        make_bx_job().input(reads="bx://data/r1.fq", more=["bx://data/r2.fq", "bx://refs/"]),
        file_image(),
    )
    assert isinstance(verdict, Request)
    assert [(f.path, f.target) for f in verdict.files] == [
        ("$.reads", "data/r1.fq"),
        ("$.more[0]", "data/r2.fq"),
        ("$.more[1]", "refs/"),
    ]


def test_missing_input_files_are_refused_with_the_json_path_of_each() -> None:
    verdict = judge(
        make_bx_job().input(reads="bx://data/r1.fq", more=["bx://data/r2.fq", "bx://refs/"]),
        file_image(),
    )
    assert isinstance(verdict, Request)
    refusal = missing_files_refusal("lab", [verdict.files[0], verdict.files[2]])
    assert refusal == Refusal(
        Reason.INPUT_FILE_NOT_FOUND,
        "$.spec.input.reads",
        "file bx://data/r1.fq does not exist in environment lab; "
        "$.spec.input.more[1]: folder bx://refs/ does not exist in environment lab",
    )
    assert str(refusal).startswith("$.spec.input.reads: file bx://data/r1.fq does not exist")


@pytest.mark.parametrize(
    ("values", "path", "in_message"),
    [
        ({}, "$.spec.input.reads", "required"),
        ({"reads": "/etc/passwd"}, "$.spec.input.reads", "bx://"),
        ({"reads": "bx://a", "threads": 0}, "$.spec.input.threads", "minimum"),
    ],
)
def test_invalid_input_is_refused_at_its_path(
    values: dict[str, object], path: str, in_message: str
) -> None:
    verdict = judge(make_bx_job().input(**values), file_image())
    assert isinstance(verdict, Refusal)
    assert (verdict.reason, verdict.path) == (Reason.INVALID_INPUT, path)
    assert in_message in verdict.message


# ------------------------------------------------------------------------------------ prices


@pytest.mark.parametrize(
    ("resources", "reserved"),
    [
        (Resources(1, 1024, 0, None, 3600), Decimal("1.5")),  # 1 + 1 GB x 0.5
        (Resources(2, 512, 1, "T4", 1800), Decimal("6.125")),  # (2 + 0.25 + 10) / 2
        (Resources(1, 64, 0, None, 1), Decimal("0.000287")),  # 1.03125/3600 rounded up
    ],
)
def test_reservation_is_price_times_timeout_rounded_up(
    resources: Resources, reserved: Decimal
) -> None:
    assert reservation(resources, PRICES) == reserved


@pytest.mark.parametrize(
    ("run_seconds", "charged"),
    [(0, Decimal(0)), (360, Decimal("0.15")), (3600, Decimal("1.5")), (99999, Decimal("1.5"))],
)
def test_charge_is_price_times_run_time_capped_at_the_reservation(
    run_seconds: int, charged: Decimal
) -> None:
    rate = hourly_rate(Resources(1, 1024, 0, None, 3600), PRICES)
    assert charge(rate, 3600, run_seconds) == charged


@pytest.mark.parametrize(
    ("text", "value"),
    [
        (16, Decimal(16)),
        ("500m", Decimal("0.5")),
        ("4Gi", Decimal(4 * 2**30)),
        ("1.5G", Decimal("1.5e9")),
        ("1e3", Decimal(1000)),
    ],
)
def test_quantities_parse_exactly(text: int | str, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "1.5.3", "4GB", "-1", "Gi"])
def test_bad_quantities_raise(text: str) -> None:
    with pytest.raises(ValueError, match="quantity"):
        parse_quantity(text)


# ------------------------------------------------------------------------------- FIFO queue


def req(name: str, created: str, vcpus: int = 1, timeout: int = 3600) -> Request:
    job = make_bx_job("tutorial/hello:1.0.0").vcpus(vcpus).memory(1024).timeout(timeout)
    return request_for(job.model(), candidate(), name=name, created=created)


def outcome(decisions: list[Admit | Wait]) -> list[tuple[str, str, str]]:
    return [
        (d.request.name, "admit", "")
        if isinstance(d, Admit)
        else (d.request.name, d.reason.value, d.message)
        for d in decisions
    ]


IDLE = Usage()


def capacity(
    *,
    cpu: str | None = None,
    memory: str | None = None,
    gpus: int | None = None,
    jobs: int | None = None,
    running: Usage = IDLE,
    balance: str = "100",
    running_reserved: str = "0",
) -> Capacity:
    return Capacity.of(
        EnvironmentQuota(cpu=cpu, memory=memory, gpus=gpus, jobs=jobs),
        running=running,
        balance=Decimal(balance),
        running_reserved=Decimal(running_reserved),
    )


def test_everything_that_fits_is_admitted_oldest_first() -> None:
    decisions = admit_fifo([req("b", "t2"), req("a", "t1")], capacity())
    assert outcome(decisions) == [("a", "admit", ""), ("b", "admit", "")]
    assert [d.reservation for d in decisions if isinstance(d, Admit)] == [Decimal("1.5")] * 2


def test_the_first_job_that_does_not_fit_blocks_the_ones_behind_it() -> None:
    running = Usage(cpu=Decimal(1), memory_bytes=2**30, jobs=1)
    decisions = admit_fifo(
        [req("a", "t1", vcpus=2), req("b", "t2", vcpus=1), req("c", "t3", vcpus=1)],
        capacity(cpu="2", running=running),
    )
    blocked = "needs 2 vCPUs, quota.cpu is 2 and running jobs hold 1"
    assert outcome(decisions) == [
        ("a", "QuotaExceeded", blocked),
        ("b", "QuotaExceeded", f"waiting (first in, first out) behind job a, which {blocked}"),
        ("c", "QuotaExceeded", f"waiting (first in, first out) behind job a, which {blocked}"),
    ]


def test_a_job_larger_than_the_whole_quota_waits_without_blocking() -> None:
    decisions = admit_fifo([req("huge", "t1", vcpus=8), req("small", "t2")], capacity(cpu="4"))
    assert outcome(decisions) == [
        (
            "huge",
            "QuotaExceeded",
            "cannot start even with nothing else running: needs 8 vCPUs, quota.cpu is 4 and "
            "running jobs hold 0",
        ),
        ("small", "admit", ""),
    ]


def test_an_operator_missing_a_setting_admits_nothing_and_says_which() -> None:
    unavailable = "the operator cannot run jobs: its configuration lacks runnerImage"
    room = replace(capacity(), unavailable=unavailable)
    decisions = admit_fifo([req("b", "t2"), req("a", "t1")], room)
    assert outcome(decisions) == [
        ("a", "OperatorNotConfigured", unavailable),
        ("b", "OperatorNotConfigured", unavailable),
    ]
    assert all(isinstance(d, Wait) and not d.blocking for d in decisions)
    job = make_bx_job("tutorial/hello:1.0.0").model()
    status = admission_status(job, decisions[0], generation=1, now=NOW)
    assert status.state is JobState.QUEUED
    assert status.credits is not None
    assert status.credits.reserved == 0


def test_credits_are_taken_by_each_admitted_job_in_turn() -> None:
    decisions = admit_fifo(
        [req("a", "t1"), req("b", "t2"), req("c", "t3")],
        capacity(balance="3", running_reserved="1"),
    )
    assert outcome(decisions) == [
        ("a", "admit", ""),
        ("b", "admit", ""),
        (
            "c",
            "InsufficientCredits",
            "needs 1.5 credits reserved (3600 s at 1.5 credits/hour) and the balance is 0",
        ),
    ]


def test_a_reservation_beyond_any_balance_waits_for_a_top_up_without_blocking() -> None:
    decisions = admit_fifo(
        [req("long", "t1", timeout=36000), req("short", "t2", timeout=60)],
        capacity(balance="10", running_reserved="2"),
    )
    assert outcome(decisions) == [
        (
            "long",
            "InsufficientCredits",
            "cannot start even with nothing else running: needs 15 credits reserved (36000 s at "
            "1.5 credits/hour) and the balance is 12",
        ),
        ("short", "admit", ""),
    ]


def test_a_jobs_quota_of_zero_pauses_the_environment() -> None:
    decisions = admit_fifo([req("a", "t1")], capacity(jobs=0))
    assert outcome(decisions) == [
        (
            "a",
            "QuotaExceeded",
            "cannot start even with nothing else running: quota.jobs is 0 and 0 jobs are running",
        )
    ]


def test_memory_and_gpu_quota_report_their_numbers() -> None:
    running = Usage(memory_bytes=3 * 2**30, gpus=0, jobs=1)
    decisions = admit_fifo([req("a", "t1")], capacity(memory="4Gi", gpus=0, running=running))
    assert outcome(decisions) == [("a", "admit", "")]
    decisions = admit_fifo([req("a", "t1")], capacity(memory="3584Mi", running=running))
    assert outcome(decisions) == [
        (
            "a",
            "QuotaExceeded",
            "needs 1024 MB of memory, quota.memory is 3584 MB and running jobs hold 3072 MB",
        )
    ]


# ------------------------------------------------------------------------------------ status


def test_status_of_a_refusal() -> None:
    refusal = Refusal(Reason.INVALID_RESOURCES, "$.spec.memory", "memory 1 MB is below 64 MB")
    status = admission_status(make_bx_job().model(), refusal, generation=2, now=NOW)
    message = "$.spec.memory: memory 1 MB is below 64 MB"
    assert status == JobStatus(
        state=JobState.FAILED,
        message=message,
        credits=JobCredits(reserved=0, charged=0),
        finished_at=NOW,
        conditions=[
            Condition(
                type="Succeeded",
                status=ConditionStatus.FALSE,
                reason="InvalidResources",
                message=message,
                last_transition_time=NOW,
                observed_generation=2,
            )
        ],
        observed_generation=2,
    )


def test_status_of_a_wait_and_then_an_admission() -> None:
    request = req("a", "t1")
    wait = Wait(request, Reason.QUOTA_EXCEEDED, "needs 1 vCPUs", blocking=True)
    queued = admission_status(make_bx_job().model(), wait, generation=1, now=NOW)
    assert (queued.state, queued.image, queued.credits) == (
        JobState.QUEUED,
        request.image,
        JobCredits(reserved=0, charged=0),
    )
    assert [(c.status, c.reason, c.message) for c in queued.conditions] == [
        (ConditionStatus.UNKNOWN, "QuotaExceeded", "needs 1 vCPUs")
    ]
    later = datetime(2026, 1, 2, tzinfo=UTC)
    job = make_bx_job().status(**queued.to_json()).model()
    admitted = admission_status(job, Admit(request), generation=1, now=later)
    assert admitted == JobStatus(
        state=JobState.STARTING,
        image=request.image,
        # The decision, read back while the job runs instead of judging the job again.
        admission=JobAdmission(
            resources=JobResources(vcpus=1, memory=1024, gpus=0, timeout=3600),
            rate=1.5,
            admitted_at=later,
        ),
        credits=JobCredits(reserved=1.5, charged=0),
        conditions=[
            Condition(
                type="Succeeded",
                status=ConditionStatus.UNKNOWN,
                reason="Admitted",
                message="admitted: 1 vCPUs, 1024 MB, 0 GPUs, timeout 3600 s; 1.5 credits reserved",
                # Still Unknown: the transition time is the one of the first Unknown.
                last_transition_time=NOW,
                observed_generation=1,
            )
        ],
        observed_generation=1,
    )


def test_requests_compare_without_their_compiled_manifest() -> None:
    a = req("a", "t1")
    assert replace(a, manifest=req("b", "t2").manifest) == a


def test_status_of_a_job_cancelled_while_queued() -> None:
    status = cancelled_status(make_bx_job().model(), generation=2, now=NOW)
    message = "cancelled (spec.cancel) before it started"
    assert status == JobStatus(
        state=JobState.CANCELLED,
        message=message,
        credits=JobCredits(reserved=0, charged=0),
        finished_at=NOW,
        conditions=[
            Condition(
                type="Succeeded",
                status=ConditionStatus.FALSE,
                reason="Cancelled",
                message=message,
                last_transition_time=NOW,
                observed_generation=2,
            )
        ],
        observed_generation=2,
    )


def test_a_job_outside_any_environment_waits_submitted_with_the_reason() -> None:
    status = no_environment_status(make_bx_job().model(), "stray", generation=1, now=NOW)
    assert (status.state, status.credits) == (
        JobState.SUBMITTED,
        JobCredits(reserved=0, charged=0),
    )
    assert [(c.status, c.reason) for c in status.conditions] == [
        (ConditionStatus.UNKNOWN, "EnvironmentNotFound")
    ]
    assert status.conditions[0].message.startswith(
        "namespace stray is not the namespace of a ready Environment"
    )


def test_gpu_types_offered_are_the_nodes_labels_and_the_configured_ones() -> None:
    nodes = [
        {"metadata": {"labels": {"nvidia.com/gpu.product": "T4"}}},
        {"metadata": {"labels": {"kubernetes.io/hostname": "cpu-only"}}},
        {"metadata": {}},
    ]
    assert offered_gpu_types(nodes, ["A100"]) == {"T4", "A100"}


def test_a_gpu_type_no_node_offers_is_refused_with_the_types_offered() -> None:
    gpu = candidate(runtime={"minMem": 64, "gpus": "supported"})
    typo = judge(make_bx_job().gpus(1).gpu_type("t4"), gpu)
    assert isinstance(typo, Request)
    assert unoffered_gpu_type(typo, frozenset({"T4", "A100"})) == Refusal(
        Reason.INVALID_RESOURCES,
        "$.spec.gpuType",
        "no node offers gpuType 't4' (nodes labelled nvidia.com/gpu.product=t4); the GPU types "
        "offered are: A100, T4",
    )
    offered = judge(make_bx_job().gpus(1).gpu_type("T4"), gpu)
    assert isinstance(offered, Request)
    assert unoffered_gpu_type(offered, frozenset({"T4"})) is None


def test_a_new_job_is_submitted_before_admission_decides() -> None:
    status = submitted_status(make_bx_job().model(), generation=1, now=NOW)
    assert (status.state, status.observed_generation) == (JobState.SUBMITTED, 1)
    assert [(c.status, c.reason) for c in status.conditions] == [
        (ConditionStatus.UNKNOWN, "Submitted")
    ]
