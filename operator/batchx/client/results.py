"""What `batchx.client` returns about jobs, images and environments, and the check it makes
before submitting.

`check_job` is the operator's own admission verdict (`planning.job_admission.judge_job`) run on
the client's side, on the Images the user can see: a job the operator would refuse (bad input,
unknown image, memory below ``runtime.minMem``, GPUs for an image without GPU support) is
refused with the same message before anything is created. It never refuses what the operator
might accept: the operator's maximum timeout is not known here, so only the CRD's bound applies,
and an image the user cannot list is left for the operator to judge.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from batchx.client.errors import (
    ImageNotFound,
    InvalidImageReference,
    InvalidInput,
    InvalidResources,
    Refused,
)
from batchx.domain.coordinates import Coordinates, CoordinatesError, parse_coordinates
from batchx.models import Environment, Job, JobState, JobStatus
from batchx.models.job import MAX_TIMEOUT_SECONDS
from batchx.planning import labels
from batchx.planning.image import JSON
from batchx.planning.job_admission import (
    SUCCEEDED_CONDITION,
    ImageCandidate,
    JobPolicy,
    Reason,
    Request,
    judge_job,
)

__all__ = ["EnvironmentInfo", "ImageInfo", "JobRef", "JobResult", "check_job"]

# A job whose container has started has logs (stage-in runs before it, in DOWNLOADING_INPUT).
STARTED_STATES = frozenset({JobState.RUNNING, JobState.UPLOADING_OUTPUT, JobState.CANCELLING})
_REFUSALS: dict[Reason, type[Refused]] = {
    Reason.INVALID_IMAGE_REFERENCE: InvalidImageReference,
    Reason.IMAGE_NOT_FOUND: ImageNotFound,
    Reason.INVALID_INPUT: InvalidInput,
    Reason.INVALID_RESOURCES: InvalidResources,
}


@dataclass(frozen=True)
class JobRef:
    """A submitted Job: its name in its environment's namespace."""

    name: str
    namespace: str

    def __str__(self) -> str:
        return f"{self.namespace}/{self.name}"


@dataclass(frozen=True)
class JobResult:
    """A Job as last seen: its spec's image and input, and the operator's status."""

    ref: JobRef
    image: str
    created: str
    status: JobStatus

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> JobResult:
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        return cls(
            JobRef(str(meta.get("name")), str(meta.get("namespace"))),
            str(spec.get("image", "")),
            str(meta.get("creationTimestamp") or ""),
            JobStatus.model_validate(body.get("status") or {}),
        )

    @property
    def state(self) -> JobState | None:
        return self.status.state

    @property
    def done(self) -> bool:
        return self.state is not None and self.state.is_terminal

    @property
    def ok(self) -> bool:
        """SUCCEEDED or WARNING: the output was collected."""
        return self.state is not None and self.state.is_success

    @property
    def output(self) -> dict[str, Any] | None:
        return self.status.output

    @property
    def exit_code(self) -> int | None:
        return self.status.exit_code

    @property
    def reason(self) -> str | None:
        """The ``Succeeded`` condition's CamelCase reason (QuotaExceeded, ExitCode, ...)."""
        cond = next((c for c in self.status.conditions if c.type == SUCCEEDED_CONDITION), None)
        return cond.reason if cond is not None else None

    @property
    def message(self) -> str | None:
        """The outcome's message, or while waiting the condition's (why it is QUEUED)."""
        if self.status.message:
            return self.status.message
        cond = next((c for c in self.status.conditions if c.type == SUCCEEDED_CONDITION), None)
        return cond.message if cond is not None and cond.message else None

    @property
    def has_logs(self) -> bool:
        return self.state in STARTED_STATES or (self.done and self.status.started_at is not None)

    def to_json(self) -> JSON:
        """What `-o json` prints for a job (the status as the API has it, camelCase)."""
        return {
            "name": self.ref.name,
            "environment": self.ref.namespace,
            "image": self.image,
            "created": self.created,
            "state": self.state.value if self.state else None,
            "reason": self.reason,
            "message": self.message,
            **self.status.model_dump(
                mode="json",
                by_alias=True,
                exclude_none=True,
                include={
                    "output",
                    "exit_code",
                    "cached",
                    "cached_from",
                    "credits",
                    "image",
                    "started_at",
                    "finished_at",
                    "pod_name",
                },
            ),
        }


@dataclass(frozen=True)
class ImageInfo:
    """An Image of an environment, as `bx images` lists it."""

    name: str
    namespace: str
    coordinates: Coordinates | None
    container: str
    public: bool
    latest: bool
    ready: str  # the Ready condition's status: True, False or Unknown
    reason: str
    message: str

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> ImageInfo:
        meta = body.get("metadata") or {}
        spec = body.get("spec") or {}
        status = body.get("status") or {}
        conditions: list[JSON] = status.get("conditions") or []
        cond: JSON = next((c for c in conditions if c.get("type") == "Ready"), {})
        try:
            coordinates = parse_coordinates(str(status["coordinates"]))
        except (KeyError, CoordinatesError):
            coordinates = None
        return cls(
            name=str(meta.get("name")),
            namespace=str(meta.get("namespace")),
            coordinates=coordinates,
            container=str(spec.get("image", "")),
            public=bool(spec.get("public")),
            latest=(meta.get("labels") or {}).get(labels.LATEST) == "true",
            ready=str(cond.get("status", "Unknown")),
            reason=str(cond.get("reason", "")),
            message=str(cond.get("message", "")),
        )

    def to_json(self) -> JSON:
        return {
            "name": self.name,
            "environment": self.namespace,
            "coordinates": str(self.coordinates) if self.coordinates else None,
            "image": self.container,
            "public": self.public,
            "latest": self.latest,
            "ready": self.ready,
            "reason": self.reason,
            "message": self.message,
        }


@dataclass(frozen=True)
class EnvironmentInfo:
    """An Environment the user can see: quota, credits and storage used."""

    name: str
    model: Environment

    @classmethod
    def from_body(cls, body: Mapping[str, Any]) -> EnvironmentInfo:
        model = Environment.model_validate(
            {"spec": body.get("spec") or {}, "status": body.get("status")}
        )
        return cls(str((body.get("metadata") or {}).get("name")), model)

    def to_json(self) -> JSON:
        dumped = self.model.model_dump(mode="json", by_alias=True, exclude_none=True)
        status = dumped.get("status") or {}
        return {
            "name": self.name,
            "quota": dumped["spec"].get("quota") or {},
            "credits": status.get("credits") or {},
            "storage": status.get("storage") or {},
        }


def check_job(
    spec: Mapping[str, Any], *, namespace: str, images: Iterable[ImageCandidate]
) -> Request:
    """The operator's admission verdict on `spec`, or the `Refused` error it would give."""
    try:
        job = Job.model_validate({"spec": dict(spec)})
    except ValidationError as err:
        first = err.errors()[0]
        loc = [str(p) for p in first["loc"] if p != "spec"]
        path = "$.spec" + "".join(f".{p}" for p in loc)
        kind = InvalidInput if loc[:1] == ["input"] else InvalidResources
        raise kind(path, str(first["msg"])) from None
    verdict = judge_job(
        job,
        name="",
        namespace=namespace,
        created="",
        images=images,
        policy=JobPolicy(max_timeout=MAX_TIMEOUT_SECONDS),
    )
    if isinstance(verdict, Request):
        return verdict
    raise _REFUSALS.get(verdict.reason, Refused)(verdict.path, verdict.message)
