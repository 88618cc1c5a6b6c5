"""CRD types: parsing Kubernetes bodies, defaults, limits and the sparse camelCase dump."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from batchx.models import (
    TERMINAL_STATES,
    Condition,
    ConditionStatus,
    Environment,
    EnvironmentSpec,
    Image,
    JobSpec,
    JobState,
    JobStatus,
    MemberKind,
)

DIGEST = "sha256:" + "a" * 64


def test_job_state_has_the_thirteen_batchx_states() -> None:
    assert [s.value for s in JobState] == [
        "SUBMITTED",
        "QUEUED",
        "STARTING",
        "DOWNLOADING_INPUT",
        "RUNNING",
        "UPLOADING_OUTPUT",
        "SUCCEEDED",
        "WARNING",
        "FAILED",
        "CANCELLING",
        "CANCELLED",
        "OUT_OF_MEMORY",
        "INVALID_OUTPUT",
    ]
    assert {s.value for s in TERMINAL_STATES} == {
        "SUCCEEDED",
        "WARNING",
        "FAILED",
        "CANCELLED",
        "OUT_OF_MEMORY",
        "INVALID_OUTPUT",
    }
    assert JobState.WARNING.is_success
    assert not JobState.FAILED.is_success
    assert not JobState.CANCELLING.is_terminal


def test_job_spec_defaults_and_camel_case_dump() -> None:
    spec = JobSpec.model_validate({"image": "tools/bwa:^1.2", "gpuType": "T4"})
    assert spec.to_json() == {
        "image": "tools/bwa:^1.2",
        "input": {},
        "gpuType": "T4",
        "cache": True,
        "cancel": False,
    }


def test_job_status_round_trip_uses_stable_field_names() -> None:
    body: dict[str, Any] = {
        "state": "SUCCEEDED",
        "image": {"coordinates": "lab@tools/bwa:1.2.3", "container": f"reg/bwa@{DIGEST}"},
        "output": {"bam": "bx://jobs/j1/output/out.bam"},
        "exitCode": 0,
        "message": "done",
        "cached": False,
        "cachedFrom": "j0",
        "credits": {"reserved": 2.5, "charged": 0.25},
        "startedAt": "2024-05-01T10:00:00Z",
        "finishedAt": "2024-05-01T10:05:00Z",
        "podName": "j1-abcde",
        "conditions": [
            {
                "type": "Succeeded",
                "status": "True",
                "reason": "Succeeded",
                "message": "",
                "lastTransitionTime": "2024-05-01T10:05:00Z",
                "observedGeneration": 1,
            }
        ],
        "observedGeneration": 1,
    }
    status = JobStatus.model_validate(body)
    assert status.state is JobState.SUCCEEDED
    assert status.finished_at == datetime(2024, 5, 1, 10, 5, tzinfo=UTC)
    assert status.to_json() == body


def test_environment_spec_members_default_kind_user() -> None:
    env = Environment.model_validate(
        {
            "spec": {
                "quota": {"cpu": "500m", "memory": "64Gi", "gpus": 2, "jobs": 5, "storage": 0},
                "credits": 1000,
                "members": [{"name": "alice", "role": "admin"}],
            }
        }
    )
    assert env.spec.members[0].kind is MemberKind.USER
    assert env.to_json()["spec"]["quota"] == {
        "cpu": "500m",
        "memory": "64Gi",
        "gpus": 2,
        "jobs": 5,
        "storage": 0,
    }


@pytest.mark.parametrize(
    ("model", "body", "where"),
    [
        (JobSpec, {"image": "x", "memory": -1}, "memory"),
        (JobSpec, {"image": "x", "vcpus": 0}, "vcpus"),
        (JobSpec, {"image": "x", "gpus": 65}, "gpus"),
        (JobSpec, {"image": "x", "gpuType": "bad type"}, "gpuType"),
        (JobSpec, {"image": ""}, "image"),
        (JobSpec, {"image": "x", "timeout": 0}, "timeout"),
        (EnvironmentSpec, {"quota": {"cpu": "-1"}}, "quota.cpu"),
        (EnvironmentSpec, {"quota": {"memory": -5}}, "quota.memory"),
        (EnvironmentSpec, {"quota": {"storage": "10 GB"}}, "quota.storage"),
        (EnvironmentSpec, {"credits": -1}, "credits"),
        (EnvironmentSpec, {"members": [{"name": "a", "role": "owner"}]}, "members.0.role"),
        (Condition, {"type": "Ready", "status": "Maybe", "reason": "X"}, "status"),
    ],
)
def test_out_of_range_values_are_refused_with_their_field(
    model: type[Any], body: dict[str, Any], where: str
) -> None:
    with pytest.raises(ValidationError) as info:
        model.model_validate(body)
    locations = {".".join(str(p) for p in err["loc"]) for err in info.value.errors()}
    assert any(loc.startswith(where) for loc in locations), locations


def test_image_spec_keeps_the_manifest_verbatim() -> None:
    manifest = {"name": "tools/bwa", "version": "1.0.0", "x-extra": [1, {"a": None}]}
    image = Image.model_validate({"spec": {"image": f"reg.io/bwa@{DIGEST}", "manifest": manifest}})
    assert image.spec.manifest == manifest
    assert image.spec.public is False


def test_condition_status_values() -> None:
    assert [c.value for c in ConditionStatus] == ["True", "False", "Unknown"]
