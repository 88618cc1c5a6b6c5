"""The Pod that runs an admitted Job, and how staging works around an image we know nothing about.

Staging design
--------------
BatchX images are arbitrary: no Python, maybe no shell, their own ENTRYPOINT. So nothing of the
platform runs *inside* the user's container, and its command is never rewritten. Files move in
containers of the project's own **runner image**, next to it in the same Pod, through two
``emptyDir`` volumes:

``stage-in`` (a regular init container: it finishes before anything else starts)
    reads the staging plan (below), downloads every input file and folder from the store into
    ``/batchx/input/files/<bx path>`` and writes ``/batchx/input/input.json``: the job input with
    each ``format: file`` value (in arrays and nested objects too) replaced by that absolute
    path. A missing or corrupt file fails the container with a report (``InputStagingFailed``).
    A job whose input names **no file** has no stage-in at all: ``input.json`` is a key of the
    plan ConfigMap, projected read-only as ``/batchx/input/input.json`` (the input is used as
    written), so the job's container starts without waiting for a runner to start and finish;
    its state goes from ``STARTING`` straight to ``RUNNING`` (no ``DOWNLOADING_INPUT``).

``stage-out`` (an init container with ``restartPolicy: Always``: a native sidecar, GA in
Kubernetes 1.33)
    starts before the job and idles. When the user's container exits, the kubelet sends the
    sidecar SIGTERM (sidecars are terminated after all regular containers, in reverse order,
    KEP-753); it then reads ``/batchx/output/output.json``, finds the files it lists with the
    output schema (files, arrays of files, folders), uploads them to
    ``bx://jobs/<job>/output/<path>``, rewrites the paths to ``bx://`` and reports (see
    `RunnerReport`). The pod's ``terminationGracePeriodSeconds`` is the upload allowance, so
    large outputs have time. When the output schema can list no file (``outputFiles`` false in
    the plan: no ``format: file`` anywhere in it) the sidecar needs no store: it reads
    output.json and reports it. Otherwise it imports the store and its dependencies in a
    background thread as soon as it starts, so the upload begins at SIGTERM, not after seconds
    of imports (memory cost: see `batchx.runner.__main__`). The sidecar is PID 1 of its
    container, and a SIGTERM that arrives before its interpreter has installed a handler would
    be dropped by the kernel (a trivial job can end that soon): its ``preStop`` hook, which the
    kubelet runs before the SIGTERM, waits until the sidecar catches SIGTERM and sends it then.

``job`` (the only regular container)
    the user's image with its own entrypoint, ``/batchx/input`` (read-only) and
    ``/batchx/output`` mounted, the ``BX_*`` variables set, nothing else.

Why this and not the alternatives studied:

- Argo's emissary executor copies a static Go binary into a shared volume and rewrites the main
  container's command to run the user's program under it (which needs the image's entrypoint
  looked up in a registry). It learns the exit code first-hand, but every job then depends on
  our wrapper being able to exec in the user's image and on registry access from the operator.
  The exit code is in the Pod status anyway, so the wrapper buys nothing here.
- Flyte's copilot runs its uploader as a regular sidecar that must *notice* that the main
  container ended (shared process namespace, or watching the API). A shared PID namespace would
  let the user's processes see the runner's, and API access would need a token in the Pod. The
  native sidecar gets a precise signal from the kubelet with neither.

Trust boundary: the store credentials (Secret ``<store secret>``, loaded with ``envFrom``)
reach only ``stage-in`` and ``stage-out``; the user's container has no service-account token
(``automountServiceAccountToken: false``), no Secret, and separate process namespaces.

Resources: the ``job`` container gets exactly the job's ``vcpus``, ``memory`` (Mi) and
``nvidia.com/gpu`` with requests = limits. The runner containers request *zero* CPU and memory
(with limits), so a ResourceQuota counts only what BatchX users think in (a 2-vCPU quota fits two
1-vCPU jobs). That is safe because their work never overlaps the user's: ``stage-in`` runs
before the job starts, ``stage-out`` uploads after it has exited.

The staging plan is a ConfigMap ``<pod name>-plan`` owned by the Job, mounted only into the
runner containers: the input alone may be 256 KiB, too big for an environment variable
(``MAX_ARG_STRLEN`` is 128 KiB) or an annotation (256 KiB for all of them together).

Timeout: the job may run ``timeout`` seconds from the pod's start, staging included, so it can
never hold resources (or be charged) longer than its reservation. At that moment the operator
declares ``Timeout`` and deletes the pod with a 1 s grace period: the user's container gets
SIGTERM and, one second later, SIGKILL, whatever it does with SIGTERM and whatever the upload
allowance is. ``activeDeadlineSeconds`` is only the backstop for an operator that is down: it is
``timeout`` plus `PodPolicy.deadline_backstop_seconds`, later than the operator's delete, and it
must be. The kubelet's own deadline kill uses the pod's ``terminationGracePeriodSeconds`` (the
upload allowance, 600 s), and a kill under way is not shortened by a later delete with a
shorter grace: a program that ignores SIGTERM (any PID 1 without a handler) then keeps its CPU
for the whole allowance after its Timeout. The per-container way out, a ``SIGKILL``
``lifecycle.stopSignal`` on the job container only (KEP-4960), is alpha in Kubernetes 1.33 and
needs containerd 2; nothing may run inside the user's image to kill it there (no wrapper, no
exec: it may have no shell).

Status planning
---------------
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
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any

from batchx import API_VERSION
from batchx.domain.manifest import CompiledManifest
from batchx.domain.validation import FileMode, FileRef
from batchx.models import (
    ConditionStatus,
    Job,
    JobCredits,
    JobImage,
    JobState,
    JobStatus,
    JobTransfer,
)
from batchx.planning import labels
from batchx.planning.conditions import as_reason, set_condition
from batchx.planning.job_admission import SUCCEEDED_CONDITION, Request, Resources, charge
from batchx.planning.pipeline import staged_files

__all__ = [
    "INPUT_DIR",
    "JOB_CONTAINER",
    "OUTPUT_DIR",
    "STAGE_IN",
    "STAGE_OUT",
    "SUCCEEDED_CONDITION",
    "JobRef",
    "Outcome",
    "PodPolicy",
    "RunnerReport",
    "input_local_path",
    "job_files",
    "lists_files",
    "needs_stage_in",
    "output_prefix",
    "owned_by",
    "parse_report",
    "plan_config_map",
    "plan_config_map_name",
    "plan_manifest",
    "plan_pod",
    "plan_status",
    "pod_finished",
    "pod_name",
    "result_path",
    "stage_out_report",
    "staging_plan",
]

JSON = dict[str, Any]

INPUT_DIR = "/batchx/input"
OUTPUT_DIR = "/batchx/output"
FILES_DIR = f"{INPUT_DIR}/files"
PLAN_DIR = "/var/run/batchx/plan"
PLAN_FILE = "plan.json"
INPUT_FILE = "input.json"
# The manifest the job was admitted with (batchx.planning.job_record): its output is judged by it.
MANIFEST_FILE = "manifest.json"
JOB_CONTAINER = "job"
STAGE_IN = "stage-in"
STAGE_OUT = "stage-out"
# The runner image's entrypoint (testbed.runner_image); exec hooks need the whole command.
RUNNER_COMMAND = ("python3", "-m", "batchx.runner")
GPU_RESOURCE = "nvidia.com/gpu"
PLAN_VERSION = 1
_NAME_MAX = 63  # a DNS label: usable as hostname and label value too


# ------------------------------------------------------------------------------ identities


@dataclass(frozen=True)
class JobRef:
    """The identity of a Job (for names, owner references and labels)."""

    name: str
    namespace: str
    uid: str
    generation: int = 1


def pod_name(job_name: str) -> str:
    """``bx-<job>``; names longer than a DNS label keep a prefix and gain a hash suffix.

    A function of the job's name only, so a restarted operator finds the pod it created, and a
    second create attempt gets AlreadyExists instead of a second pod.
    """
    name = f"bx-{job_name}"
    if len(name) <= _NAME_MAX:
        return name
    digest = hashlib.sha256(job_name.encode()).hexdigest()[:10]
    return f"{name[: _NAME_MAX - 11].rstrip('-.')}-{digest}"


def job_files(job_name: str) -> str:
    """The folder of everything the platform writes for a job: its outputs and its report.

    The job's own: removed when the Job is deleted, so a new Job of the same name (a GitOps
    tool replacing it) gets paths of its own, which immutable paths would otherwise refuse.
    """
    return f"jobs/{job_name}/"


def output_prefix(job_name: str) -> str:
    """Where the job's output files land in its environment's file system (BRIEF section 5)."""
    return f"{job_files(job_name)}output/"


def result_path(job_name: str) -> str:
    """The store path of the full runner report when it is too big for a termination message."""
    return f"{job_files(job_name)}result.json"


def input_local_path(ref: FileRef) -> str:
    """Where a staged input file (or folder, ending in ``/``) appears in the job's container."""
    return f"{FILES_DIR}/{ref.target}"


