"""A Job's status from its Pod: the state table and the charge.

Why a module of its own: the Pod's spec (`batchx.planning.job_pod`) and what the kubelet and
the runner later say about it change for different reasons; this half is what the reconciler
runs on every pod event, a pure function with no I/O.

`plan_status` is a pure function of the Job, its Pod (or its absence) and the runner's report:
see its docstring for the state table. The charge is ``rate x run seconds``, where the run time
is the job container's, from its start (``status.startedAt``) to its end (or to the moment the
job was found cancelled, timed out or lost), rounded up to whole seconds (at least one) and
capped at the timeout (`batchx.planning.job_admission.charge`). Staging is the platform's
overhead and is not charged; since the deadline covers staging too, the charge never exceeds
the reservation.
Because the start is kept in the status, a job whose pod was deleted (cancel) is still charged.

Stopping a pod: a program that runs as PID 1 without a SIGTERM handler ignores SIGTERM, so the
kubelet's kill (deadline, deletion) waits ``terminationGracePeriodSeconds`` (the upload
allowance) before SIGKILL. Hence the planner declares ``Timeout`` by the clock at the deadline
rather than waiting for the kubelet's ``DeadlineExceeded``, and cancellation should delete the
pod with a short ``gracePeriodSeconds`` (the charge does not need the pod: see above).

The Pod itself is made by `batchx.planning.job_pod` (its design: that module's docstring),
read through `batchx.planning.pod_view` (what the kubelet says, reduced); what the runner
reports is `batchx.planning.job_protocol.RunnerReport`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from batchx.domain.manifest import CompiledManifest
from batchx.domain.validation import FileMode
from batchx.models import Job, JobCredits, JobImage, JobState, JobStatus, JobTransfer
from batchx.planning import labels
from batchx.planning.conditions import as_reason
from batchx.planning.direct_output import output_document
from batchx.planning.job_admission import Resources, charge
from batchx.planning.job_pod import JobRef, output_prefix, pod_name
from batchx.planning.job_protocol import (
    JOB_CONTAINER,
    OUTPUT_DIR,
    STAGE_IN,
    Outcome,
    RunnerReport,
    parse_report,
)
from batchx.planning.job_transition import MAX_MESSAGE, job_transition
from batchx.planning.pod_view import (
    Container,
    PodView,
    silent_uploader,
)

__all__ = ["StatusInputs", "plan_status"]

JSON = dict[str, Any]


@dataclass(frozen=True)
class _Verdict:
    state: JobState
    reason: str
    message: str
    exit_code: int | None = None
    output: JSON | None = None


@dataclass(frozen=True)
class StatusInputs:
    """Everything `plan_status` reads besides the Job and its Pod."""

    resources: Resources
    rate: Decimal  # credits per hour, as admission recorded it
    manifest: CompiledManifest
    image: JobImage
    now: datetime
    reserved: Decimal = Decimal(0)
    # The full report fetched from the store when the termination message pointed there.
    stored_report: RunnerReport | None = field(default=None)


def plan_status(
    job: Job, ref: JobRef, pod: Mapping[str, Any] | None, inputs: StatusInputs
) -> JobStatus:
    """The Job's status from its Pod (None: not found) once the job was admitted.

    State table, first match wins:

    ======================================  =================================================
    observed                                state (reason)
    ======================================  =================================================
    job already terminal                    unchanged (terminal states are final)
    ``spec.cancel``, pod finished or none   CANCELLED (Cancelled)
    ``spec.cancel``, pod still running      CANCELLING (Cancelling): the reconciler stops it
    no pod, pod was created before          FAILED (PodLost): never recreated, one pod per job
    no pod yet                              STARTING (Admitted): the reconciler creates it
    never scheduled, timeout since creation FAILED (Unschedulable)
    DeadlineExceeded, or running past it    FAILED (Timeout)
    pod deleted, job container not ended    FAILED (PodDeleted): not by BatchX (cancel and
                                            timeout, which delete it, are judged first)
    pod evicted, job container not ended    FAILED (Evicted): node pressure, the kubelet's
                                            message (its DisruptionTarget condition's time);
                                            also when it ended 0 or a warning code but the
                                            eviction came before the upload report
    stage-in failed                         FAILED (InputStagingFailed)
    job container OOMKilled                 OUT_OF_MEMORY (OOMKilled)
    pod Failed, job container not run       FAILED (pod's reason, e.g. Evicted)
    exit code listed in warningCodes        WARNING (output collected and validated)
    exit code 0                             SUCCEEDED, or INVALID_OUTPUT (InvalidOutput)
    other exit code                         FAILED (ExitCode), errorCodes text as message
    pod not finished, job exited            UPLOADING_OUTPUT
    job container running                   RUNNING
    stage-in running or done                DOWNLOADING_INPUT (never back to STARTING)
    the scheduler says Unschedulable        STARTING (Unschedulable), Warning Event
    otherwise                               STARTING (Admitted)
    ======================================  =================================================

    SUCCEEDED and WARNING need the stage-out report: none (the sidecar was killed before it
    reported) is FAILED (OutputUploadFailed). The output is validated against the output schema
    here, after upload, with ``bx://`` paths (FileMode.BX).

    Cancelling: the reconciler deletes the running pod with a short grace period; CANCELLED
    follows when the pod is gone, charged from ``status.startedAt`` to that moment.
    Timeout: declared at ``pod start + timeout`` by the clock (``now``); the kubelet's deadline
    kill is the backstop when the operator is down.
    `podName` is written only after the pod was created: a status that names a pod that does not
    exist means it was lost, and a job never gets a second pod.
    """
    previous = job.status or JobStatus()
    if previous.state is not None and previous.state.is_terminal:
        return previous
    view = None if pod is None else PodView.of(pod)
    verdict = _own_outputs(_judge(job, view, previous, inputs), ref, inputs)
    terminal = verdict.state.is_terminal
    started = (view.job.started_at if view is not None else None) or previous.started_at
    finished = None
    charged = Decimal(0)
    if terminal:
        # A pod still running when the job ends (timeout by the clock) ends now.
        ended_pod = view is not None and (view.finished or view.job.terminated)
        finished = (view.last_finish() if view is not None and ended_pod else None) or inputs.now
        if started is not None:
            # The run time is the job container's: from its start to its end, or to now when
            # it was stopped (cancel, timeout) or lost before it reported an end.
            ended = (view.job.finished_at if view is not None else None) or inputs.now
            # API times have whole-second resolution: a container that ran at all ran for at
            # least a second (a sub-second job would otherwise show start == end, and be free).
            seconds = max(1, math.ceil((ended - started).total_seconds()))
            charged = charge(inputs.rate, inputs.resources.timeout, seconds)
            if inputs.reserved > 0:  # never beyond what was held (float round trips aside)
                charged = min(charged, inputs.reserved)
    return job_transition(
        previous,
        verdict.state,
        reason=verdict.reason,
        condition_message=verdict.message,
        generation=ref.generation,
        now=inputs.now,
        image=inputs.image,
        output=verdict.output,
        exit_code=verdict.exit_code,
        message=verdict.message[:MAX_MESSAGE] or None,
        credits=JobCredits(reserved=float(inputs.reserved), charged=float(charged)),
        transfer=_transfer(view, inputs.stored_report) if terminal else None,
        started_at=started or previous.started_at,
        finished_at=finished,
        pod_name=pod_name(ref.name),
    )


def _transfer(view: PodView | None, stored: RunnerReport | None) -> JobTransfer | None:
    """The store traffic the runner's reports account for (None: nothing was moved)."""
    staged = parse_report(view.stage_in.message) if view is not None else None
    uploaded = stored or (parse_report(view.stage_out.message) if view is not None else None)
    if staged is None and uploaded is None:
        return None
    return JobTransfer(
        input_files=staged.files if staged else 0,
        input_bytes=staged.bytes if staged else 0,
        output_files=uploaded.files if uploaded else 0,
        output_bytes=uploaded.bytes if uploaded else 0,
    )


def _own_outputs(verdict: _Verdict, ref: JobRef, inputs: StatusInputs) -> _Verdict:
    """INVALID_OUTPUT for an output naming a file the job did not write (under its prefix).

    Stage-out rewrites the files it uploaded to ``bx://jobs/<job>/output/...`` and leaves every
    other value as the image wrote it; a ``bx://`` path written by the image itself is a valid
    file reference, but to a file of someone else's (another job's output, an input).
    """
    if verdict.output is None or verdict.state not in (JobState.SUCCEEDED, JobState.WARNING):
        return verdict
    prefix = output_prefix(ref.name)
    checked = inputs.manifest.output.validate(verdict.output, FileMode.BX)
    foreign = [
        f"{r.path}: {r.value[:200]}" for r in checked.files if not r.target.startswith(prefix)
    ]
    if not foreign:
        return verdict
    return _Verdict(
        JobState.INVALID_OUTPUT,
        "InvalidOutput",
        f"the output names files the job did not write (output files are paths under "
        f"{OUTPUT_DIR}): {'; '.join(foreign[:10])}",
        exit_code=verdict.exit_code,
        output=verdict.output,
    )


def _judge(job: Job, view: PodView | None, previous: JobStatus, inputs: StatusInputs) -> _Verdict:
    timeout = inputs.resources.timeout
    if job.spec.cancel:
        if view is None or view.finished:
            return _Verdict(
                JobState.CANCELLED,
                "Cancelled",
                "cancelled (spec.cancel)",
                exit_code=None if view is None else view.job.exit_code,
            )
        return _Verdict(JobState.CANCELLING, "Cancelling", "cancellation requested (spec.cancel)")
    if view is None:
        if previous.pod_name:
            return _Verdict(
                JobState.FAILED,
                "PodLost",
                f"pod {previous.pod_name} was deleted before the job finished",
            )
        return _Verdict(JobState.STARTING, "Admitted", "waiting for the pod to be created")
    # A pod no node took (no startTime) counts its timeout from its creation: it holds its
    # quota and reservation all the same (rule: batchx.planning.job_admission, gpuType).
    since = view.started or view.created
    past_deadline = since is not None and (inputs.now - since).total_seconds() >= timeout
    if view.started is None and view.unschedulable and past_deadline:
        return _Verdict(
            JobState.FAILED,
            "Unschedulable",
            f"no node took the job's pod within its timeout of {timeout} s (spec.timeout)"
            f"{_gpu_note(inputs.resources)}: {view.unschedulable}",
        )
    if view.reason == "DeadlineExceeded" or (past_deadline and not view.finished):
        # The kubelet reports DeadlineExceeded only once every container is dead, which takes
        # the whole grace period for a program that ignores SIGTERM (any PID 1 without a
        # handler does); the clock says it at the deadline already.
        return _Verdict(
            JobState.FAILED,
            "Timeout",
            f"the job ran past its timeout of {timeout} s (spec.timeout) and was stopped",
            exit_code=view.job.exit_code,
        )
    if view.deleted_at is not None and not _ended_before(view.job, view.deleted_at):
        # Not BatchX's deletion (cancel and timeout are judged above): a user, an eviction or
        # a drain. The kubelet's SIGTERM may have made the program exit 0 with half an output,
        # so its exit code is not the job's verdict; a job never gets a second pod.
        return _Verdict(
            JobState.FAILED,
            "PodDeleted",
            "the job's pod was deleted while the job ran (not by BatchX: no spec.cancel, no "
            "timeout); a job is never run again in another pod",
            exit_code=view.job.exit_code,
        )
    if view.evicted_at is not None and not _ended_before(
        view.job, view.evicted_at - timedelta(seconds=1)
    ):
        # The node ran short (memory, disk): the kubelet killed the containers, so their exit
        # codes say nothing of the job itself. Times have whole seconds, and the eviction's kill
        # ends a container in the eviction's second: only one that ended a second before it
        # ended by itself (and is judged by its end below).
        return _evicted(view, "while the job ran")
    if view.reason == "Evicted" and view.job.exit_code in _KILLED:
        # The kubelet says it evicted the pod and the job died of a signal: the eviction's kill,
        # whatever the DisruptionTarget condition's time (or its absence) says.
        return _evicted(view, "while the job ran")
    if view.stage_in.terminated and view.stage_in.exit_code != 0:
        report = parse_report(view.stage_in.message)
        detail = report.message if report else view.stage_in.message or view.stage_in.reason
        return _Verdict(
            JobState.FAILED, "InputStagingFailed", f"input files could not be staged: {detail}"
        )
    if view.job.terminated:
        return _finished(view, inputs)
    if view.phase == "Failed":
        reason = as_reason(view.reason, "PodFailed")
        shown = view.reason or reason
        return _Verdict(JobState.FAILED, reason, view.message or f"the pod failed ({shown})")
    if view.job.running:
        return _Verdict(JobState.RUNNING, "Running", "the job's container is running")
    if view.stage_in.running:
        return _Verdict(JobState.DOWNLOADING_INPUT, "DownloadingInput", "staging input files")
    if view.stage_in.terminated:
        # Staged, the job's container not started yet: stay here (STARTING would go backwards).
        return _Verdict(
            JobState.DOWNLOADING_INPUT,
            "DownloadingInput",
            "input files staged; starting the job" + _waiting_on(view),
        )
    if view.unschedulable and view.started is None:
        return _Verdict(
            JobState.STARTING,
            "Unschedulable",
            f"the pod cannot be scheduled yet{_gpu_note(inputs.resources)}: {view.unschedulable}"
            f" (the job ends FAILED if no node takes it within its timeout of {timeout} s)",
        )
    return _Verdict(JobState.STARTING, "Admitted", "the pod is starting" + _waiting_on(view))


_KILLED = frozenset({137, 143})  # 128 + SIGKILL, 128 + SIGTERM


def _evicted(view: PodView, when: str) -> _Verdict:
    return _Verdict(
        JobState.FAILED,
        "Evicted",
        f"the kubelet evicted the job's pod {when}: {view.message or 'node pressure'}; a job is "
        "never run again in another pod",
        exit_code=view.job.exit_code,
    )


def _ended_before(container: Container, moment: datetime) -> bool:
    return container.finished_at is not None and container.finished_at <= moment


def _gpu_note(resources: Resources) -> str:
    if resources.gpu_type is None:
        return ""
    return (
        f" (it needs {resources.gpus} GPUs on a node labelled "
        f"{labels.GPU_PRODUCT}={resources.gpu_type}, spec.gpuType)"
    )


def _waiting_on(view: PodView) -> str:
    """Why a starting pod does not progress, as the kubelet or scheduler says (or nothing).

    A pod that cannot be scheduled (no node with the gpuType) or whose image cannot be pulled
    stays STARTING until its deadline: the reason may be transient, but the user sees it.
    """
    if view.unschedulable:
        return f": not scheduled yet: {view.unschedulable}"
    for name, container in ((STAGE_IN, view.stage_in), (JOB_CONTAINER, view.job)):
        waiting = not (container.running or container.terminated)
        if waiting and container.reason not in ("", "ContainerCreating", "PodInitializing"):
            detail = f" {container.message}" if container.message else ""
            return f": container {name} is waiting: {container.reason}{detail}"
    return ""


def _finished(view: PodView, inputs: StatusInputs) -> _Verdict:
    manifest = inputs.manifest.manifest
    code = view.job.exit_code if view.job.exit_code is not None else -1
    if view.job.reason == "OOMKilled":
        return _Verdict(
            JobState.OUT_OF_MEMORY,
            "OOMKilled",
            f"the job exceeded its memory of {inputs.resources.memory_mb} MB (spec.memory) "
            "and was killed",
            exit_code=code,
        )
    if code in _KILLED and not view.finished:
        # Killed by a signal while the pod lives on: an eviction says so only with the pod's
        # end (its reason and DisruptionTarget condition), so the verdict waits for it.
        return _Verdict(
            JobState.UPLOADING_OUTPUT,
            "UploadingOutput",
            f"the job's container was killed (exit {code}); waiting for its pod to end",
            exit_code=code,
        )
    warning = manifest.is_warning(code)
    if code != 0 and not warning:
        listed = manifest.error_codes.get(code)
        # On the direct path the message is output.json, not the logs' tail.
        tail = "" if view.direct else view.job.message.strip()
        message = listed or f"exited with code {code}" + (f": {tail[-1024:]}" if tail else "")
        return _Verdict(JobState.FAILED, "ExitCode", message, exit_code=code)
    if not view.finished:
        return _Verdict(
            JobState.UPLOADING_OUTPUT, "UploadingOutput", "uploading output files", exit_code=code
        )
    report = (
        _direct_report(view.job.message)
        if view.direct
        else inputs.stored_report or parse_report(view.stage_out.message)
    )
    if report is None and view.evicted_at is not None:
        return _evicted(view, f"after the job's container ended (exit {code}), before its upload")
    if report is None or report.outcome is Outcome.UPLOAD_FAILED:
        detail = report.message if report else silent_uploader(view)
        return _Verdict(
            JobState.FAILED,
            "OutputUploadFailed",
            f"output files could not be uploaded: {detail}",
            exit_code=code,
        )
    if report.outcome is Outcome.INVALID_OUTPUT or report.output is None:
        return _Verdict(
            JobState.INVALID_OUTPUT,
            "InvalidOutput",
            report.message or "the output could not be read",
            exit_code=code,
        )
    checked = inputs.manifest.output.validate(report.output, FileMode.BX)
    if not checked.ok:
        problems = "; ".join(str(p) for p in checked.problems[:10])
        return _Verdict(
            JobState.INVALID_OUTPUT,
            "InvalidOutput",
            f"the output does not match the image's output schema: {problems}",
            exit_code=code,
            output=report.output,
        )
    if warning:
        return _Verdict(
            JobState.WARNING,
            "CompletedWithWarning",
            manifest.warning_codes[code],
            exit_code=code,
            output=report.output,
        )
    return _Verdict(
        JobState.SUCCEEDED, "Succeeded", "the job succeeded", exit_code=code, output=report.output
    )


def _direct_report(message: str) -> RunnerReport:
    """A direct job's output.json (its termination message) read as stage-out would report it."""
    document = output_document(message)
    if isinstance(document, str):
        return RunnerReport(Outcome.INVALID_OUTPUT, message=document)
    return RunnerReport(Outcome.UPLOADED, output=document)
