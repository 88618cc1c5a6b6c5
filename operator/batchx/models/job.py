"""Job (namespaced, shortName `bxjob`): one execution of an image on a JSON input."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import ConfigDict, Field, WithJsonSchema

from batchx.models.common import CamelModel, ConditionList, x_validation

__all__ = [
    "MAX_GPUS",
    "MAX_MEMORY_MB",
    "MAX_TIMEOUT_SECONDS",
    "MAX_VCPUS",
    "TERMINAL_STATES",
    "Job",
    "JobAdmission",
    "JobCredits",
    "JobImage",
    "JobResources",
    "JobSpec",
    "JobState",
    "JobStatus",
]

MAX_VCPUS = 1024
MAX_MEMORY_MB = 16 * 1024 * 1024  # 16 TiB in MB: more than any node offers, still an int32.
MAX_GPUS = 64
MAX_TIMEOUT_SECONDS = 30 * 24 * 3600
MAX_INPUT_PROPERTIES = 1024


class JobState(StrEnum):
    """status.state: BatchX's job states (stable names)."""

    SUBMITTED = "SUBMITTED"
    QUEUED = "QUEUED"
    STARTING = "STARTING"
    DOWNLOADING_INPUT = "DOWNLOADING_INPUT"
    RUNNING = "RUNNING"
    UPLOADING_OUTPUT = "UPLOADING_OUTPUT"
    SUCCEEDED = "SUCCEEDED"
    WARNING = "WARNING"
    FAILED = "FAILED"
    CANCELLING = "CANCELLING"
    CANCELLED = "CANCELLED"
    OUT_OF_MEMORY = "OUT_OF_MEMORY"
    INVALID_OUTPUT = "INVALID_OUTPUT"

    @property
    def is_terminal(self) -> bool:
        """True when the job will never change state again."""
        return self in TERMINAL_STATES

    @property
    def is_success(self) -> bool:
        """True for the states `bx run` exits 0 on (output collected)."""
        return self in (JobState.SUCCEEDED, JobState.WARNING)


TERMINAL_STATES = frozenset(
    {
        JobState.SUCCEEDED,
        JobState.WARNING,
        JobState.FAILED,
        JobState.CANCELLED,
        JobState.OUT_OF_MEMORY,
        JobState.INVALID_OUTPUT,
    }
)

_FREE_FORM = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}

# Every spec field but `cancel` is immutable. One rule per field (rather than one big rule) so
# the API server's message names the field; `has() == has()` also refuses adding or removing an
# optional field, which a plain `self.f == oldSelf.f` rule on the field itself would not see.
_IMMUTABLE_FIELDS = ("image", "input", "vcpus", "memory", "gpus", "gpuType", "timeout", "cache")


def _immutable(field: str) -> dict[str, str]:
    return x_validation(
        f"has(self.{field}) == has(oldSelf.{field}) && "
        f"(!has(self.{field}) || self.{field} == oldSelf.{field})",
        f"spec.{field} is immutable (only spec.cancel may change)",
        fieldPath=f".{field}",
    )


_SPEC_RULES = [_immutable(f) for f in _IMMUTABLE_FIELDS] + [
    x_validation(
        "!has(oldSelf.cancel) || !oldSelf.cancel || (has(self.cancel) && self.cancel)",
        "spec.cancel may only change from false to true",
        fieldPath=".cancel",
    )
]