def owned_by(obj: Mapping[str, Any] | None, job: JobRef) -> bool:
    """Whether `obj` (a pod or plan ConfigMap found under the job's name) is this job's.

    Names are functions of the job's name only, so after a Job is deleted and created again
    under the same name, the old one's pod and plan can still exist until the garbage
    collector removes them: they are not the new job's, whatever their name.
    """
    owners = ((obj or {}).get("metadata") or {}).get("ownerReferences") or []
    return any(o.get("kind") == "Job" and o.get("uid") == job.uid for o in owners)


def _owner(job: JobRef) -> JSON:
    return {
        "apiVersion": API_VERSION,
        "kind": "Job",
        "name": job.name,
        "uid": job.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _labels(job: JobRef) -> dict[str, str]:
    value = job.name if len(job.name) <= _NAME_MAX else pod_name(job.name)
    return {
        labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
        labels.ENVIRONMENT: job.namespace,
        labels.LEDGER_JOB: value,
    }


# -------------------------------------------------------------------------------- the plan


def staging_plan(job: JobRef, request: Request, input_document: Mapping[str, Any]) -> JSON:
    """What the runner needs: the input, where each file goes, and how to read the output."""
    files: dict[str, str] = {}
    staged = staged_files(request)  # a pipeline's other files stay bx:// references
    for ref in staged:
        files.setdefault(ref.target, input_local_path(ref))
    output_schema = request.manifest.manifest.output_schema
    return {
        "version": PLAN_VERSION,
        "job": job.name,
        "jobUid": job.uid,
        "environment": job.namespace,
        "input": dict(input_document),
        "files": [{"bx": f"bx://{bx}", "local": local} for bx, local in sorted(files.items())],
        "inputFiles": [
            {"pointer": list(ref.pointer), "local": input_local_path(ref)} for ref in staged
        ],
        "outputSchema": output_schema,
        "outputFiles": lists_files(output_schema),
        "outputPrefix": output_prefix(job.name),
        "resultPath": result_path(job.name),
        "timeout": request.resources.timeout,
    }


def lists_files(schema: Any) -> bool:
    """Whether a document of `schema` may hold a file: ``format: file`` anywhere in it.

    Over-approximates on purpose (a ``format`` key anywhere counts): a false "yes" costs the
    stage-out sidecar its store imports, a false "no" would lose the job's output files.
    """
    if isinstance(schema, Mapping):
        return schema.get("format") == "file" or any(lists_files(v) for v in schema.values())
    if isinstance(schema, list):
        return any(lists_files(v) for v in schema)
    return False


def plan_config_map_name(job_name: str) -> str:
    return f"{pod_name(job_name)}-plan"


def plan_manifest(config_map: Mapping[str, Any] | None) -> JSON | None:
    """The admitted manifest kept in a plan ConfigMap; None when absent or unreadable."""
    text = ((config_map or {}).get("data") or {}).get(MANIFEST_FILE)
    try:
        manifest = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    return manifest if isinstance(manifest, dict) else None


def needs_stage_in(plan: Mapping[str, Any]) -> bool:
    """Whether the job's input names files to download (else input.json comes from the plan)."""
    return bool(plan.get("files"))


def plan_config_map(job: JobRef, plan: JSON, manifest: Mapping[str, Any]) -> JSON:
    """The immutable ConfigMap holding the staging plan, the manifest the job was admitted with
    (`plan_manifest`), and input.json when nothing is staged.

    Owned by the Job.
    """
    data = {
        PLAN_FILE: json.dumps(plan, sort_keys=True, separators=(",", ":")),
        MANIFEST_FILE: json.dumps(manifest, sort_keys=True, separators=(",", ":")),
    }
    if not needs_stage_in(plan):
        data[INPUT_FILE] = json.dumps(plan["input"], ensure_ascii=False, separators=(",", ":"))
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": plan_config_map_name(job.name),
            "namespace": job.namespace,
            "labels": _labels(job),
            "ownerReferences": [_owner(job)],
        },
        "immutable": True,
        "data": data,
    }


