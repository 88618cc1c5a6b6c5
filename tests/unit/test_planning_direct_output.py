"""The direct path: no stage-out container, output.json comes back as the kubelet's message."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from batchx.models import Job, JobState, JobStatus
from batchx.planning.direct_output import MAX_DIRECT_BYTES, output_document, uses_direct_output
from batchx.planning.job_pod import JobRef, PodPolicy, plan_pod
from batchx.planning.pod_status import StatusInputs, plan_status
from batchx.settings import Settings
from tests.job_builders import (
    FILE_INPUT_SCHEMA,
    POD_POLICY,
    T0,
    PodBuilder,
    candidate,
    make_bx_job,
    request_for,
    seconds,
)

JSON = dict[str, Any]
REF = JobRef("count", "lab", "uid-1", generation=1)
COUNT_OUTPUT = {
    "type": "object",
    "properties": {"count": {"type": "integer"}, "note": {"type": "string"}},
    "required": ["count"],
}
DIRECT_IMAGE = candidate(
    name="tutorial/count",
    schema={"input": {"type": "object"}, "output": COUNT_OUTPUT},
    warningCodes={"3": "some records were skipped"},
    errorCodes={"2": "bad input"},
)
# Files in, no file out: stage-in stays, stage-out goes.
FILES_IN_IMAGE = candidate(
    name="tutorial/count", schema={"input": FILE_INPUT_SCHEMA, "output": COUNT_OUTPUT}
)
END = T0 + seconds(5)


def direct_job() -> Job:
    return make_bx_job("tutorial/count:1.0.0").input(label="ada").timeout(600).model()


def pod_of(policy: PodPolicy = POD_POLICY, *, files: bool = False) -> JSON:
    if files:
        job = make_bx_job("tutorial/count:1.0.0").input(reads="bx://r.fq").model()
        return plan_pod(REF, request_for(job, FILES_IN_IMAGE, name="count"), policy)
    return plan_pod(REF, request_for(direct_job(), DIRECT_IMAGE, name="count"), policy)


def runners(pod: JSON) -> list[str]:
    return [c["name"] for c in pod["spec"].get("initContainers") or []]


# ------------------------------------------------------------------------------- the Pod


def test_a_job_with_no_file_in_or_out_has_no_runner_and_no_secret() -> None:
    pod = pod_of()
    assert runners(pod) == []
    (job,) = pod["spec"]["containers"]
    assert job["terminationMessagePath"] == "/batchx/output/output.json"
    assert job["terminationMessagePolicy"] == "File"
    # The emptyDir stays: the image may write scratch files next to output.json.
    assert {"name": "output", "mountPath": "/batchx/output"} in job["volumeMounts"]
    assert [v["name"] for v in pod["spec"]["volumes"]] == ["input", "output"]
    assert "envFrom" not in json.dumps(pod)
    assert "secret" not in json.dumps(pod).lower()


def test_a_job_with_input_files_and_no_output_file_keeps_only_stage_in() -> None:
    pod = pod_of(files=True)
    assert runners(pod) == ["stage-in"]
    assert pod["spec"]["containers"][0]["terminationMessagePath"] == "/batchx/output/output.json"
    assert "plan" in [v["name"] for v in pod["spec"]["volumes"]]


@pytest.mark.parametrize(
    "policy",
    [
        dataclasses.replace(POD_POLICY, direct_output=False),
        dataclasses.replace(POD_POLICY, direct_output_except=frozenset({"lab@tutorial/count"})),
    ],
    ids=["directOutput false", "image in directOutputExcept"],
)
def test_the_direct_path_can_be_turned_off_globally_or_per_image(policy: PodPolicy) -> None:
    pod = pod_of(policy)
    assert runners(pod) == ["stage-out"]
    assert pod["spec"]["containers"][0]["terminationMessagePolicy"] == "FallbackToLogsOnError"
    assert "terminationMessagePath" not in pod["spec"]["containers"][0]


def test_an_output_schema_with_a_file_always_gets_stage_out() -> None:
    assert not uses_direct_output(
        lists_files=True, coordinates="lab@a:1.0.0", enabled=True, except_images=()
    )
    assert uses_direct_output(
        lists_files=False, coordinates="lab@a:1.0.0", enabled=True, except_images=("lab@b",)
    )


def test_settings_read_the_direct_output_switches(tmp_path: Path) -> None:
    assert Settings.load({}).direct_output is True
    env = {"BATCHX_DIRECT_OUTPUT": "false", "BATCHX_DIRECT_OUTPUT_EXCEPT": "lab@a, lab@b"}
    settings = Settings.load(env)
    assert settings.direct_output is False
    assert settings.direct_output_except == ("lab@a", "lab@b")
    config = tmp_path / "config.yaml"
    config.write_text("directOutputExcept: [lab@c]\n")
    assert Settings.load({"BATCHX_CONFIG": str(config)}).direct_output_except == ("lab@c",)


# ---------------------------------------------------------------------------- the status


def status_of(pod: PodBuilder) -> JobStatus:
    job = direct_job()
    req = request_for(job, DIRECT_IMAGE, name="count")
    inputs = StatusInputs(
        resources=req.resources,
        rate=req.rate,
        manifest=req.manifest,
        image=req.image,
        now=END + seconds(1),
        reserved=req.reservation,
    )
    return plan_status(job, REF, pod.build(), inputs)


def direct_pod() -> PodBuilder:
    return PodBuilder(pod_of()).started(T0)


def big(size: int) -> str:
    """An output.json of exactly `size` bytes (valid JSON)."""
    head = '{"count": 1, "note": "'
    return head + "x" * (size - len(head) - 2) + '"}'


@pytest.mark.parametrize(
    ("case", "observed", "expected"),
    [
        (
            "succeeded",
            direct_pod().ended(0, end=END, message='{"count": 3}').finished(),
            (JobState.SUCCEEDED, "Succeeded", 0, "the job succeeded", {"count": 3}),
        ),
        (
            "4095 bytes still fit",
            direct_pod().ended(0, end=END, message=big(MAX_DIRECT_BYTES - 1)).finished(),
            (JobState.SUCCEEDED, "Succeeded", 0, "the job succeeded", json.loads(big(4095))),
        ),
        (
            "warning code with its output",
            direct_pod().ended(3, end=END, message='{"count": 1}').finished("Failed"),
            (
                JobState.WARNING,
                "CompletedWithWarning",
                3,
                "some records were skipped",
                {"count": 1},
            ),
        ),
        (
            "listed error code",
            direct_pod().ended(2, end=END).finished("Failed"),
            (JobState.FAILED, "ExitCode", 2, "bad input", None),
        ),
        (
            "unlisted error code: no output shown as if it were the logs",
            direct_pod().ended(7, end=END, message='{"count": 1}').finished("Failed"),
            (JobState.FAILED, "ExitCode", 7, "exited with code 7", None),
        ),
        (
            "oom",
            direct_pod().ended(137, end=END, reason="OOMKilled").finished("Failed"),
            (
                JobState.OUT_OF_MEMORY,
                "OOMKilled",
                137,
                "the job exceeded its memory of 64 MB (spec.memory) and was killed",
                None,
            ),
        ),
        (
            "no output.json, the schema needs one",
            direct_pod().ended(0, end=END).finished(),
            (
                JobState.INVALID_OUTPUT,
                "InvalidOutput",
                0,
                "the output does not match the image's output schema: $.count: is required but "
                "missing",
                {},
            ),
        ),
        (
            "output.json not JSON",
            direct_pod().ended(0, end=END, message="count=3\n").finished(),
            (
                JobState.INVALID_OUTPUT,
                "InvalidOutput",
                0,
                "/batchx/output/output.json is not JSON: Expecting value: line 1 column 1 (char 0)",
                None,
            ),
        ),
        (
            "timeout",
            direct_pod().finished("Failed", reason="DeadlineExceeded"),
            (
                JobState.FAILED,
                "Timeout",
                None,
                "the job ran past its timeout of 600 s (spec.timeout) and was stopped",
                None,
            ),
        ),
    ],
)
def test_direct_state_table(
    case: str, observed: PodBuilder, expected: tuple[JobState, str, int | None, str, JSON | None]
) -> None:
    status = status_of(observed)
    condition = status.conditions[-1]
    assert (status.state, condition.reason, status.exit_code, status.message, status.output) == (
        expected
    ), case


def test_an_output_of_4096_bytes_or_more_is_invalid_and_says_how_to_avoid_it() -> None:
    status = status_of(direct_pod().ended(0, end=END, message=big(MAX_DIRECT_BYTES)).finished())
    assert (status.state, status.conditions[-1].reason) == (
        JobState.INVALID_OUTPUT,
        "InvalidOutput",
    )
    assert status.message is not None
    assert "4096 bytes or more" in status.message
    assert "directOutputExcept" in status.message
    assert "directOutput: false" in status.message
    assert status.output is None


def test_a_direct_job_is_charged_like_any_other() -> None:
    status = status_of(direct_pod().ended(0, end=END, message='{"count": 3}').finished())
    assert status.started_at == T0
    assert status.finished_at == END
    assert status.credits is not None
    assert status.credits.charged > 0


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        ("", {}),
        ("  \n", {}),
        ('{"a": 1}\n', {"a": 1}),
        ("[1]", "/batchx/output/output.json must hold a JSON object, got list"),
    ],
)
def test_output_document(message: str, expected: JSON | str) -> None:
    assert output_document(message) == expected
