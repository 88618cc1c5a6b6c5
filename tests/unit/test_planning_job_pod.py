"""The job Pod (staging, resources, isolation) and the status planner's state table."""

from __future__ import annotations

import json
import re
from datetime import datetime
from decimal import Decimal
from typing import Any

import pytest

from batchx.models import (
    Condition,
    ConditionStatus,
    Job,
    JobCredits,
    JobState,
    JobStatus,
    JobTransfer,
)
from batchx.planning.job_admission import Request
from batchx.planning.job_pod import (
    INLINE_INPUT_BYTES,
    JobRef,
    inline_input,
    lists_files,
    owned_by,
    plan_config_map,
    plan_manifest,
    plan_pod,
    pod_name,
    staging_plan,
)
from batchx.planning.job_protocol import Outcome, RunnerReport, StagingPlan, parse_report
from batchx.planning.pod_status import StatusInputs, plan_status
from tests.builders import DIGEST
from tests.job_builders import (
    FILE_INPUT_SCHEMA,
    FILE_OUTPUT_SCHEMA,
    POD_POLICY,
    T0,
    PodBuilder,
    candidate,
    make_bx_job,
    request_for,
    seconds,
    status_inputs,
)

JSON = dict[str, Any]
REF = JobRef("align", "lab", "uid-1", generation=1)
RUNNER = "batchx.local/runner@" + DIGEST
USER_IMAGE = f"registry.example/tutorial/hello-1.0.0@{DIGEST}"
IMAGE = candidate(
    schema={"input": FILE_INPUT_SCHEMA, "output": FILE_OUTPUT_SCHEMA},
    runtime={"minMem": 512, "gpus": "supported"},
    warningCodes={"3": "some reads were skipped"},
    errorCodes={"2": "bad reference"},
)
PLAIN_IMAGE = candidate(schema={"input": {"type": "object"}, "output": FILE_OUTPUT_SCHEMA})


def request(job: Job) -> Request:
    return request_for(job, IMAGE, name="align")


def cpu_job() -> Job:
    return (
        make_bx_job("tutorial/hello:1.0.0").vcpus(2).timeout(600).input(reads="bx://r.fq").model()
    )


# ------------------------------------------------------------------------------------ naming


@pytest.mark.parametrize(
    ("job", "pattern"),
    [
        ("align", r"bx-align"),
        ("a" * 60, "bx-" + "a" * 60),
        ("a" * 61, "bx-" + "a" * 49 + "-[0-9a-f]{10}"),
        ("x-" + "b" * 48 + "." + "c" * 20, "bx-x-" + "b" * 47 + "-[0-9a-f]{10}"),
    ],
)
def test_pod_names_are_deterministic_dns_labels(job: str, pattern: str) -> None:
    name = pod_name(job)
    assert re.fullmatch(pattern, name)
    assert name == pod_name(job)
    assert len(name) <= 63


def test_long_names_differ_by_their_hash() -> None:
    assert pod_name("a" * 70 + "x") != pod_name("a" * 70 + "y")


# ---------------------------------------------------------------------------------- the pod


def runner(role: str, mount: JSON) -> JSON:
    container: JSON = {
        "name": role,
        "image": RUNNER,
        "args": [role, "/var/run/batchx/plan/plan.json"],
        "envFrom": [{"secretRef": {"name": "batchx-store"}}],
        "env": [{"name": "BX_JOB", "value": "align"}, {"name": "BATCHX_ENV", "value": "lab"}],
        "resources": {
            "requests": {"cpu": "0", "memory": "0"},
            "limits": {"cpu": "1", "memory": "512Mi"},
        },
        "volumeMounts": [
            mount,
            {"name": "plan", "mountPath": "/var/run/batchx/plan", "readOnly": True},
        ],
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
        "terminationMessagePolicy": "File",
    }
    if role == "stage-out":
        container["restartPolicy"] = "Always"
        nudge = ["python3", "-m", "batchx.runner", "nudge"]
        container["lifecycle"] = {"preStop": {"exec": {"command": nudge}}}
    return container


