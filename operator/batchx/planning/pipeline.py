"""Pipelines: which child jobs a running pipeline may start, and how long they may run.

A pipeline is an image whose manifest lists ``pipeline.steps``; its container creates child Jobs
(`batchx.planning.job_identity` gives it the identity to do so). A child names its parent with
the label ``batchx.io/parent=<parent job>`` and an ownerReference to it (the API server requires
both of a pipeline identity: the ValidatingAdmissionPolicy in ``crds/``), and this module is the
operator's half of the contract, applied when the child is judged (`judge_child`):

- **The parent must be running**: admitted and not finished. A child whose parent is waiting,
  finished or gone is refused (``ParentNotRunning``): nothing would wait for its result.
- **Steps match by base name and major**: a child's resolved image is allowed when some step
  ``env@name:X.Y.Z`` has the same ``env@name``, the same major ``X`` and a version not below
  ``X.Y.Z`` (semver's caret range ``^X.Y.Z``). A patch or minor release of a step keeps the
  pipeline working without a new pipeline version, as the default image listing (latest of each
  major) suggests; a new major, whose input or output may differ, needs the pipeline to list it.
  Anything else is refused with ``StepNotAllowed`` naming the steps.
- **The parent's deadline caps the child**: a child's timeout is cut to the seconds left until
  the parent's own timeout ends (its reservation shrinks with it); the cap is recorded with the
  admission, so it is what the child's pod is stopped at.

Admission order (the no-deadlock rule, used by `batchx.planning.job_admission.admit_fifo`):
a running parent holds quota while it waits for its children, so strict first in, first out
deadlocks in two ways: its child queues behind jobs submitted after the parent that cannot start
until the parent ends (or that are pipelines themselves, waiting for their own children), or the
parent took the last room and its child can never fit. Hence:

1. children of running parents are considered before every other waiting job (in their parents'
   order, then their own): the parent already holds its share, and the sooner its children run
   the sooner it frees it;
2. a pipeline is admitted only when, besides itself, the quota has room for its largest step
   (and for the largest step of every pipeline already running): `step_usage` at the steps'
   default resources. The parents running then never hold so much that no child can start once
   the plain jobs finish. A child asking for more than its step's defaults can still wait for
   plain jobs to end, never for its own parent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from batchx.domain.coordinates import Coordinates, CoordinatesError, parse_coordinates
from batchx.domain.jsonpath import WILDCARD, parse_path
from batchx.domain.manifest import ManifestError, compile_manifest
from batchx.domain.validation import FileRef
from batchx.models import JobChildren, JobState, JobStatus
from batchx.planning import labels
from batchx.planning.job_admission import (
    ImageCandidate,
    Reason,
    Refusal,
    Request,
    Usage,
    hourly_rate,
    reservation,
)
from batchx.settings import Prices

__all__ = [
    "Parent",
    "by_coordinates",
    "children_summary",
    "judge_child",
    "largest",
    "name_refusal",
    "parent_of",
    "pipeline_steps",
    "staged_files",
    "step_allowed",
    "step_usage",
]


@dataclass(frozen=True)
class Parent:
    """What a child's judgement needs of its parent Job."""

    name: str
    uid: str
    running: bool  # admitted and not finished
    steps: tuple[Coordinates, ...] | None  # None: the parent's image is not a pipeline (or gone)
    deadline: datetime | None  # when the parent's own timeout ends (None: not started yet)
    created: str = ""  # the parent's creationTimestamp: its children queue in its place


def step_allowed(image: Coordinates, steps: Iterable[Coordinates]) -> bool:
    """Whether `image` is one of `steps` (same base name, same major, not older: see above)."""
    return any(
        image.base_name == step.base_name
        and image.version.major == step.version.major
        and image.version >= step.version
        for step in steps
    )


def judge_child(
    request: Request, parent: Parent | None, *, owner_uid: str | None, now: datetime, prices: Prices
) -> Request | Refusal:
    """The child's request as the parent allows it (timeout capped), or why it may not run.

    `owner_uid` is the uid of the child's ownerReference to a Job of the parent's name; the
    policy in the API server requires it, this checks it again (a Job created by an admin with
    only the label is still held to it).
    """
    if parent is None:
        return Refusal(
            Reason.PARENT_NOT_RUNNING, "$.metadata.labels", "the parent job does not exist"
        )
    if owner_uid != parent.uid:
        return Refusal(
            Reason.PARENT_NOT_RUNNING,
            "$.metadata.ownerReferences",
            f"a child of job {parent.name} must have an ownerReference to it (uid {parent.uid})",
        )
    if not parent.running:
        return Refusal(
            Reason.PARENT_NOT_RUNNING,
            "$.metadata.labels",
            f"parent job {parent.name} is not running (waiting or finished)",
        )
    coordinates = _coordinates(request)
    if parent.steps is None or coordinates is None or not step_allowed(coordinates, parent.steps):
        listed = ", ".join(str(s) for s in parent.steps or ()) or "none"
        return Refusal(
            Reason.STEP_NOT_ALLOWED,
            "$.spec.image",
            f"image {request.image.coordinates} is not one of the steps of parent job "
            f"{parent.name} (pipeline.steps: {listed}; a step allows the same base name and "
            "major, at least its version)",
        )
    if parent.deadline is None:
        return request
    left = int((parent.deadline - now).total_seconds())
    if left < 1:
        return Refusal(
            Reason.PARENT_NOT_RUNNING,
            "$.spec.timeout",
            f"parent job {parent.name} reached its deadline {parent.deadline.isoformat()}",
        )
    if request.resources.timeout <= left:
        return request
    resources = replace(request.resources, timeout=left)
    return replace(
        request,
        resources=resources,
        rate=hourly_rate(resources, prices),
        reservation=reservation(resources, prices),
    )


