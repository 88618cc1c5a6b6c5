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

**The direct path**: a job whose output schema lists no file (and whose image is not in the
operator's ``directOutputExcept``, with ``directOutput`` on, the default) has **no stage-out**
container: the kubelet itself returns output.json as the job container's termination message
(``terminationMessagePath: /batchx/output/output.json``), up to 4096 bytes; an output of 4096
bytes or more ends ``INVALID_OUTPUT`` with a message naming the limit and those two settings.
With no file in its input either, the Pod has no runner container at all and references no
Secret. Design, limits and what differs: `batchx.planning.direct_output`.

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

A job that stages nothing in reads input.json from the plan too, unless it is at most
`INLINE_INPUT_BYTES`: then it is the Pod's own annotation ``batchx.io/input``, projected by a
downward API volume. The kubelet has a Pod's annotations with the Pod; a ConfigMap created a
moment before it has to fetch (a watch per new object) before the volume mounts, which cost a
trivial job ~0.6 s before its container started (bench_jobs: the bare Pods' ConfigMap, the
same for all of them, was already there).

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

The Pod's observation and the job's status: `batchx.planning.pod_status`; the wire protocol
between the operator and the runner (plan, report, paths): `batchx.planning.job_protocol`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from batchx import API_VERSION
from batchx.domain.validation import FileRef
from batchx.planning import labels
from batchx.planning.direct_output import direct_container_fields, uses_direct_output
from batchx.planning.job_admission import Request
from batchx.planning.job_protocol import (
    FILES_DIR,
    INPUT_DIR,
    INPUT_FILE,
    JOB_CONTAINER,
    MANIFEST_FILE,
    OUTPUT_DIR,
    PLAN_DIR,
    PLAN_FILE,
    RUNNER_COMMAND,
    STAGE_IN,
    STAGE_OUT,
    StagingPlan,
)
from batchx.planning.pipeline import staged_files

__all__ = [
    "JobRef",
    "PodPolicy",
    "inline_input",
    "input_local_path",
    "job_files",
    "lists_files",
    "output_prefix",
    "owned_by",
    "plan_config_map",
    "plan_config_map_name",
    "plan_manifest",
    "plan_pod",
    "pod_name",
    "result_path",
    "staging_plan",
]

JSON = dict[str, Any]

GPU_RESOURCE = "nvidia.com/gpu"
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


def staging_plan(
    job: JobRef,
    request: Request,
    input_document: Mapping[str, Any],
    provenance: Mapping[str, Any] | None = None,
) -> StagingPlan:
    """What the runner needs: the input, where each file goes, how to read the output, and
    the record it writes with every output file (`batchx.planning.provenance`)."""
    files: dict[str, str] = {}
    staged = staged_files(request)  # a pipeline's other files stay bx:// references
    for ref in staged:
        files.setdefault(ref.target, input_local_path(ref))
    output_schema = request.manifest.manifest.output_schema
    return StagingPlan(
        job=job.name,
        job_uid=job.uid,
        environment=job.namespace,
        input=dict(input_document),
        files=tuple((f"bx://{bx}", local) for bx, local in sorted(files.items())),
        input_files=tuple((tuple(ref.pointer), input_local_path(ref)) for ref in staged),
        output_schema=dict(output_schema),
        output_files=lists_files(output_schema),
        output_prefix=output_prefix(job.name),
        result_path=result_path(job.name),
        timeout=request.resources.timeout,
        provenance=dict(provenance) if provenance is not None else None,
    )


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


INLINE_INPUT_BYTES = 32 * 1024
INPUT_ANNOTATION = "batchx.io/input"


def input_json(plan: StagingPlan) -> str:
    """input.json as the job's container reads it (compact, UTF-8)."""
    return json.dumps(plan.input, ensure_ascii=False, separators=(",", ":"))


def inline_input(plan: StagingPlan) -> str | None:
    """input.json for the Pod's annotation (`plan_pod`), or None: staged in, or too big."""
    if plan.stages_in:
        return None
    text = input_json(plan)
    return text if len(text.encode()) <= INLINE_INPUT_BYTES else None


def plan_config_map(job: JobRef, plan: StagingPlan, manifest: Mapping[str, Any]) -> JSON:
    """The immutable ConfigMap holding the staging plan, the manifest the job was admitted with
    (`plan_manifest`), and input.json when nothing is staged.

    Owned by the Job.
    """
    data = {
        PLAN_FILE: plan.dumps(),
        MANIFEST_FILE: json.dumps(manifest, sort_keys=True, separators=(",", ":")),
    }
    if not plan.stages_in:
        data[INPUT_FILE] = input_json(plan)
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
    # The direct path (batchx.planning.direct_output): off for every job, or for these images.
    direct_output: bool = True
    direct_output_except: frozenset[str] = frozenset()

    def direct(self, request: Request) -> bool:
        """Whether `request`'s Pod goes without a stage-out container (the direct path)."""
        return uses_direct_output(
            lists_files=lists_files(request.manifest.manifest.output_schema),
            coordinates=request.image.coordinates,
            enabled=self.direct_output,
            except_images=self.direct_output_except,
        )


def plan_pod(
    job: JobRef, request: Request, policy: PodPolicy, *, input_text: str | None = None
) -> JSON:
    """The Pod of an admitted job (see the module docstring for the design); `input_text`:
    input.json carried by the Pod itself (`inline_input`) instead of read from the plan."""
    res = request.resources
    name = pod_name(job.name)
    stage_in = bool(staged_files(request))  # a pipeline's other files stay bx:// references
    direct = policy.direct(request)
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
    if direct:
        user |= direct_container_fields()
    runners = [_runner(STAGE_IN, job, policy)] if stage_in else []
    if not direct:
        runners.append(_runner(STAGE_OUT, job, policy))
    spec: JSON = {
        "restartPolicy": "Never",
        "activeDeadlineSeconds": res.timeout + policy.deadline_backstop_seconds,
        "terminationGracePeriodSeconds": policy.upload_grace_seconds,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "securityContext": _pod_security(policy),
        "containers": [user],
        "volumes": [
            {"name": "input", "emptyDir": {}}
            if stage_in
            else _input_volume(name, inline=input_text is not None),
            {"name": "output", "emptyDir": {}},
        ],
    }
    if runners:
        spec["initContainers"] = runners
        spec["volumes"].append({"name": "plan", "configMap": {"name": f"{name}-plan"}})
    if res.gpus:
        spec["tolerations"] = [{"key": GPU_RESOURCE, "operator": "Exists", "effect": "NoSchedule"}]
        if res.gpu_type:
            spec["nodeSelector"] = {labels.GPU_PRODUCT: res.gpu_type}
    if policy.priority_class:
        spec["priorityClassName"] = policy.priority_class
    annotations = {"batchx.io/image": request.image.coordinates or ""}
    if input_text is not None and not stage_in:
        annotations[INPUT_ANNOTATION] = input_text
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": job.namespace,
            "labels": _labels(job),
            "annotations": annotations,
            "ownerReferences": [_owner(job)],
        },
        "spec": spec,
    }


def _input_volume(pod: str, *, inline: bool) -> JSON:
    """Nothing to download: input.json is the Pod's annotation, or the plan ConfigMap's key."""
    if inline:
        field = f"metadata.annotations['{INPUT_ANNOTATION}']"
        items = [{"path": INPUT_FILE, "fieldRef": {"fieldPath": field}}]
        return {"name": "input", "downwardAPI": {"items": items}}
    items = [{"key": INPUT_FILE, "path": INPUT_FILE}]
    return {"name": "input", "configMap": {"name": f"{pod}-plan", "items": items}}


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