EXPECTED_POD: JSON = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "bx-align",
        "namespace": "lab",
        "labels": {
            "app.kubernetes.io/managed-by": "batchx-operator",
            "batchx.io/environment": "lab",
            "batchx.io/job": "align",
        },
        "annotations": {"batchx.io/image": "lab@tutorial/hello:1.0.0"},
        "ownerReferences": [
            {
                "apiVersion": "batchx.io/v1alpha1",
                "kind": "Job",
                "name": "align",
                "uid": "uid-1",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    },
    "spec": {
        "restartPolicy": "Never",
        # The operator stops the pod at the timeout (600 s) with a 1 s grace; the kubelet's own
        # deadline kill, with the 600 s upload allowance as grace, is the later backstop.
        "activeDeadlineSeconds": 630,
        "terminationGracePeriodSeconds": 600,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": {
            "seccompProfile": {"type": "RuntimeDefault"},
            "runAsNonRoot": True,
            "runAsUser": 1000,
            "runAsGroup": 1000,
            "fsGroup": 1000,
        },
        "initContainers": [
            runner("stage-in", {"name": "input", "mountPath": "/batchx/input"}),
            runner(
                "stage-out", {"name": "output", "mountPath": "/batchx/output", "readOnly": True}
            ),
        ],
        "containers": [
            {
                "name": "job",
                "image": USER_IMAGE,
                "env": [
                    {"name": "BX_VCPUS", "value": "2"},
                    {"name": "BX_MEMORY", "value": "512"},
                    {"name": "BX_GPUS", "value": "0"},
                    {"name": "BX_JOB", "value": "align"},
                    {"name": "BATCHX_ENV", "value": "lab"},
                ],
                "resources": {
                    "requests": {"cpu": "2", "memory": "512Mi"},
                    "limits": {"cpu": "2", "memory": "512Mi"},
                },
                "volumeMounts": [
                    {"name": "input", "mountPath": "/batchx/input", "readOnly": True},
                    {"name": "output", "mountPath": "/batchx/output"},
                ],
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "capabilities": {"drop": ["ALL"]},
                },
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }
        ],
        "volumes": [
            {"name": "input", "emptyDir": {}},
            {"name": "output", "emptyDir": {}},
            {"name": "plan", "configMap": {"name": "bx-align-plan"}},
        ],
    },
}


def test_the_pod_of_a_cpu_job() -> None:
    assert plan_pod(REF, request(cpu_job()), POD_POLICY) == EXPECTED_POD