def _coordinates(request: Request) -> Coordinates | None:
    if request.image.coordinates is None:
        return None
    try:
        return parse_coordinates(request.image.coordinates)
    except CoordinatesError:
        return None


def step_usage(steps: Sequence[Coordinates], images: Iterable[ImageCandidate]) -> Usage | None:
    """The room the largest of `steps` needs at its image's default resources (componentwise
    maximum, as one job); None when no step resolves to an Image."""
    listed = list(images)
    usages = []
    for step in steps:
        matching = [i for i in listed if step_allowed(i.coordinates, (step,))]
        if not matching:
            continue
        newest = max(matching, key=lambda i: i.coordinates.version)
        try:
            manifest = compile_manifest(dict(newest.manifest)).manifest
        except ManifestError:
            continue
        usages.append(
            Usage(
                Decimal(manifest.default_vcpus), manifest.min_mem * 2**20, manifest.default_gpus, 1
            )
        )
    return largest(usages)


def largest(usages: Iterable[Usage | None]) -> Usage | None:
    """The componentwise maximum of `usages` (None when there are none)."""
    present = [u for u in usages if u is not None]
    if not present:
        return None
    return Usage(
        max(u.cpu for u in present),
        max(u.memory_bytes for u in present),
        max(u.gpus for u in present),
        max(u.jobs for u in present),
    )


def pipeline_steps(
    coordinates: str | None, images: Mapping[str, ImageCandidate]
) -> tuple[Coordinates, ...] | None:
    """The ``pipeline.steps`` of the Image at `coordinates` (None: not a pipeline, or gone).

    `images` by coordinates (`by_coordinates`): an admission pass asks this of every running
    job, so it is a lookup, and a manifest without ``pipeline`` is not even compiled.
    """
    image = images.get(coordinates or "")
    if image is None or not isinstance(image.manifest.get("pipeline"), Mapping):
        return None
    try:
        manifest = compile_manifest(dict(image.manifest)).manifest
    except ManifestError:
        return None
    return None if manifest.pipeline is None else manifest.pipeline.step_coordinates


def by_coordinates(images: Iterable[ImageCandidate]) -> dict[str, ImageCandidate]:
    return {str(i.coordinates): i for i in images}


def parent_of(
    name: str, uid: str, created: str, status: JobStatus, images: Mapping[str, ImageCandidate]
) -> Parent:
    """A parent Job as its children are judged against (see `Parent`)."""
    admission = status.admission
    running = (
        admission is not None
        and status.state is not None
        and status.state not in (JobState.SUBMITTED, JobState.QUEUED)
        and not status.state.is_terminal
    )
    deadline = None
    if admission is not None:
        start = status.started_at or admission.admitted_at
        deadline = start + timedelta(seconds=admission.resources.timeout)
    steps = pipeline_steps(status.image.coordinates if status.image else None, images)
    return Parent(name, uid, running, steps, deadline, created)


def staged_files(request: Request) -> tuple[FileRef, ...]:
    """The input files a job's pod downloads: all of them, except for a pipeline, whose
    container gets ``bx://`` references (it passes them to its children, which download what
    they read) and only the files named by ``pipeline.readInputFiles`` staged as for any job.

    A path names the files at it and under it: ``$.samples`` stages every file inside an
    object or array, ``$.reads[*]`` each item of an array, ``$.reads[0]`` only the first.
    """
    pipeline = request.manifest.manifest.pipeline
    if pipeline is None:
        return request.files
    paths = [parse_path(p) for p in pipeline.read_input_files]
    return tuple(ref for ref in request.files if any(_under(ref.pointer, p) for p in paths))


def _under(pointer: Sequence[str | int], path: tuple[str | int, ...]) -> bool:
    if len(path) > len(pointer):
        return False
    return all(p in (WILDCARD, key) for p, key in zip(path, pointer, strict=False))


PARENT_NAME_MAX = 63  # a label value: each child carries batchx.io/parent=<parent name>


def name_refusal(name: str) -> Refusal | None:
    """A pipeline's name must fit in its children's ``batchx.io/parent`` label."""
    if len(name) <= PARENT_NAME_MAX:
        return None
    return Refusal(
        Reason.INVALID_RESOURCES,
        "$.metadata.name",
        f"a pipeline job's name is at most {PARENT_NAME_MAX} characters (its children carry it "
        f"in the label {labels.PARENT}), got {len(name)}",
    )


def children_summary(statuses: Iterable[JobStatus | None]) -> JobChildren:
    """A pipeline's ``status.children`` from its children's statuses."""
    total = active = succeeded = failed = cached = 0
    credits = Decimal(0)
    for status in statuses:
        total += 1
        state = status.state if status is not None else None
        if status is None or state is None or not state.is_terminal:
            active += 1
            continue
        if state.is_success:
            succeeded += 1
        else:
            failed += 1
        cached += 1 if status.cached else 0
        credits += Decimal(repr(status.credits.charged)) if status.credits else Decimal(0)
    return JobChildren(
        total=total,
        active=active,
        succeeded=succeeded,
        failed=failed,
        cached=cached,
        credits=float(credits),
    )