class JobSpec(CamelModel):
    """spec of a Job: what to run, on what, with which resources."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": _SPEC_RULES})

    image: str = Field(
        description="image is the image to run: name (latest version), name:version, "
        "name:^1.2, name:~1.2.3 or name:1.x, optionally prefixed env@ for another "
        "environment's public image; 1 to 160 characters.",
        min_length=1,
        max_length=160,
    )
    input: Annotated[
        dict[str, Any],
        WithJsonSchema({**_FREE_FORM, "maxProperties": MAX_INPUT_PROPERTIES}),
    ] = Field(
        default_factory=dict,
        description="input is the JSON input, validated against the manifest's input schema; "
        "files are bx:// paths; at most 256 KiB serialised and "
        f"{MAX_INPUT_PROPERTIES} top-level properties.",
    )
    vcpus: int | None = Field(
        default=None,
        description="vcpus is the number of virtual CPUs; default runtime.defaultVcpus of the "
        f"manifest, or 1; 1 to {MAX_VCPUS}.",
        ge=1,
        le=MAX_VCPUS,
    )
    memory: int | None = Field(
        default=None,
        description="memory is the container memory in MB; default and minimum "
        f"runtime.minMem of the manifest; 1 to {MAX_MEMORY_MB}.",
        ge=1,
        le=MAX_MEMORY_MB,
    )
    gpus: int | None = Field(
        default=None,
        description="gpus is the number of GPUs; default 0, or 1 when the manifest says "
        f"gpus: required; 0 to {MAX_GPUS}; refused for images that declare no gpus.",
        ge=0,
        le=MAX_GPUS,
    )
    gpu_type: str | None = Field(
        default=None,
        description="gpuType is the GPU product to run on, e.g. T4 (nodes labelled with that "
        "product); 1 to 63 characters of a label value.",
        min_length=1,
        max_length=63,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$",
    )
    timeout: int | None = Field(
        default=None,
        description="timeout is the most seconds the job may run (credits are reserved for it); "
        f"default from the operator's configuration; 1 to {MAX_TIMEOUT_SECONDS}.",
        ge=1,
        le=MAX_TIMEOUT_SECONDS,
    )
    cache: bool = Field(
        default=True,
        description="cache lets a job with the same image digest and input reuse an earlier "
        "successful result at no charge; default true.",
    )
    cancel: bool = Field(
        default=False,
        description="cancel requests cancellation; may only change from false to true.",
    )


class JobImage(CamelModel):
    """The image a job resolved to, pinned at admission."""

    coordinates: str | None = Field(
        default=None,
        description="coordinates are the resolved env@name:version; at most 140 characters.",
        max_length=140,
    )
    container: str | None = Field(
        default=None,
        description="container is the digest-pinned container image run; at most 512 characters.",
        max_length=512,
    )


class JobCredits(CamelModel):
    """Credit accounting of one job."""

    reserved: float = Field(
        default=0, description="reserved is held at admission (price x timeout); 0 or more.", ge=0
    )
    charged: float = Field(
        default=0, description="charged is price x actual run time; 0 or more.", ge=0
    )


class JobChildren(CamelModel):
    """A pipeline's children in numbers (the list: ``kubectl get bxjob -l batchx.io/parent=P``).

    A summary, not a list: a pipeline may run thousands of children, and a list would grow the
    parent toward the API server's object size limit and rewrite it at every child's change.
    """

    total: int = Field(default=0, description="total is how many children it created.", ge=0)
    active: int = Field(
        default=0, description="active is how many have not finished (waiting or running).", ge=0
    )
    succeeded: int = Field(
        default=0, description="succeeded is how many ended SUCCEEDED or WARNING.", ge=0
    )
    failed: int = Field(
        default=0, description="failed is how many ended in any other final state.", ge=0
    )
    cached: int = Field(
        default=0, description="cached is how many were served from the cache.", ge=0
    )
    credits: float = Field(
        default=0,
        description="credits is what the finished children were charged, together; 0 or more.",
        ge=0,
    )


class JobTransfer(CamelModel):
    """The files a job's runner moved between the store and the pod, as its reports say."""

    input_files: int = Field(
        default=0, description="inputFiles is how many files were downloaded; 0 or more.", ge=0
    )
    input_bytes: int = Field(
        default=0, description="inputBytes is how many bytes were downloaded; 0 or more.", ge=0
    )
    output_files: int = Field(
        default=0, description="outputFiles is how many files were uploaded; 0 or more.", ge=0
    )
    output_bytes: int = Field(
        default=0, description="outputBytes is how many bytes were uploaded; 0 or more.", ge=0
    )


