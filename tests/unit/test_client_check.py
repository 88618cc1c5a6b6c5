"""The client's check before submitting is the operator's admission verdict: same refusals, same
messages (so `bx run` exits 2 with exactly what the Job's condition would have said)."""

from __future__ import annotations

from typing import Any

import pytest

from batchx.client.errors import (
    ImageNotFound,
    InvalidImageReference,
    InvalidInput,
    InvalidResources,
    Refused,
)
from batchx.client.results import check_job
from batchx.models import Job
from batchx.planning.job_admission import Refusal, Request, image_candidate, judge_job
from tests.job_builders import FILE_INPUT_SCHEMA, POLICY, candidate

IMAGES = [
    candidate(
        "1.0.0",
        name="tools/align",
        schema={"input": FILE_INPUT_SCHEMA, "output": {"type": "object"}},
        runtime={"minMem": 64},
    ),
    candidate("1.0.0", name="tools/gpu", runtime={"minMem": 64, "gpus": "supported"}),
]
GOOD = {"image": "tools/align", "input": {"reads": "bx://r.fq"}}


def _operator_says(spec: dict[str, Any]) -> Refusal:
    verdict = judge_job(
        Job.model_validate({"spec": spec}),
        name="j",
        namespace="lab",
        created="",
        images=IMAGES,
        policy=POLICY,
    )
    assert isinstance(verdict, Refusal)
    return verdict


@pytest.mark.parametrize(
    ("spec", "error"),
    [
        ({**GOOD, "input": {"reads": 5}}, InvalidInput),
        ({**GOOD, "input": {}}, InvalidInput),
        ({**GOOD, "image": "tools/nope"}, ImageNotFound),
        ({**GOOD, "image": "tools/align:^2.0"}, ImageNotFound),
        ({**GOOD, "image": "Tools/Align:1"}, InvalidImageReference),
        ({**GOOD, "memory": 32}, InvalidResources),
        ({**GOOD, "gpus": 1}, InvalidResources),
    ],
)
def test_refusals_carry_the_operators_reason_path_and_message(
    spec: dict[str, Any], error: type[Refused]
) -> None:
    expected = _operator_says(spec)
    with pytest.raises(error) as caught:
        check_job(spec, namespace="lab", images=IMAGES)
    assert (caught.value.reason, str(caught.value)) == (expected.reason.value, str(expected))


def test_memory_below_min_mem_names_both_numbers() -> None:
    with pytest.raises(InvalidResources) as caught:
        check_job({**GOOD, "memory": 32}, namespace="lab", images=IMAGES)
    assert str(caught.value) == (
        "$.spec.memory: memory 32 MB is below the image's minimum runtime.minMem 64 MB"
    )


def test_values_the_crd_refuses_are_refused_with_their_field_path() -> None:
    with pytest.raises(InvalidResources) as caught:
        check_job({**GOOD, "vcpus": 0}, namespace="lab", images=IMAGES)
    assert caught.value.path == "$.spec.vcpus"


def test_a_valid_job_gets_the_request_the_operator_would_admit() -> None:
    request = check_job({**GOOD, "image": "tools/gpu", "gpus": 1}, namespace="lab", images=IMAGES)
    assert isinstance(request, Request)
    assert (request.image.coordinates, request.resources.gpus) == ("lab@tools/gpu:1.0.0", 1)


def test_a_timeout_beyond_the_operators_configured_maximum_is_left_to_the_operator() -> None:
    # The client cannot know the operator's maxTimeout; only the CRD's bound is checked here.
    assert isinstance(
        check_job({**GOOD, "timeout": POLICY.max_timeout + 1}, namespace="lab", images=IMAGES),
        Request,
    )


def test_image_candidate_reads_only_accepted_images() -> None:
    body: dict[str, Any] = {
        "metadata": {"name": "a", "namespace": "lab"},
        "spec": {"image": "r/a@sha256:" + "0" * 64, "manifest": {}, "public": True},
        "status": {
            "coordinates": "lab@tools/a:1.0.0",
            "conditions": [{"type": "Ready", "status": "True", "reason": "Accepted"}],
        },
    }
    accepted = image_candidate(body)
    assert accepted is not None
    assert (str(accepted.coordinates), accepted.public) == ("lab@tools/a:1.0.0", True)
    refused = {
        **body,
        "status": {**body["status"], "conditions": [{"type": "Ready", "status": "False"}]},
    }
    deleting = {**body, "metadata": {**body["metadata"], "deletionTimestamp": "2026-01-01T00:00Z"}}
    assert image_candidate(refused) is None
    assert image_candidate(deleting) is None