def test_a_gpu_job_gets_gpus_a_toleration_and_its_product() -> None:
    job = make_bx_job("tutorial/hello:1.0.0").gpus(2).gpu_type("T4").input(reads="bx://r")
    pod = plan_pod(REF, request(job.model()), POD_POLICY)
    user = pod["spec"]["containers"][0]
    gpu = {"cpu": "1", "memory": "512Mi", "nvidia.com/gpu": "2"}
    assert user["resources"] == {"requests": gpu, "limits": gpu}
    assert {"name": "BX_GPUS", "value": "2"} in user["env"]
    assert pod["spec"]["tolerations"] == [
        {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
    ]
    assert pod["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "T4"}


def test_the_users_container_never_sees_store_credentials_or_the_plan() -> None:
    pod = plan_pod(REF, request(cpu_job()), POD_POLICY)
    user = pod["spec"]["containers"][0]
    assert "envFrom" not in user
    assert {m["name"] for m in user["volumeMounts"]} == {"input", "output"}
    assert all(
        c["envFrom"] == [{"secretRef": {"name": "batchx-store"}}]
        for c in pod["spec"]["initContainers"]
    )
    assert pod["spec"]["automountServiceAccountToken"] is False


def test_without_a_fixed_uid_the_pod_only_sets_seccomp() -> None:
    policy = POD_POLICY.__class__(runner_image=RUNNER, run_as_user=None)
    pod = plan_pod(REF, request(cpu_job()), policy)
    assert pod["spec"]["securityContext"] == {"seccompProfile": {"type": "RuntimeDefault"}}


def test_the_staging_plan_maps_each_file_once_to_a_local_path() -> None:
    job = make_bx_job("tutorial/hello:1.0.0").input(
        reads="bx://data/r1.fq", more=["bx://data/r1.fq", "bx://refs/"]
    )
    model = job.model()
    req = request(model)
    record = {"v": 1, "job": {"name": "align", "uid": "uid-1"}}
    plan = staging_plan(REF, req, model.spec.input, record)
    assert StagingPlan.from_json(json.loads(plan.dumps())) == plan
    assert plan.to_json() == {
        "version": 1,
        "job": "align",
        "jobUid": "uid-1",
        "environment": "lab",
        "input": model.spec.input,
        "files": [
            {"bx": "bx://data/r1.fq", "local": "/batchx/input/files/data/r1.fq"},
            {"bx": "bx://refs/", "local": "/batchx/input/files/refs/"},
        ],
        "inputFiles": [
            {"pointer": ["reads"], "local": "/batchx/input/files/data/r1.fq"},
            {"pointer": ["more", 0], "local": "/batchx/input/files/data/r1.fq"},
            {"pointer": ["more", 1], "local": "/batchx/input/files/refs/"},
        ],
        "outputSchema": FILE_OUTPUT_SCHEMA,
        "outputFiles": True,
        "outputPrefix": "jobs/align/output/",
        "resultPath": "jobs/align/result.json",
        "timeout": 3600,
        "provenance": record,  # written by the runner with every output file
    }
    config_map = plan_config_map(REF, plan, req.manifest_document)
    assert config_map["metadata"]["name"] == "bx-align-plan"
    assert config_map["immutable"] is True
    assert json.loads(config_map["data"]["plan.json"]) == plan.to_json()
    # stage-in writes input.json; the manifest is what the job's output is judged by.
    assert set(config_map["data"]) == {"plan.json", "manifest.json"}
    assert plan_manifest(config_map) == req.manifest_document != {}


def test_a_job_without_input_files_has_no_stage_in_and_reads_input_json_from_the_plan() -> None:
    model = make_bx_job("tutorial/hello:1.0.0").input(label="ada", n=2).model()
    req = request_for(model, PLAIN_IMAGE, name="align")
    pod = plan_pod(REF, req, POD_POLICY)
    assert [c["name"] for c in pod["spec"]["initContainers"]] == ["stage-out"]
    assert pod["spec"]["volumes"][0] == {
        "name": "input",
        "configMap": {
            "name": "bx-align-plan",
            "items": [{"key": "input.json", "path": "input.json"}],
        },
    }
    assert {"name": "input", "mountPath": "/batchx/input", "readOnly": True} in pod["spec"][
        "containers"
    ][0]["volumeMounts"]
    plan = staging_plan(REF, req, model.spec.input)
    config_map = plan_config_map(REF, plan, {})
    assert json.loads(config_map["data"]["input.json"]) == {"label": "ada", "n": 2}


def test_a_small_input_rides_in_the_pods_annotation_and_a_large_one_in_the_plan() -> None:
    """The kubelet has a Pod's annotations with the Pod: no ConfigMap to fetch first."""
    model = make_bx_job("tutorial/hello:1.0.0").input(label="ada", n=2).model()
    req = request_for(model, PLAIN_IMAGE, name="align")
    plan = staging_plan(REF, req, model.spec.input)
    text = inline_input(plan)
    assert text is not None
    assert json.loads(text) == {"label": "ada", "n": 2}
    pod = plan_pod(REF, req, POD_POLICY, input_text=text)
    assert pod["metadata"]["annotations"]["batchx.io/input"] == text
    field = "metadata.annotations['batchx.io/input']"
    assert pod["spec"]["volumes"][0] == {
        "name": "input",
        "downwardAPI": {"items": [{"path": "input.json", "fieldRef": {"fieldPath": field}}]},
    }
    # The plan keeps input.json too (the manifest, and the fallback for a large input).
    assert json.loads(plan_config_map(REF, plan, {})["data"]["input.json"]) == json.loads(text)
    big = make_bx_job("tutorial/hello:1.0.0").input(label="x" * INLINE_INPUT_BYTES).model()
    big_req = request_for(big, PLAIN_IMAGE, name="align")
    assert inline_input(staging_plan(REF, big_req, big.spec.input)) is None


@pytest.mark.parametrize(
    ("schema", "lists"),
    [
        ({"type": "object", "properties": {"n": {"type": "integer"}}}, False),
        ({}, False),
        (FILE_OUTPUT_SCHEMA, True),
        ({"anyOf": [{"type": "null"}, {"type": "string", "format": "file"}]}, True),
        ({"properties": {"a": {"items": {"format": "file"}}}}, True),
    ],
)
def test_an_output_schema_lists_files_when_format_file_is_anywhere(
    schema: JSON, lists: bool
) -> None:
    assert lists_files(schema) is lists


# --------------------------------------------------------------------------------- reports


@pytest.mark.parametrize(
    "report",
    [
        RunnerReport(Outcome.STAGED),
        RunnerReport(Outcome.UPLOADED, output={"result": "bx://x"}, files=1, bytes=10),
        RunnerReport(Outcome.UPLOADED, result="jobs/a/result.json", digest="sha256:" + "0" * 64),
        RunnerReport(Outcome.INVALID_OUTPUT, message="output.json: not JSON"),
    ],
)
def test_reports_round_trip_through_a_termination_message(report: RunnerReport) -> None:
    assert parse_report(report.to_json()) == report


@pytest.mark.parametrize("text", [None, "", "not json", '{"outcome": "exploded"}', "[]"])
def test_unreadable_reports_are_none(text: str | None) -> None:
    assert parse_report(text) is None


# ---------------------------------------------------------------------------------- status

OK_OUTPUT = {"result": "bx://jobs/align/output/out.txt"}
UPLOADED = RunnerReport(Outcome.UPLOADED, output=OK_OUTPUT, files=1, bytes=3)


def status_of(pod: PodBuilder | None, job: Job | None = None, now: datetime = T0) -> JobStatus:
    job = job or cpu_job()
    req = request(job)
    inputs = status_inputs(req, now)
    return plan_status(job, REF, None if pod is None else pod.build(), inputs)


def pod() -> PodBuilder:
    return PodBuilder.of(REF, request(cpu_job())).started(T0)


END = T0 + seconds(90)
DONE = T0 + seconds(100)


@pytest.mark.parametrize(
    ("case", "observed", "expected"),
    [
        ("pending", pod(), (JobState.STARTING, "Admitted", None, "the pod is starting")),
        (
            "staging",
            pod().staging(),
            (JobState.DOWNLOADING_INPUT, "DownloadingInput", None, "staging input files"),
        ),
        (
            "staged, job container not started",
            pod().staged(),
            (
                JobState.DOWNLOADING_INPUT,
                "DownloadingInput",
                None,
                "input files staged; starting the job",
            ),
        ),
        (
            "running",
            pod().running(),
            (JobState.RUNNING, "Running", None, "the job's container is running"),
        ),
        (
            "uploading",
            pod().job_exited(0, end=END),
            (JobState.UPLOADING_OUTPUT, "UploadingOutput", 0, "uploading output files"),
        ),
        (
            "succeeded",
            pod().job_exited(0, end=END).uploaded(UPLOADED, at=DONE).finished(),
            (JobState.SUCCEEDED, "Succeeded", 0, "the job succeeded"),
        ),
        (
            "warning code",
            pod().job_exited(3, end=END).uploaded(UPLOADED, at=DONE).finished("Failed"),
            (JobState.WARNING, "CompletedWithWarning", 3, "some reads were skipped"),
        ),
        (
            "listed error code",
            pod().job_exited(2, end=END),
            (JobState.FAILED, "ExitCode", 2, "bad reference"),
        ),
        (
            "unlisted error code with a log tail",
            pod().job_exited(7, end=END, message="segfault\n").finished("Failed"),
            (JobState.FAILED, "ExitCode", 7, "exited with code 7: segfault"),
        ),
        (
            "oom",
            pod().job_exited(137, end=END, reason="OOMKilled").finished("Failed"),
            (
                JobState.OUT_OF_MEMORY,
                "OOMKilled",
                137,
                "the job exceeded its memory of 512 MB (spec.memory) and was killed",
            ),
        ),
        (
            "timeout",
            pod().running().finished("Failed", reason="DeadlineExceeded"),
            (
                JobState.FAILED,
                "Timeout",
                None,
                "the job ran past its timeout of 600 s (spec.timeout) and was stopped",
            ),
        ),
        (
            "output violating the schema",
            pod()
            .job_exited(0, end=END)
            .uploaded(RunnerReport(Outcome.UPLOADED, output={"other": 1}), at=DONE)
            .finished(),
            (
                JobState.INVALID_OUTPUT,
                "InvalidOutput",
                0,
                "the output does not match the image's output schema: $.result: is required but "
                "missing",
            ),
        ),
        (
            "unreadable output.json",
            pod()
            .job_exited(0, end=END)
            .uploaded(RunnerReport(Outcome.INVALID_OUTPUT, message="output.json: no JSON"), at=DONE)
            .finished(),
            (JobState.INVALID_OUTPUT, "InvalidOutput", 0, "output.json: no JSON"),
        ),
        (
            "uploader killed before reporting",
            pod().job_exited(0, end=END).uploaded(None, at=DONE).finished(),
            (
                JobState.FAILED,
                "OutputUploadFailed",
                0,
                "output files could not be uploaded: the uploader reported nothing (its container "
                "ended: exit code 0, Completed, 10 s after the job's container)",
            ),
        ),
        (
            "input staging failed",
            pod()
            .staged(
                code=1,
                message=RunnerReport(
                    Outcome.INPUT_FAILED, message="bx://r.fq: not found"
                ).to_json(),
            )
            .finished("Failed"),
            (
                JobState.FAILED,
                "InputStagingFailed",
                None,
                "input files could not be staged: bx://r.fq: not found",
            ),
        ),
        (
            "evicted",
            pod().staging().finished("Failed", reason="Evicted", message="node out of disk"),
            (JobState.FAILED, "Evicted", None, "node out of disk"),
        ),
    ],
)
def test_state_table(
    case: str, observed: PodBuilder, expected: tuple[JobState, str, int | None, str | None]
) -> None:
    status = status_of(observed)
    condition = status.conditions[-1]
    assert (status.state, condition.reason, status.exit_code, status.message) == expected, case


def test_a_succeeded_job_has_output_times_and_its_charge() -> None:
    observed = pod().job_exited(0, start=T0 + seconds(5), end=END).uploaded(UPLOADED, at=DONE)
    status = status_of(observed.finished(), now=DONE + seconds(3))
    # 2 vCPUs + 0.5 GB: 2.25 credits/hour; the job container ran 85 s (staging and upload free).
    assert status == JobStatus(
        state=JobState.SUCCEEDED,
        image=request(cpu_job()).image,
        output=OK_OUTPUT,
        exit_code=0,
        message="the job succeeded",
        credits=JobCredits(reserved=0.375, charged=0.053125),
        transfer=JobTransfer(output_files=1, output_bytes=3),  # the stage-out report's figures
        started_at=T0 + seconds(5),
        finished_at=DONE,
        pod_name="bx-align",
        conditions=[
            Condition(
                type="Succeeded",
                status=ConditionStatus.TRUE,
                reason="Succeeded",
                message="the job succeeded",
                last_transition_time=DONE + seconds(3),
                observed_generation=1,
            )
        ],
        observed_generation=1,
    )
    assert Decimal(str(status.credits.charged)) <= Decimal(str(status.credits.reserved))  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("case", "job", "observed", "expected"),
    [
        (
            "cancel while running",
            make_bx_job("tutorial/hello:1.0.0").vcpus(2).timeout(600).input(reads="bx://r.fq"),
            pod().running(),
            (JobState.CANCELLING, 0.0),
        ),
        (
            "cancelled: the pod's containers were stopped",
            make_bx_job("tutorial/hello:1.0.0").vcpus(2).timeout(600).input(reads="bx://r.fq"),
            pod().job_exited(143, end=T0 + seconds(160)).finished("Failed", "DeadlineExceeded"),
            (JobState.CANCELLED, 0.1),
        ),
        (
            "cancelled before the pod existed",
            make_bx_job("tutorial/hello:1.0.0").input(reads="bx://r.fq"),
            None,
            (JobState.CANCELLED, 0.0),
        ),
    ],
)
def test_cancellation(
    case: str, job: Any, observed: PodBuilder | None, expected: tuple[JobState, float]
) -> None:
    status = status_of(observed, job.cancel().model())
    assert status.credits is not None
    assert (status.state, status.credits.charged) == expected, case


def test_the_transfer_adds_both_reports_and_is_written_only_at_the_end() -> None:
    staged = RunnerReport(Outcome.STAGED, files=2, bytes=1500)
    observed = pod().job_exited(0, end=END).staged(message=staged.to_json())
    assert status_of(observed).transfer is None  # still uploading: nothing written yet
    done = status_of(observed.uploaded(UPLOADED, at=DONE).finished(), now=DONE)
    assert done.transfer == JobTransfer(
        input_files=2, input_bytes=1500, output_files=1, output_bytes=3
    )


def test_a_lost_pod_fails_the_job_and_is_never_replaced() -> None:
    job = make_bx_job("tutorial/hello:1.0.0").vcpus(2).timeout(600).input(reads="bx://r.fq")
    status = status_of(None, job.status(state="RUNNING", podName="bx-align").model())
    assert (status.state, status.message) == (
        JobState.FAILED,
        "pod bx-align was deleted before the job finished",
    )


def test_a_pod_deleted_by_someone_else_while_the_job_runs_fails_it_pod_deleted() -> None:
    """A user, an eviction or a drain: the SIGTERM may make the program exit 0 early."""
    deleted = T0 + seconds(50)
    observed = (
        pod().job_exited(0, end=T0 + seconds(52)).uploaded(UPLOADED, at=DONE).deleted(deleted)
    )
    status = status_of(observed.finished(), now=DONE)
    assert status.credits is not None
    assert (status.state, status.conditions[-1].reason) == (JobState.FAILED, "PodDeleted")
    assert status.credits.charged > 0  # it ran until the deletion stopped it
    assert status_of(pod().running().deleted(deleted), now=deleted).state is JobState.FAILED


def test_a_pod_the_kubelet_evicts_while_the_job_runs_fails_it_evicted() -> None:
    killed = pod().job_exited(137, end=T0 + seconds(30)).uploaded(None, at=T0 + seconds(30))
    status = status_of(killed.evicted(T0 + seconds(30)), now=T0 + seconds(31))
    assert (status.state, status.exit_code) == (JobState.FAILED, 137)
    cond = status.conditions[0]
    assert cond.reason == "Evicted"
    assert "The node was low on resource: memory." in cond.message
    assert "never run again" in cond.message
    assert status.credits is not None
    assert status.credits.charged > 0  # its 30 s ran


def test_an_evicted_pod_whose_job_was_killed_fails_it_evicted_whatever_the_condition_says() -> None:
    """The campaign's node pressure on the direct path (no stage-out): the job's exit 137 came
    with the pod's Evicted reason but no DisruptionTarget time to compare it with."""
    killed = pod().job_exited(137, end=T0 + seconds(30)).uploaded(None, at=T0 + seconds(30))
    evicted = killed.finished("Failed", "Evicted", "The node was low on resource: memory.")
    status = status_of(evicted, now=T0 + seconds(31))
    assert (status.state, status.conditions[0].reason) == (JobState.FAILED, "Evicted")


def test_a_job_killed_by_a_signal_waits_for_its_pod_s_end_to_be_judged() -> None:
    """The kubelet can show the killed container before it marks the pod Evicted."""
    killed = pod().job_exited(137, end=T0 + seconds(30))
    assert status_of(killed, now=T0 + seconds(31)).state is JobState.UPLOADING_OUTPUT
    ended = pod().job_exited(137, end=T0 + seconds(30)).uploaded(None, at=T0 + seconds(30))
    final = status_of(ended.finished("Failed"), now=T0 + seconds(31))
    assert (final.state, final.conditions[0].reason) == (JobState.FAILED, "ExitCode")


def test_a_pod_evicted_between_the_jobs_end_and_its_upload_fails_it_evicted() -> None:
    cut = pod().job_exited(0, end=END).uploaded(None, at=END + seconds(5))
    status = status_of(cut.evicted(END + seconds(5)), now=DONE)
    assert (status.state, status.conditions[0].reason) == (JobState.FAILED, "Evicted")
    assert "ended (exit 0), before its upload" in status.conditions[0].message
    exited = pod().job_exited(2, end=END).uploaded(None, at=END + seconds(5))
    failed = status_of(exited.evicted(END + seconds(5)), now=DONE)  # its own verdict first
    assert (failed.state, failed.conditions[0].reason) == (JobState.FAILED, "ExitCode")


def test_a_pod_evicted_after_the_job_ended_and_uploaded_is_judged_by_its_end() -> None:
    done = pod().job_exited(3, end=END).uploaded(UPLOADED, at=DONE).evicted(DONE + seconds(2))
    assert status_of(done, now=DONE + seconds(3)).state is JobState.WARNING


def test_a_pod_deleted_after_the_job_ended_is_judged_by_its_end() -> None:
    observed = pod().job_exited(0, end=END).uploaded(UPLOADED, at=DONE).deleted(END + seconds(1))
    assert status_of(observed.finished(), now=DONE).state is JobState.SUCCEEDED


def test_an_admitted_job_without_pod_is_starting() -> None:
    assert status_of(None).state is JobState.STARTING


def test_terminal_states_are_final() -> None:
    job = make_bx_job("tutorial/hello:1.0.0").input(reads="bx://r.fq")
    final = job.status(state="SUCCEEDED", exitCode=0).model()
    assert status_of(pod().running(), final) == final.status


def test_the_charge_never_exceeds_the_reservation() -> None:
    late = pod().job_exited(0, end=T0 + seconds(5000)).uploaded(UPLOADED, at=T0 + seconds(5000))
    status = status_of(late.finished())
    assert status.credits == JobCredits(reserved=0.375, charged=0.375)


def test_a_job_running_past_its_deadline_times_out_by_the_clock() -> None:
    # The kubelet has not reported DeadlineExceeded yet (it waits for the kill to finish).
    status = status_of(pod().running(), now=T0 + seconds(600))
    assert (status.state, status.conditions[-1].reason, status.finished_at) == (
        JobState.FAILED,
        "Timeout",
        T0 + seconds(600),
    )
    assert status.credits == JobCredits(reserved=0.375, charged=0.375)
    assert status_of(pod().running(), now=T0 + seconds(599)).state is JobState.RUNNING


def test_a_cancelled_job_is_charged_from_its_recorded_start_after_its_pod_is_gone() -> None:
    job = make_bx_job("tutorial/hello:1.0.0").vcpus(2).timeout(600).input(reads="bx://r.fq")
    cancelling = job.cancel().status(
        state="CANCELLING", podName="bx-align", startedAt="2026-01-01T12:00:00Z"
    )
    status = status_of(None, cancelling.model(), now=T0 + seconds(160))
    assert (status.state, status.started_at, status.finished_at) == (
        JobState.CANCELLED,
        T0,
        T0 + seconds(160),
    )
    assert status.credits == JobCredits(reserved=0.375, charged=0.1)


@pytest.mark.parametrize(
    ("status", "message"),
    [
        (
            {
                "phase": "Pending",
                "conditions": [
                    {
                        "type": "PodScheduled",
                        "status": "False",
                        "reason": "Unschedulable",
                        "message": "0/1 nodes are available: 1 node(s) didn't match selector.",
                    }
                ],
            },
            "the pod cannot be scheduled yet: 0/1 nodes are available: 1 node(s) didn't match "
            "selector. (the job ends FAILED if no node takes it within its timeout of 600 s)",
        ),
        (
            {
                "phase": "Pending",
                "startTime": "2026-01-01T12:00:00Z",
                "initContainerStatuses": [
                    {"name": "stage-in", "state": {"terminated": {"exitCode": 0}}},
                    {"name": "stage-out", "state": {"running": {}}},
                ],
                "containerStatuses": [
                    {
                        "name": "job",
                        "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}},
                    }
                ],
            },
            # Inputs were staged already: the state does not go back to STARTING.
            "input files staged; starting the job: container job is waiting: ErrImagePull not "
            "found",
        ),
        (
            {
                "phase": "Pending",
                "containerStatuses": [
                    {"name": "job", "state": {"waiting": {"reason": "PodInitializing"}}}
                ],
            },
            "the pod is starting",
        ),
    ],
)
def test_a_stuck_start_says_why(status: JSON, message: str) -> None:
    observed = PodBuilder.of(REF, request(cpu_job()))
    observed.body["status"] = status
    body = observed.body
    job = cpu_job()
    req = request(job)
    inputs = StatusInputs(req.resources, req.rate, req.manifest, req.image, T0, req.reservation)
    result = plan_status(job, REF, body, inputs)
    staged = message.startswith("input files staged")
    state = JobState.DOWNLOADING_INPUT if staged else JobState.STARTING
    assert (result.state, result.message) == (state, message)


def test_a_pod_no_node_takes_is_unschedulable_then_failed_at_its_timeout_since_creation() -> None:
    job = make_bx_job("tutorial/hello:1.0.0").gpus(1).gpu_type("A100").timeout(60)
    job.input(reads="bx://r.fq")
    model = job.model()
    req = request(model)
    observed = PodBuilder.of(REF, req)
    observed.body["metadata"]["creationTimestamp"] = "2026-01-01T12:00:00Z"  # T0
    observed.body["status"] = {
        "phase": "Pending",
        "conditions": [
            {
                "type": "PodScheduled",
                "status": "False",
                "reason": "Unschedulable",
                "message": "0/1 nodes are available: 1 node(s) didn't match Pod's node "
                "affinity/selector.",
            }
        ],
    }
    note = "(it needs 1 GPUs on a node labelled nvidia.com/gpu.product=A100, spec.gpuType)"

    def at(now: datetime) -> JobStatus:
        inputs = StatusInputs(
            req.resources, req.rate, req.manifest, req.image, now, req.reservation
        )
        return plan_status(model, REF, observed.body, inputs)

    waiting = at(T0 + seconds(59))
    assert (waiting.state, waiting.conditions[-1].reason) == (JobState.STARTING, "Unschedulable")
    assert note in (waiting.message or "")
    ended = at(T0 + seconds(60))
    assert (ended.state, ended.conditions[-1].reason) == (JobState.FAILED, "Unschedulable")
    assert (ended.message or "").startswith(
        "no node took the job's pod within its timeout of 60 s (spec.timeout) " + note
    )
    assert ended.credits == JobCredits(reserved=float(req.reservation), charged=0)


def test_a_pod_of_a_deleted_job_of_the_same_name_is_not_the_new_jobs() -> None:
    """Names are functions of the job's name: a re-created Job can meet its namesake's pod."""
    old = plan_pod(REF, request(cpu_job()), POD_POLICY)
    assert owned_by(old, REF)
    assert not owned_by(old, JobRef(REF.name, REF.namespace, "uid-2"))
    assert not owned_by(None, REF)