@dataclass(frozen=True)
class PodPolicy:
    """Operator configuration of job pods."""

    runner_image: str
    store_secret: str = "batchx-store"
    upload_grace_seconds: int = 600
    # activeDeadlineSeconds = timeout + this: the kubelet's deadline kill must come after the
    # operator's short-grace delete (see "Timeout" in the module docstring).
    deadline_backstop_seconds: int = 30
    run_as_user: int | None = 1000
    runner_cpu_limit: str = "1"
    runner_memory_limit: str = "512Mi"
    priority_class: str | None = None


def plan_pod(job: JobRef, request: Request, policy: PodPolicy) -> JSON:
    """The Pod of an admitted job (see the module docstring for the design)."""
    res = request.resources
    name = pod_name(job.name)
    stage_in = bool(staged_files(request))
    env = [
        {"name": "BX_VCPUS", "value": str(res.vcpus)},
        {"name": "BX_MEMORY", "value": str(res.memory_mb)},
        {"name": "BX_GPUS", "value": str(res.gpus)},
        {"name": "BX_JOB", "value": job.name},
        {"name": "BATCHX_ENV", "value": job.namespace},
    ]
    limits = {"cpu": str(res.vcpus), "memory": f"{res.memory_mb}Mi"}
    if res.gpus:
        limits[GPU_RESOURCE] = str(res.gpus)
    user = {
        "name": JOB_CONTAINER,
        "image": request.image.container,
        "env": env,
        "resources": {"requests": dict(limits), "limits": dict(limits)},
        "volumeMounts": [
            {"name": "input", "mountPath": INPUT_DIR, "readOnly": True},
            {"name": "output", "mountPath": OUTPUT_DIR},
        ],
        "securityContext": _container_security(),
        # The message is what stdout/stderr ended with when the program wrote no termination
        # message: a short tail for `status.message` of failed jobs with unlisted exit codes.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    }
    spec: JSON = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": res.timeout + policy.deadline_backstop_seconds,
        "terminationGracePeriodSeconds": policy.upload_grace_seconds,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security(policy),
        "initContainers": (
            [_runner(STAGE_IN, job, policy), _runner(STAGE_OUT, job, policy)]
            if stage_in
            else [_runner(STAGE_OUT, job, policy)]
        ),
        "containers": [user],
        "volumes": [
            {"name": "input", "emptyDir": {}}
            if stage_in
            # Nothing to download: input.json is the plan ConfigMap's key, as written.
            else {
                "name": "input",
                "configMap": {
                    "name": f"{name}-plan",
                    "items": [{"key": INPUT_FILE, "path": INPUT_FILE}],
                },
            },
            {"name": "output", "emptyDir": {}},
            {"name": "plan", "configMap": {"name": f"{name}-plan"}},
        ],
    }
    if res.gpus:
        spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
        if res.gpu_type:
            spec["nodeSelector"] = {labels.GPU_PRODUCT: res.gpu_type}
    if policy.priority_class:
        spec["priorityClassName"] = policy.priority_class
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": job.namespace,
            "labels": _labels(job),
            "annotations": {"batchx.io/image": request.image.coordinates or ""},
            "ownerReferences": [_owner(job)],
        },
        "spec": spec,
    }


