"""Standard conditions (kstatus): Reconciling while working, Stalled when stuck, Ready when good.

What kstatus itself concludes from these conditions is checked on real objects with the real
library (tests/integration/test_health.py); these tests pin the planners' decisions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batchx.models import Condition, ConditionStatus, JobState, JobStatus
from batchx.planning.environment import (
    EnvironmentObject,
    NamespaceVerdict,
    is_new,
    plan_status,
    readiness,
    setting_up_status,
)
from batchx.planning.image import ImageObject, plan_images
from batchx.planning.kstatus import (
    Progress,
    Standing,
    job_standing,
    stale_job_conditions,
    standard_conditions,
    with_job_conditions,
)
from batchx.planning.manifest import check_manifest
from tests.builders import ImageBuilder, make_environment, make_image

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(minutes=5)


def summary(conditions: list[Condition]) -> list[tuple[str, str, str]]:
    return [(c.type, c.status.value, c.reason) for c in conditions]


def succeeded(status: str, reason: str, message: str = "") -> Condition:
    return Condition(
        type="Succeeded",
        status=ConditionStatus(status),
        reason=reason,
        message=message,
        last_transition_time=NOW,
    )


@pytest.mark.parametrize(
    ("state", "cond", "progress"),
    [
        (None, None, Progress.RECONCILING),
        (JobState.SUBMITTED, succeeded("Unknown", "Submitted"), Progress.RECONCILING),
        (JobState.QUEUED, succeeded("Unknown", "QuotaExceeded"), Progress.RECONCILING),
        (JobState.STARTING, succeeded("Unknown", "Admitted"), Progress.RECONCILING),
        (JobState.RUNNING, succeeded("Unknown", "Running"), Progress.RECONCILING),
        (JobState.CANCELLING, succeeded("Unknown", "Cancelling"), Progress.RECONCILING),
        (JobState.SUCCEEDED, succeeded("True", "Succeeded"), Progress.CURRENT),
        (JobState.WARNING, succeeded("True", "Warning"), Progress.CURRENT),
        (JobState.FAILED, succeeded("False", "ExitCode"), Progress.STALLED),
        (JobState.FAILED, succeeded("False", "InvalidInput"), Progress.STALLED),
        (JobState.OUT_OF_MEMORY, succeeded("False", "OOMKilled"), Progress.STALLED),
        (JobState.INVALID_OUTPUT, succeeded("False", "InvalidOutput"), Progress.STALLED),
        (JobState.CANCELLED, succeeded("False", "Cancelled"), Progress.STALLED),
    ],
)
def test_job_progress_follows_its_state(
    state: JobState | None, cond: Condition | None, progress: Progress
) -> None:
    standing = job_standing(JobStatus(state=state, conditions=[cond] if cond else []))
    assert standing.progress is progress
    assert standing.reason == (cond.reason if cond else "Submitted")


def test_failed_job_is_stalled_with_the_reason_and_message_of_succeeded() -> None:
    status = JobStatus(
        state=JobState.FAILED,
        message="the reference genome is not indexed",
        conditions=[succeeded("False", "ExitCode", "exit code 2: the reference genome")],
    )
    written = with_job_conditions(status, generation=3, now=LATER)
    assert summary(written.conditions) == [
        ("Ready", "False", "ExitCode"),
        ("Stalled", "True", "ExitCode"),
        ("Succeeded", "False", "ExitCode"),
    ]
    assert written.conditions[1].message == "FAILED: exit code 2: the reference genome"
    assert written.observed_generation == 3
    assert {c.observed_generation for c in written.conditions[:2]} == {3}


def test_job_moving_on_drops_reconciling_and_keeps_succeeded_last() -> None:
    queued = with_job_conditions(
        JobStatus(state=JobState.QUEUED, conditions=[succeeded("Unknown", "QuotaExceeded")]),
        generation=1,
        now=NOW,
    )
    assert summary(queued.conditions) == [
        ("Ready", "False", "QuotaExceeded"),
        ("Reconciling", "True", "QuotaExceeded"),
        ("Succeeded", "Unknown", "QuotaExceeded"),
    ]
    # What a planner does next: set Succeeded on the conditions it read (set_condition appends).
    done = JobStatus(
        state=JobState.SUCCEEDED,
        conditions=[*queued.conditions[:2], succeeded("True", "Succeeded")],
    )
    written = with_job_conditions(done, generation=1, now=LATER)
    assert summary(written.conditions) == [
        ("Ready", "True", "Succeeded"),
        ("Succeeded", "True", "Succeeded"),
    ]
    assert written.conditions[0].last_transition_time == LATER


def test_planning_twice_gives_the_same_conditions_and_times() -> None:
    status = JobStatus(state=JobState.RUNNING, conditions=[succeeded("Unknown", "Running")])
    once = with_job_conditions(status, generation=1, now=NOW)
    twice = with_job_conditions(once, generation=1, now=LATER)
    assert twice.to_json() == once.to_json()


def test_a_finished_job_still_marked_reconciling_is_stale() -> None:
    running = with_job_conditions(
        JobStatus(state=JobState.RUNNING, conditions=[succeeded("Unknown", "Running")]),
        generation=1,
        now=NOW,
    )
    # What an operator that does not know these conditions writes at the end: Succeeded only.
    failed = JobStatus(
        state=JobState.FAILED,
        conditions=[*running.conditions[:2], succeeded("False", "ExitCode")],
    )
    assert stale_job_conditions(failed, generation=1, now=LATER)
    healed = with_job_conditions(failed, generation=1, now=LATER)
    assert not stale_job_conditions(healed, generation=1, now=LATER)


def test_standard_conditions_keep_other_conditions_in_order() -> None:
    others = [
        Condition(type="A", status="True", reason="X", last_transition_time=NOW),
        Condition(type="B", status="True", reason="Y", last_transition_time=NOW),
    ]
    out = standard_conditions(
        others, Standing(Progress.CURRENT, "Done", "done"), generation=1, now=NOW
    )
    assert [c.type for c in out] == ["Ready", "A", "B"]


@pytest.mark.parametrize(
    ("verdict", "expected"),
    [
        (NamespaceVerdict.OURS, [("Ready", "True", "Reconciled")]),
        (
            NamespaceVerdict.FOREIGN,
            [("Ready", "False", "NamespaceConflict"), ("Stalled", "True", "NamespaceConflict")],
        ),
        (
            NamespaceVerdict.TERMINATING,
            [
                ("Ready", "False", "NamespaceTerminating"),
                ("Reconciling", "True", "NamespaceTerminating"),
            ],
        ),
    ],
)
def test_environment_conditions(
    verdict: NamespaceVerdict, expected: list[tuple[str, str, str]]
) -> None:
    env = EnvironmentObject.from_body(make_environment("lab").generation(4).build())
    status = plan_status(env, readiness(env, verdict), None, None, NOW)
    assert summary(status.conditions) == expected
    assert status.observed_generation == 4


def test_new_environment_is_reconciling_until_its_first_status() -> None:
    env = EnvironmentObject.from_body(make_environment("lab").build())
    assert is_new(env)
    status = setting_up_status(env, NOW)
    assert summary(status.conditions) == [
        ("Ready", "False", "SettingUp"),
        ("Reconciling", "True", "SettingUp"),
    ]
    assert status.observed_generation == 1
    body = make_environment("lab").status(**status.to_json()).build()
    set_up = EnvironmentObject.from_body(body)
    assert not is_new(set_up)
    done = plan_status(set_up, readiness(set_up, NamespaceVerdict.OURS), None, None, LATER)
    assert summary(done.conditions) == [("Ready", "True", "Reconciled")]


@pytest.mark.parametrize(
    ("builder", "env_exists", "expected"),
    [
        (make_image("x"), True, [("Ready", "True", "Accepted")]),
        (
            make_image("x").without("name"),
            True,
            [("Ready", "False", "InvalidManifest"), ("Stalled", "True", "InvalidManifest")],
        ),
        (
            make_image("x").tagged(),
            True,
            [("Ready", "False", "ImageNotPinned"), ("Stalled", "True", "ImageNotPinned")],
        ),
        (
            make_image("x"),
            False,
            [
                ("Ready", "False", "EnvironmentNotFound"),
                ("Reconciling", "True", "EnvironmentNotFound"),
            ],
        ),
    ],
)
def test_image_conditions(
    builder: ImageBuilder, env_exists: bool, expected: list[tuple[str, str, str]]
) -> None:
    [plan] = plan_images(
        [ImageObject.from_body(builder.build())],
        check=check_manifest,
        allow_tags=False,
        env_exists=env_exists,
        now=NOW,
    )
    assert plan.status is not None
    assert summary(plan.status.conditions) == expected


def test_duplicate_coordinates_are_stalled() -> None:
    older = make_image("a").created("2026-01-01T00:00:00Z")
    newer = make_image("b").created("2026-01-01T00:00:05Z")
    plans = plan_images(
        [ImageObject.from_body(b.build()) for b in (older, newer)],
        check=check_manifest,
        allow_tags=False,
        env_exists=True,
        now=NOW,
    )
    status = {p.image.name: p.status for p in plans}["b"]
    assert status is not None
    assert summary(status.conditions) == [
        ("Ready", "False", "DuplicateCoordinates"),
        ("Stalled", "True", "DuplicateCoordinates"),
    ]
