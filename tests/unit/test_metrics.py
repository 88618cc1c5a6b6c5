"""Job metrics: what one state change adds, and the per-state gauge (fixed label values)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import REGISTRY

from batchx import metrics
from batchx.models import (
    Condition,
    ConditionStatus,
    JobAdmission,
    JobCredits,
    JobResources,
    JobState,
    JobStatus,
    JobTransfer,
)
from tests.helpers import metric

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def admitted_after(seconds: float) -> JobAdmission:
    """The admission record of a 1-vCPU job admitted `seconds` after T0 (its creation)."""
    return JobAdmission(
        resources=JobResources(vcpus=1, memory=32, gpus=0, timeout=60),
        rate=1.0,
        admitted_at=T0 + timedelta(seconds=seconds),
    )


def test_admission_and_end_are_counted_once_per_change() -> None:
    env = "unit-metrics"
    admission = admitted_after(7)
    starting = JobStatus(state=JobState.STARTING, admission=admission)
    metrics.job_state_changed(env, JobState.QUEUED, starting, T0)
    metrics.job_state_changed(env, JobState.STARTING, starting, T0)  # no change: not counted
    done = JobStatus(
        state=JobState.SUCCEEDED,
        admission=admission,
        started_at=T0 + timedelta(seconds=10),
        finished_at=T0 + timedelta(seconds=40),
        credits=JobCredits(reserved=1, charged=0.25),
    )
    metrics.job_state_changed(env, JobState.RUNNING, done, T0)
    assert metric("batchx_job_state_changes_total", environment=env, state="STARTING") == 1
    assert metric("batchx_job_state_changes_total", environment=env, state="SUCCEEDED") == 1
    assert metric("batchx_job_admission_seconds_count", environment=env) == 1
    assert metric("batchx_job_admission_seconds_sum", environment=env) == 7
    assert metric("batchx_job_run_seconds_total", environment=env) == 30
    assert metric("batchx_job_credits_charged_total", environment=env) == 0.25
    assert metric("batchx_job_queue_wait_seconds_sum", environment=env) == 7  # it was QUEUED


def test_a_cache_hit_is_counted_and_charges_nothing() -> None:
    env = "unit-metrics-cached"
    served = JobStatus(
        state=JobState.SUCCEEDED,
        cached=True,
        cached_from="first",
        finished_at=T0,
        credits=JobCredits(reserved=0, charged=0),
    )
    metrics.job_state_changed(env, JobState.SUBMITTED, served, T0)
    assert metric("batchx_job_cache_hits_total", environment=env) == 1
    assert metric("batchx_job_credits_charged_total", environment=env) == 0
    assert metric("batchx_job_state_changes_total", environment=env, state="SUCCEEDED") == 1


def test_queue_wait_is_zero_for_a_job_admitted_at_once() -> None:
    env = "unit-metrics-at-once"
    admission = admitted_after(2)
    metrics.job_state_changed(
        env, JobState.SUBMITTED, JobStatus(state=JobState.STARTING, admission=admission), T0
    )
    assert metric("batchx_job_queue_wait_seconds_count", environment=env) == 1
    assert metric("batchx_job_queue_wait_seconds_sum", environment=env) == 0
    assert metric("batchx_job_queue_wait_seconds_bucket", environment=env, le="0.0") == 1
    assert metric("batchx_job_admission_seconds_sum", environment=env) == 2


def test_a_staging_failure_is_counted_by_stage() -> None:
    env = "unit-metrics-staging"
    for reason in ("InputStagingFailed", "OutputUploadFailed", "OutputUploadFailed", "PodFailed"):
        failed = JobStatus(
            state=JobState.FAILED,
            conditions=[
                Condition(
                    type="Succeeded",
                    status=ConditionStatus.FALSE,
                    reason=reason,
                    message="x",
                    last_transition_time=T0,
                )
            ],
        )
        metrics.job_state_changed(env, JobState.RUNNING, failed, T0)
    assert metric("batchx_job_staging_failures_total", environment=env, stage="in") == 1
    assert metric("batchx_job_staging_failures_total", environment=env, stage="out") == 2


def test_file_bytes_are_counted_by_direction_when_a_job_ends() -> None:
    env = "unit-metrics-bytes"
    transfer = JobTransfer(input_files=1, input_bytes=100, output_files=2, output_bytes=30)
    metrics.job_state_changed(
        env, JobState.RUNNING, JobStatus(state=JobState.UPLOADING_OUTPUT, transfer=transfer), T0
    )  # not an end: nothing counted
    for _ in range(2):
        metrics.job_state_changed(
            env,
            JobState.UPLOADING_OUTPUT,
            JobStatus(state=JobState.SUCCEEDED, transfer=transfer),
            T0,
        )
    assert metric("batchx_job_file_bytes_total", environment=env, direction="in") == 200
    assert metric("batchx_job_file_bytes_total", environment=env, direction="out") == 60


def test_jobs_gauge_counts_every_state_and_ignores_unknown_ones() -> None:
    env = "unit-gauge"
    metrics.count_jobs(env, ["QUEUED", "QUEUED", "RUNNING", None, "NOT-A-STATE"])
    assert metric("batchx_jobs", environment=env, state="QUEUED") == 2
    assert metric("batchx_jobs", environment=env, state="RUNNING") == 1
    assert metric("batchx_jobs", environment=env, state="SUBMITTED") == 1
    assert metric("batchx_jobs", environment=env, state="FAILED") == 0
    assert (
        REGISTRY.get_sample_value("batchx_jobs", {"environment": env, "state": "NOT-A-STATE"})
        is None
    )
    metrics.count_jobs(env, ["SUCCEEDED"])
    assert metric("batchx_jobs", environment=env, state="QUEUED") == 0