def _runner(role: str, job: JobRef, policy: PodPolicy) -> JSON:
    container: JSON = {
        "name": role,
        "image": policy.runner_image,
        "args": [role, f"{PLAN_DIR}/{PLAN_FILE}"],
        "envFrom": [{"secretRef": {"name": policy.store_secret}}],
        "env": [
            {"name": "BX_JOB", "value": job.name},
            {"name": "BATCHX_ENV", "value": job.namespace},
        ],
        # Zero requests: see "Resources" in the module docstring.
        "resources": {
            "requests": {"cpu": "0", "memory": "0"},
            "limits": {"cpu": policy.runner_cpu_limit, "memory": policy.runner_memory_limit},
        },
        # Each runner sees only what its step needs: stage-in writes the inputs, stage-out
        # reads the outputs.
        "volumeMounts": [
            {"name": "input", "mountPath": INPUT_DIR}
            if role == STAGE_IN
            else {"name": "output", "mountPath": OUTPUT_DIR, "readOnly": True},
            {"name": "plan", "mountPath": PLAN_DIR, "readOnly": True},
        ],
        "securityContext": _container_security(),
        "terminationMessagePolicy": "File",
    }
    if role == STAGE_OUT:
        container["restartPolicy"] = "Always"
        # Run before the kubelet's SIGTERM: delivers it once the sidecar can catch it (a trivial
        # job may end while the sidecar's interpreter is still starting; batchx.runner._nudge).
        container["lifecycle"] = {"preStop": {"exec": {"command": [*RUNNER_COMMAND, "nudge"]}}}
    return container


