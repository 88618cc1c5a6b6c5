"""Events: which status writes are news, how they are worded, and how they are named.

The counts and order on real jobs under a resync are checked on the test bed
(tests/integration/test_job_events.py); these tests pin the pure decisions.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from batchx.models import (
    Condition,
    ConditionStatus,
    JobCredits,
    JobImage,
    JobState,
    JobStatus,
)
from batchx.planning.events import event_body, event_name, involved, job_event, job_order

NOW = datetime(2026, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def status(
    state: JobState | None, reason: str = "", message: str = "", **more: object
) -> JobStatus:
    conditions = (
        [
            Condition(
                type="Succeeded",
                status=ConditionStatus.UNKNOWN,
                reason=reason,
                message=message,
                last_transition_time=NOW,
            )
        ]
        if reason
        else []
    )
    return JobStatus.model_validate(
        {"state": state, "conditions": conditions, **more}, from_attributes=False
    )


def test_a_write_that_keeps_the_state_is_no_news() -> None:
    queued = status(JobState.QUEUED, "QuotaExceeded", "needs 2 vCPUs, quota.cpu is 1")
    refreshed = status(JobState.QUEUED, "QuotaExceeded", "needs 2 vCPUs, quota.cpu is 1 (now)")
    assert job_event(queued, refreshed) is None
    assert job_event(queued, status(JobState.QUEUED, "InsufficientCredits", "x")) is None


def test_a_stuck_job_tells_a_new_reason_once() -> None:
    admitted = status(JobState.STARTING, "Admitted", "the pod is starting")
    stuck = status(JobState.STARTING, "Unschedulable", "0/1 nodes are available")
    news = job_event(admitted, stuck, stuck=True)
    assert news is not None
    assert (news.type, news.reason) == ("Warning", "Unschedulable")
    assert job_event(stuck, stuck, stuck=True) is None


def test_queued_says_why_with_the_numbers() -> None:
    why = "quota.jobs is 1 and 1 jobs are running"
    news = job_event(
        status(JobState.SUBMITTED, "Pending", "waiting"),
        status(JobState.QUEUED, "QuotaExceeded", why),
    )
    assert news is not None
    assert (news.type, news.reason, news.message) == ("Normal", "QuotaExceeded", f"QUEUED: {why}")


def test_admitted_names_the_resources_reservation_and_image() -> None:
    said = "admitted: 1 vCPUs, 64 MB, 0 GPUs, timeout 60 s; 0.5 credits reserved"
    news = job_event(
        status(JobState.QUEUED, "QuotaExceeded", "behind"),
        status(
            JobState.STARTING,
            "Admitted",
            said,
            image=JobImage(coordinates="lab@tools/wc:1.0.0", container="r@sha256:00"),
        ),
    )
    assert news is not None
    assert news.message == f"STARTING: {said}; image lab@tools/wc:1.0.0"
    assert news.order == job_order(JobState.STARTING)


@pytest.mark.parametrize(
    ("state", "kind"),
    [
        (JobState.SUCCEEDED, "Normal"),
        (JobState.CANCELLED, "Normal"),
        (JobState.WARNING, "Warning"),
        (JobState.FAILED, "Warning"),
        (JobState.OUT_OF_MEMORY, "Warning"),
        (JobState.INVALID_OUTPUT, "Warning"),
    ],
)
def test_the_end_says_run_time_and_charge(state: JobState, kind: str) -> None:
    ended = status(
        state,
        "Done",
        "the job ended",
        exit_code=0,
        started_at=NOW,
        finished_at=NOW + timedelta(seconds=42),
        credits=JobCredits(reserved=1.5, charged=0.25),
    )
    news = job_event(status(JobState.RUNNING, "Running", "running"), ended)
    assert news is not None
    assert news.type == kind
    assert news.message == (
        f"{state.value}: the job ended; exit code 0; ran 42 s; "
        "charged 0.25 credits (1.5 reserved, released)"
    )


def test_a_cached_job_says_where_from_and_costs_nothing() -> None:
    cached = status(
        JobState.SUCCEEDED, "Cached", "served from cache", cached=True, cached_from="wc-1"
    )
    news = job_event(status(JobState.SUBMITTED, "Pending", "waiting"), cached)
    assert news is not None
    assert news.message == "SUCCEEDED: served from cache; cached from job wc-1, no charge"


def test_the_life_of_a_job_is_ordered() -> None:
    life = [
        JobState.SUBMITTED,
        JobState.QUEUED,
        JobState.STARTING,
        JobState.DOWNLOADING_INPUT,
        JobState.RUNNING,
        JobState.UPLOADING_OUTPUT,
        JobState.CANCELLING,
        JobState.SUCCEEDED,
    ]
    orders = [job_order(s) for s in life]
    assert orders == sorted(orders)
    assert len(set(orders)) == len(orders)
    assert job_order(JobState.STARTING) < job_order(JobState.STARTING, after=True)
    assert job_order(JobState.STARTING, after=True) < job_order(JobState.DOWNLOADING_INPUT)


def test_an_event_is_named_after_what_it_says() -> None:
    ref = involved("Job", "wc", "uid-1", "lab")
    same = event_name(ref, "Normal", "Admitted", "STARTING: x", 4)
    assert same == event_name(ref, "Normal", "Admitted", "STARTING: x", 4)
    assert same.startswith("wc.04")
    assert same != event_name(ref, "Normal", "Admitted", "STARTING: y", 4)
    assert same != event_name(
        involved("Job", "wc", "uid-2", "lab"), "Normal", "Admitted", "STARTING: x", 4
    )
    # Names sort like the story: an earlier place sorts first whatever the digest.
    assert event_name(ref, "Normal", "Z", "z", 2) < event_name(ref, "Normal", "A", "a", 10)


def test_a_long_name_still_makes_a_valid_event_name() -> None:
    name = event_name(involved("Job", "a" * 253, "u", "lab"), "Normal", "R", "m")
    assert len(name) <= 253
    assert name.split(".")[-1][:2] == "00"


def test_the_event_body_for_a_namespaced_and_a_cluster_object() -> None:
    job = event_body(
        involved("Job", "wc", "u1", "lab"),
        "Normal",
        "Admitted",
        "m" * 2000,
        now=NOW,
        component="batchx-operator",
        instance="pod-1",
        order=4,
    )
    assert job["metadata"]["namespace"] == "lab"
    assert job["involvedObject"] == {
        "apiVersion": "batchx.io/v1alpha1",
        "kind": "Job",
        "name": "wc",
        "uid": "u1",
        "namespace": "lab",
    }
    assert len(job["message"]) == 1024
    assert (job["count"], job["firstTimestamp"], job["lastTimestamp"]) == (
        1,
        "2026-01-01T12:00:00Z",
        "2026-01-01T12:00:00Z",
    )
    assert job["eventTime"] == "2026-01-01T12:00:00.123456Z"
    env = event_body(
        involved("Environment", "lab", "u2"),
        "Warning",
        "NamespaceConflict",
        "taken",
        now=NOW,
        component="batchx-operator",
        instance="pod-1",
    )
    assert env["metadata"]["namespace"] == "default"
    assert "namespace" not in env["involvedObject"]