class JobResources(CamelModel):
    """What an admitted job holds: its spec's resources with the defaults applied."""

    vcpus: int = Field(
        description=f"vcpus are the virtual CPUs; 1 to {MAX_VCPUS}.", ge=1, le=MAX_VCPUS
    )
    memory: int = Field(
        description=f"memory is the container memory in MB; 1 to {MAX_MEMORY_MB}.",
        ge=1,
        le=MAX_MEMORY_MB,
    )
    gpus: int = Field(
        description=f"gpus is the number of GPUs; 0 to {MAX_GPUS}.", ge=0, le=MAX_GPUS
    )
    gpu_type: str | None = Field(
        default=None,
        description="gpuType is the GPU product the job runs on; at most 63 characters.",
        max_length=63,
    )
    timeout: int = Field(
        description=f"timeout is the most seconds the job may run; 1 to {MAX_TIMEOUT_SECONDS}.",
        ge=1,
        le=MAX_TIMEOUT_SECONDS,
    )


class JobAdmission(CamelModel):
    """What admission decided, recorded with the move to STARTING and read back, never
    recomputed, for as long as the job runs (as Kueue keeps a Workload's status.admission).

    The other halves of the decision are stable fields of their own, written in the same status
    write: the resolved image in status.image and the reservation in status.credits.reserved.
    """

    resources: JobResources = Field(description="resources are what the job was admitted with.")
    rate: float = Field(
        description="rate is the price of the job in credits per hour of run time, fixed at "
        "admission (the charge is rate x run seconds, at most the reservation); 0 or more.",
        ge=0,
    )
    cache_key: str | None = Field(
        default=None,
        description="cacheKey identifies the job's result for execution caching: sha256 of "
        "the pinned image digest, manifest and input with files replaced by their content "
        "digests (docs/caching.md); unset when the job has none; at most 128 characters.",
        max_length=128,
    )
    admitted_at: datetime = Field(description="admittedAt is when the job was admitted (RFC 3339).")


class JobStatus(CamelModel):
    """status of a Job, written by the operator only."""

    state: JobState | None = Field(default=None, description="state is the BatchX job state.")
    image: JobImage | None = Field(
        default=None, description="image is the resolution of spec.image, pinned at admission."
    )
    admission: JobAdmission | None = Field(
        default=None,
        description="admission is what admission decided (resources, rate), set when the job "
        "is admitted.",
    )
    output: Annotated[dict[str, Any] | None, WithJsonSchema(_FREE_FORM)] = Field(
        default=None,
        description="output is the job's output JSON, files rewritten as bx:// paths.",
    )
    exit_code: int | None = Field(
        default=None,
        description="exitCode is the container's exit code; -2147483648 to 2147483647.",
        ge=-(2**31),
        le=2**31 - 1,
    )
    message: str | None = Field(
        default=None,
        description="message explains the outcome (errorCodes/warningCodes text when listed); "
        "at most 32768 characters.",
        max_length=32768,
    )
    cached: bool | None = Field(
        default=None, description="cached is true when the result was reused from cachedFrom."
    )
    cached_from: str | None = Field(
        default=None,
        description="cachedFrom is the name of the job whose result was reused; at most 253 "
        "characters.",
        max_length=253,
    )
    credits: JobCredits | None = Field(default=None, description="credits of this job.")
    transfer: JobTransfer | None = Field(
        default=None,
        description="transfer is what the job's files cost in store traffic, set when it ends.",
    )
    children: JobChildren | None = Field(
        default=None, description="children summarises a pipeline's child jobs."
    )
    started_at: datetime | None = Field(
        default=None, description="startedAt is when the container started (RFC 3339)."
    )
    finished_at: datetime | None = Field(
        default=None, description="finishedAt is when the job reached a final state (RFC 3339)."
    )
    pod_name: str | None = Field(
        default=None,
        description="podName is the Pod that runs the job; at most 253 characters.",
        max_length=253,
    )
    conditions: ConditionList = Field(default_factory=list)
    observed_generation: int | None = Field(
        default=None,
        description="observedGeneration is the metadata.generation this status reflects.",
        ge=0,
    )


class Job(CamelModel):
    """The spec and status of a Job custom resource."""

    spec: JobSpec = Field(description="spec is the requested execution.")
    status: JobStatus | None = Field(
        default=None, description="status is the observed state, written by the operator."
    )