def _pod_security(policy: PodPolicy) -> JSON:
    security: JSON = {"seccompProfile": {"type": "RuntimeDefault"}}
    if policy.run_as_user is not None:
        # Images often say USER root; restricted Pod Security needs a non-root uid, and the same
        # uid in all containers lets each read what the other wrote in the shared volumes.
        security |= {
            "runAsNonRoot": True,
            "runAsUser": policy.run_as_user,
            "runAsGroup": policy.run_as_user,
            "fsGroup": policy.run_as_user,
        }
    return security


def _container_security() -> JSON:
    return {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


# -------------------------------------------------------------------------- runner reports


class Outcome(StrEnum):
    """What a runner container reports in its termination message."""

    STAGED = "staged"  # stage-in: every input is in place
    INPUT_FAILED = "input-failed"  # stage-in: a file could not be fetched
    UPLOADED = "uploaded"  # stage-out: output.json read, files uploaded, paths rewritten
    INVALID_OUTPUT = "invalid-output"  # stage-out: output.json unusable (not JSON, bad paths)
    UPLOAD_FAILED = "upload-failed"  # stage-out: the store refused or failed


@dataclass(frozen=True)
class RunnerReport:
    """A runner's termination message (at most 4 KiB; the kubelet truncates beyond that).

    ``output`` holds the rewritten output when it fits; otherwise ``result`` names the store path
    of the full report (`result_path`) and ``digest`` its sha256, which the reconciler fetches
    and passes to `plan_status` as ``output``.
    """

    outcome: Outcome
    message: str = ""
    output: JSON | None = None
    result: str | None = None
    digest: str | None = None
    files: int = 0
    bytes: int = 0

    def to_json(self) -> str:
        data: JSON = {"v": 1, "outcome": self.outcome.value}
        for key in ("message", "output", "result", "digest"):
            value = getattr(self, key)
            if value:
                data[key] = value
        if self.files:
            data |= {"files": self.files, "bytes": self.bytes}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def stage_out_report(pod: Mapping[str, Any]) -> RunnerReport | None:
    """The stage-out sidecar's report in `pod`'s status, if it has reported."""
    return parse_report(_Container.of(_container_status(pod, STAGE_OUT)).message)


def pod_finished(pod: Mapping[str, Any]) -> bool:
    """Whether every container of `pod` has ended (phase Succeeded or Failed)."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _container_status(pod: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    status = pod.get("status") or {}
    every = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    return next((s for s in every if s.get("name") == name), None)


def parse_report(text: str | None) -> RunnerReport | None:
    """The report in a termination message, or None when there is none or it is unreadable."""
    if not text:
        return None
    try:
        data = json.loads(text)
        outcome = Outcome(data["outcome"])
    except (ValueError, KeyError, TypeError):
        return None
    output = data.get("output")
    result = data.get("result") if isinstance(data.get("result"), str) else None
    if output is None and outcome is Outcome.UPLOADED and not result:
        output = {}  # `to_json` leaves an empty output out: no output.json is the output {}
    return RunnerReport(
        outcome=outcome,
        message=str(data.get("message") or ""),
        output=output if isinstance(output, dict) else None,
        result=result,
        digest=data.get("digest") if isinstance(data.get("digest"), str) else None,
        files=_count(data.get("files")),
        bytes=_count(data.get("bytes")),
    )


def _count(value: Any) -> int:
    # A count the report cannot hold ("many", [1], 1e400) reads as 0: it only feeds metrics.
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0


# ------------------------------------------------------------------------------- the status


@dataclass(frozen=True)
class _Container:
    """One container's status, reduced to what planning reads."""

    running: bool = False
    terminated: bool = False
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def of(cls, status: Mapping[str, Any] | None) -> _Container:
        state = (status or {}).get("state") or {}
        if "running" in state:
            return cls(running=True, started_at=_time((state["running"] or {}).get("startedAt")))
        done = state.get("terminated")
        if done is None:
            waiting = state.get("waiting") or {}
            return cls(
                reason=str(waiting.get("reason") or ""), message=str(waiting.get("message") or "")
            )
        return cls(
            terminated=True,
            exit_code=done.get("exitCode"),
            reason=str(done.get("reason") or ""),
            message=str(done.get("message") or ""),
            started_at=_time(done.get("startedAt")),
            finished_at=_time(done.get("finishedAt")),
        )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class _PodView:
    phase: str
    unschedulable: str
    reason: str
    message: str
    started: datetime | None
    created: datetime | None
    stage_in: _Container
    stage_out: _Container
    job: _Container
    deleted_at: datetime | None = None  # when a deletion of the pod was asked for
    evicted_at: datetime | None = None  # when the kubelet evicted it (node pressure)

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> _PodView:
        status = pod.get("status") or {}
        meta = pod.get("metadata") or {}
        deleted_at = _time(meta.get("deletionTimestamp"))
        if deleted_at is not None:  # the timestamp is the request's time plus the grace period
            deleted_at -= timedelta(seconds=int(meta.get("deletionGracePeriodSeconds") or 0))
        by_name = {
            s.get("name"): s
            for s in (status.get("initContainerStatuses") or [])
            + (status.get("containerStatuses") or [])
        }
        return cls(
            phase=str(status.get("phase") or "Pending"),
            unschedulable=next(
                (
                    str(c.get("message") or c.get("reason") or "")
                    for c in status.get("conditions") or []
                    if c.get("type") == "PodScheduled" and c.get("status") == "False"
                ),
                "",
            ),
            reason=str(status.get("reason") or ""),
            message=str(status.get("message") or ""),
            started=_time(status.get("startTime")),
            created=_time((pod.get("metadata") or {}).get("creationTimestamp")),
            stage_in=_Container.of(by_name.get(STAGE_IN)),
            stage_out=_Container.of(by_name.get(STAGE_OUT)),
            job=_Container.of(by_name.get(JOB_CONTAINER)),
            deleted_at=deleted_at,
            evicted_at=_evicted_at(status),
        )

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def last_finish(self) -> datetime | None:
        times = [c.finished_at for c in (self.stage_in, self.stage_out, self.job) if c.finished_at]
        return max(times) if times else None


def _evicted_at(status: Mapping[str, Any]) -> datetime | None:
    """When the kubelet evicted the pod: its DisruptionTarget condition (TerminationByKubelet)."""
    if status.get("reason") != "Evicted":
        return None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "DisruptionTarget" and cond.get("status") == "True":
            return _time(cond.get("lastTransitionTime"))
    return None


def _silent_uploader(view: _PodView) -> str:
    """Why no report: what became of the stage-out container (its exit, and when)."""
    out = view.stage_out
    if not out.terminated:
        return "the uploader reported nothing (its container never ended)"
    how = f"exit code {out.exit_code}" + (f", {out.reason}" if out.reason else "")
    if out.finished_at and view.job.finished_at:
        seconds = (out.finished_at - view.job.finished_at).total_seconds()
        how += f", {seconds:.0f} s after the job's container"
    return f"the uploader reported nothing (its container ended: {how})"


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
    view = None if pod is None else _PodView.of(pod)
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
    condition_status = (
        ConditionStatus.UNKNOWN
        if not terminal
        else ConditionStatus.TRUE
        if verdict.state.is_success
        else ConditionStatus.FALSE
    )
    return JobStatus(
        state=verdict.state,
        image=inputs.image,
        output=verdict.output,
        exit_code=verdict.exit_code,
        message=verdict.message[:32768] or None,
        credits=JobCredits(reserved=float(inputs.reserved), charged=float(charged)),
        transfer=_transfer(view, inputs.stored_report) if terminal else None,
        started_at=started or previous.started_at,
        finished_at=finished,
        pod_name=pod_name(ref.name),
        conditions=set_condition(
            previous.conditions,
            type=SUCCEEDED_CONDITION,
            status=condition_status,
            reason=verdict.reason,
            message=verdict.message[:32768],
            generation=ref.generation,
            now=inputs.now,
        ),
        observed_generation=ref.generation,
    )


def _transfer(view: _PodView | None, stored: RunnerReport | None) -> JobTransfer | None:
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


def _judge(job: Job, view: _PodView | None, previous: JobStatus, inputs: StatusInputs) -> _Verdict:
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


def _evicted(view: _PodView, when: str) -> _Verdict:
    return _Verdict(
        JobState.FAILED,
        "Evicted",
        f"the kubelet evicted the job's pod {when}: {view.message or 'node pressure'}; a job is "
        "never run again in another pod",
        exit_code=view.job.exit_code,
    )


def _ended_before(container: _Container, moment: datetime) -> bool:
    return container.finished_at is not None and container.finished_at <= moment


def _gpu_note(resources: Resources) -> str:
    if resources.gpu_type is None:
        return ""
    return (
        f" (it needs {resources.gpus} GPUs on a node labelled "
        f"{labels.GPU_PRODUCT}={resources.gpu_type}, spec.gpuType)"
    )


def _waiting_on(view: _PodView) -> str:
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


def _finished(view: _PodView, inputs: StatusInputs) -> _Verdict:
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
    warning = manifest.is_warning(code)
    if code != 0 and not warning:
        listed = manifest.error_codes.get(code)
        tail = view.job.message.strip()
        message = listed or f"exited with code {code}" + (f": {tail[-1024:]}" if tail else "")
        return _Verdict(JobState.FAILED, "ExitCode", message, exit_code=code)
    if not view.finished:
        return _Verdict(
            JobState.UPLOADING_OUTPUT, "UploadingOutput", "uploading output files", exit_code=code
        )
    report = inputs.stored_report or parse_report(view.stage_out.message)
    if report is None and view.evicted_at is not None:
        return _evicted(view, f"after the job's container ended (exit {code}), before its upload")
    if report is None or report.outcome is Outcome.UPLOAD_FAILED:
        detail = report.message if report else _silent_uploader(view)
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
