"""Job admission: is a Job valid, what does it run on, and may it start now?

Admission is two pure steps, because the first depends on one job and the second on all of an
environment's jobs together:

1. `judge_job` (per job): resolve ``spec.image`` among the Images the job may see, validate
   ``spec.input`` against the manifest's input schema, apply the resource defaults and rules, and
   price the reservation. The verdict is a `Refusal` (the job ends ``FAILED`` with a CamelCase
   reason and the JSON path of the offending value; nothing is created) or a `Request` (what the
   job needs to run).
2. `admit_fifo` (per environment): given the environment's quota, credit balance and running
   jobs, and the waiting requests oldest first, which start now and why the others wait. The
   result is `Admit` (with the reservation) or `Wait` (``QUEUED``, with the numbers).

Resolution is pinned: the first verdict stores ``status.image`` (coordinates and container), and
later verdicts for the same job (a queued job re-judged when room frees) look the pinned
coordinates up exactly, so a newer version imported while a job waits does not change what it
runs. An Image deleted in between makes a waiting job fail with ``ImageNotFound`` (it never ran).
Once admitted, a job is never judged again: its decision is recorded (``status.admission``) and
read back (`batchx.planning.job_record`), so deleting its Image changes nothing for it.

Resource rules (BRIEF section 3):

- ``vcpus``: default ``runtime.defaultVcpus``, else 1;
- ``memory`` (MB, i.e. MiB as in Kubernetes' ``Mi``): default ``runtime.minMem``, never below it;
- ``gpus``: default 1 when the manifest says ``gpus: required``, else 0; at least 1 when
  required; any GPU request on an image that declares no ``gpus`` is refused;
- ``gpuType`` only makes sense with at least one GPU, and must be a GPU product the cluster
  offers: the ``nvidia.com/gpu.product`` label of some node, or one of the operator's
  ``gpuTypes`` (products of node pools that scale up from zero, so no node shows them yet).
  Any other is refused (``InvalidResources``, with the products offered): a typo such as ``t4``
  fails at once instead of leaving a Pod that no node can take. When the operator may not list
  nodes, or none has the label at all, the check is skipped (fail open: the cluster may label
  its GPUs otherwise). A Pod that still cannot be scheduled (the nodes went away, or are full)
  is judged by `batchx.planning.pod_status.plan_status`: Unschedulable, then FAILED at its timeout;
- ``timeout``: default from the operator's configuration, at most its maximum.

Prices (operator configuration, per hour): a job's rate is
``vcpus x vcpuHour + memory/1024 x gbHour + gpus x gpuHour`` credits per hour. It reserves
``rate x timeout`` at admission (rounded *up* to `CREDIT_QUANTUM` so that no charge can exceed
it) and is charged ``rate x run seconds`` at the end (see `charge`).

Queueing is strictly first-in-first-out with one exception: a request that could not start even
in an otherwise empty environment (it exceeds the whole quota, or its reservation exceeds every
credit the environment could get back without a top-up) waits without blocking the jobs behind
it. Otherwise one such job would stop the whole environment until an admin noticed; it still
waits (not refused) because raising the quota or granting credits lets it start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import ROUND_CEILING, ROUND_HALF_EVEN, Decimal
from enum import StrEnum
from typing import Any

from batchx.domain.coordinates import (
    Coordinates,
    CoordinatesError,
    ImageRef,
    parse_coordinates,
    parse_image_ref,
    resolve_ref,
)
from batchx.domain.manifest import CompiledManifest, ManifestError, compile_manifest
from batchx.domain.quantity import parse_quantity
from batchx.domain.validation import FileMode, FileRef, Problem
from batchx.models import (
    EnvironmentQuota,
    Job,
    JobAdmission,
    JobCredits,
    JobImage,
    JobResources,
    JobState,
    JobStatus,
)
from batchx.planning.job_transition import SUCCEEDED_CONDITION, job_transition
from batchx.settings import Prices

__all__ = [
    "CREDIT_QUANTUM",
    "MB_PER_GB",
    "SUCCEEDED_CONDITION",
    "Admit",
    "Capacity",
    "ImageCandidate",
    "JobPolicy",
    "Reason",
    "Refusal",
    "Request",
    "Resources",
    "Usage",
    "Wait",
    "admission_status",
    "admit_fifo",
    "cancelled_status",
    "charge",
    "hourly_rate",
    "image_candidate",
    "judge_job",
    "parse_quantity",
    "rate_of",
    "reservation",
    "submitted_status",
]

# Credits are kept to a millionth: fine enough for one vCPU-second at any sane price, coarse
# enough that float round trips through the API (JSON numbers) do not invent differences.
CREDIT_QUANTUM = Decimal("0.000001")
MB_PER_GB = 1024  # memory is in MB as Kubernetes' Mi; a GB-hour is 1024 of them for an hour
_SECONDS_PER_HOUR = 3600


class Reason(StrEnum):
    """CamelCase reasons of the ``Succeeded`` condition set by admission."""

    INVALID_IMAGE_REFERENCE = "InvalidImageReference"
    IMAGE_NOT_FOUND = "ImageNotFound"
    INVALID_INPUT = "InvalidInput"
    INPUT_FILE_NOT_FOUND = "InputFileNotFound"  # a bx:// path of the input is not in the index
    INVALID_RESOURCES = "InvalidResources"
    QUOTA_EXCEEDED = "QuotaExceeded"
    INSUFFICIENT_CREDITS = "InsufficientCredits"
    POD_REJECTED = "PodRejected"  # the API server refused the planned Pod (not quota)
    ENVIRONMENT_NOT_FOUND = "EnvironmentNotFound"  # waits: no Environment owns the namespace
    OPERATOR_NOT_CONFIGURED = "OperatorNotConfigured"  # a setting every job needs is missing
    # Waits: an identical job (same cache key, batchx.planning.job_cache) is running; served
    # from its result when it succeeds.
    WAITING_FOR_IDENTICAL_JOB = "WaitingForIdenticalJob"


# ------------------------------------------------------------------------------------ inputs


@dataclass(frozen=True)
class JobPolicy:
    """The operator configuration admission needs (built from `batchx.settings.Settings`)."""

    prices: Prices = field(default_factory=Prices)
    default_timeout: int = 3600
    max_timeout: int = 7 * 24 * 3600


@dataclass(frozen=True)
class ImageCandidate:
    """An accepted Image a job may resolve to: one of its environment's, or a public one.

    The reconciler lists the Ready Images of the job's namespace and the public Ready Images of
    other namespaces; `public` decides whether a job of *another* environment may use it.
    """

    coordinates: Coordinates
    container: str
    manifest: Mapping[str, Any]
    public: bool = False


@dataclass(frozen=True)
class Resources:
    """What one job holds while it runs (after defaults)."""

    vcpus: int
    memory_mb: int
    gpus: int
    gpu_type: str | None
    timeout: int

    def to_model(self) -> JobResources:
        return JobResources(
            vcpus=self.vcpus,
            memory=self.memory_mb,
            gpus=self.gpus,
            gpu_type=self.gpu_type,
            timeout=self.timeout,
        )

    @classmethod
    def of_model(cls, model: JobResources) -> Resources:
        return cls(model.vcpus, model.memory, model.gpus, model.gpu_type, model.timeout)


@dataclass(frozen=True)
class Refusal:
    """The job can never run as written: FAILED, ``Succeeded=False`` with this reason."""

    reason: Reason
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"


@dataclass(frozen=True)
class Request:
    """A valid job: what it runs, on what, and at which price (pure data, no decision yet)."""

    name: str
    created: str
    image: JobImage
    manifest: CompiledManifest = field(compare=False, repr=False)
    resources: Resources
    files: tuple[FileRef, ...]
    rate: Decimal
    reservation: Decimal
    # The manifest as the Image holds it: kept with the job's plan (batchx.planning.job_record).
    manifest_document: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)
    # The execution cache key (batchx.planning.job_cache), set by the admission pass once the
    # input files' digests are read from the index; None: the job has none (never cached).
    cache_key: str | None = None


def image_candidate(body: Mapping[str, Any]) -> ImageCandidate | None:
    """The candidate an Image object (as the API returns it) offers, or None when it is not
    accepted (not Ready, no coordinates) or is being deleted.

    The operator's admission and the client's check before submitting both read Images with
    this, so they agree on what a job may resolve to.
    """
    status = body.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    spec = body.get("spec") or {}
    meta = body.get("metadata") or {}
    if not ready or not status.get("coordinates") or meta.get("deletionTimestamp"):
        return None
    try:
        coordinates = parse_coordinates(str(status["coordinates"]))
    except CoordinatesError:
        return None
    return ImageCandidate(
        coordinates, str(spec.get("image")), spec.get("manifest") or {}, bool(spec.get("public"))
    )


# --------------------------------------------------------------------------------- judging


def judge_job(
    job: Job,
    *,
    name: str,
    namespace: str,
    created: str,
    images: Iterable[ImageCandidate],
    policy: JobPolicy,
) -> Request | Refusal:
    """Validate one job and price it; see the module docstring for the rules."""
    resolved = _resolve(job, namespace, list(images))
    if isinstance(resolved, Refusal):
        return resolved
    try:
        compiled = compile_manifest(dict(resolved.manifest))
    except ManifestError as err:  # an accepted Image never has one; a racing edit could
        return Refusal(
            Reason.IMAGE_NOT_FOUND,
            "$.spec.image",
            f"image {resolved.coordinates} has an invalid manifest: {err.problems[0]}",
        )
    resources = _resources(job, compiled, policy)
    if isinstance(resources, Refusal):
        return resources
    checked = compiled.input.validate(job.spec.input, FileMode.BX)
    if not checked.ok:
        return _input_refusal(checked.problems)
    return Request(
        name=name,
        created=created,
        image=JobImage(coordinates=str(resolved.coordinates), container=resolved.container),
        manifest=compiled,
        resources=resources,
        files=checked.files,
        rate=hourly_rate(resources, policy.prices),
        reservation=reservation(resources, policy.prices),
        manifest_document=resolved.manifest,
    )


def _resolve(job: Job, namespace: str, images: list[ImageCandidate]) -> ImageCandidate | Refusal:
    pinned = job.status.image if job.status is not None else None
    if pinned is not None and pinned.coordinates:
        # Already resolved once: look the same image up again (see "Resolution is pinned").
        try:
            wanted = parse_coordinates(pinned.coordinates)
        except CoordinatesError as err:
            return Refusal(Reason.IMAGE_NOT_FOUND, "$.status.image.coordinates", err.reason)
        match = next((i for i in images if i.coordinates == wanted), None)
        if match is None or not _visible(match, namespace):
            return Refusal(
                Reason.IMAGE_NOT_FOUND,
                "$.spec.image",
                f"image {wanted} (resolved from {job.spec.image!r}) no longer exists",
            )
        return match
    try:
        ref = parse_image_ref(job.spec.image)
    except CoordinatesError as err:
        return Refusal(Reason.INVALID_IMAGE_REFERENCE, "$.spec.image", err.reason)
    visible = [i for i in images if _visible(i, namespace)]
    coordinates = resolve_ref(ref, (i.coordinates for i in visible), namespace)
    if coordinates is None:
        return Refusal(Reason.IMAGE_NOT_FOUND, "$.spec.image", _not_found(ref, namespace, images))
    return next(i for i in visible if i.coordinates == coordinates)


def _visible(image: ImageCandidate, namespace: str) -> bool:
    return image.coordinates.environment == namespace or image.public


def _not_found(ref: ImageRef, namespace: str, images: list[ImageCandidate]) -> str:
    base = ref.base_name(namespace)
    versions = sorted(i.coordinates.version for i in images if i.coordinates.base_name == base)
    shown = f"{ref}" if ref.environment else f"{namespace}@{ref}"
    if not versions:
        return f"no image {base} in the cluster (reference {shown!r})"
    hidden = base.environment != namespace and not any(
        i.public for i in images if i.coordinates.base_name == base
    )
    if hidden:
        return f"image {base} exists but is not public, so environment {namespace} cannot run it"
    listed = ", ".join(str(v) for v in versions[-10:])
    return f"no version of {base} matches {str(ref.selector) or 'latest'!r} (available: {listed})"


def _resources(job: Job, compiled: CompiledManifest, policy: JobPolicy) -> Resources | Refusal:
    spec, manifest = job.spec, compiled.manifest
    memory = spec.memory if spec.memory is not None else manifest.min_mem
    if memory < manifest.min_mem:
        return Refusal(
            Reason.INVALID_RESOURCES,
            "$.spec.memory",
            f"memory {memory} MB is below the image's minimum runtime.minMem {manifest.min_mem} MB",
        )
    gpus = spec.gpus if spec.gpus is not None else manifest.default_gpus
    if gpus > 0 and manifest.gpus is None:
        return Refusal(
            Reason.INVALID_RESOURCES,
            "$.spec.gpus",
            f"{gpus} GPUs requested, but image {manifest.name}:{manifest.version} declares no "
            "GPU support (its manifest has no runtime.gpus)",
        )
    if gpus == 0 and manifest.gpus == "required":
        return Refusal(
            Reason.INVALID_RESOURCES,
            "$.spec.gpus",
            f"image {manifest.name}:{manifest.version} requires GPUs (runtime.gpus: required); "
            "gpus must be at least 1, got 0",
        )
    if spec.gpu_type is not None and gpus == 0:
        return Refusal(
            Reason.INVALID_RESOURCES,
            "$.spec.gpuType",
            f"gpuType {spec.gpu_type!r} needs at least one GPU, but gpus is 0",
        )
    timeout = spec.timeout if spec.timeout is not None else policy.default_timeout
    if timeout > policy.max_timeout:
        return Refusal(
            Reason.INVALID_RESOURCES,
            "$.spec.timeout",
            f"timeout {timeout} s exceeds the operator's maximum {policy.max_timeout} s",
        )
    return Resources(
        vcpus=spec.vcpus if spec.vcpus is not None else manifest.default_vcpus,
        memory_mb=memory,
        gpus=gpus,
        gpu_type=spec.gpu_type,
        timeout=timeout,
    )


def _input_refusal(problems: Sequence[Problem]) -> Refusal:
    rooted = [p.under("$.spec.input") for p in problems]
    first, rest = rooted[0], rooted[1:]
    extra = "".join(f"; {p}" for p in rest[:9])
    more = f"; and {len(rest) - 9} more" if len(rest) > 9 else ""
    return Refusal(Reason.INVALID_INPUT, first.path, first.message + extra + more)


# ---------------------------------------------------------------------------------- prices


def hourly_rate(resources: Resources, prices: Prices) -> Decimal:
    """Credits per hour of running `resources` (exact decimal arithmetic)."""
    return (
        resources.vcpus * _dec(prices.vcpu_hour)
        + Decimal(resources.memory_mb) / MB_PER_GB * _dec(prices.gb_hour)
        + resources.gpus * _dec(prices.gpu_hour)
    )


def reservation(resources: Resources, prices: Prices) -> Decimal:
    """Credits held at admission: rate x timeout, rounded up so every charge fits inside."""
    amount = hourly_rate(resources, prices) * resources.timeout / _SECONDS_PER_HOUR
    return amount.quantize(CREDIT_QUANTUM, rounding=ROUND_CEILING)


def charge(rate: Decimal, timeout: int, run_seconds: int) -> Decimal:
    """Credits charged for `run_seconds` at `rate` credits/hour, never more than the reservation.

    `rate` is the one recorded at admission (``status.admission.rate``), so a price change
    while a job runs changes neither its reservation nor its charge. The run time is capped at
    the timeout (the job is stopped there anyway; a late status must not charge beyond what was
    reserved).
    """
    seconds = max(0, min(run_seconds, timeout))
    exact = (rate * seconds / _SECONDS_PER_HOUR).quantize(CREDIT_QUANTUM, rounding=ROUND_HALF_EVEN)
    ceiling = (rate * timeout / _SECONDS_PER_HOUR).quantize(CREDIT_QUANTUM, rounding=ROUND_CEILING)
    return min(exact, ceiling)


def rate_of(admission: JobAdmission) -> Decimal:
    """The recorded rate as the exact decimal it was computed as (JSON carries a float)."""
    return _dec(float(admission.rate))


def _dec(value: float) -> Decimal:
    # repr(float) is the shortest round trip: a configured 0.1 is 0.1, not 0.1000000000000000055.
    return Decimal(repr(value))


# -------------------------------------------------------------------------------- capacity


@dataclass(frozen=True)
class Usage:
    """Resources held by admitted, unfinished jobs (or asked for by one request)."""

    cpu: Decimal = Decimal(0)
    memory_bytes: int = 0
    gpus: int = 0
    jobs: int = 0

    @classmethod
    def of(cls, resources: Resources) -> Usage:
        return cls(Decimal(resources.vcpus), resources.memory_mb * 2**20, resources.gpus, 1)

    def __add__(self, other: Usage) -> Usage:
        return Usage(
            self.cpu + other.cpu,
            self.memory_bytes + other.memory_bytes,
            self.gpus + other.gpus,
            self.jobs + other.jobs,
        )


@dataclass(frozen=True)
class Capacity:
    """An environment's room: its quota (None fields = unlimited), what runs, the balance."""

    cpu: Decimal | None = None
    memory_bytes: int | None = None
    gpus: int | None = None
    jobs: int | None = None
    running: Usage = Usage()
    balance: Decimal = Decimal(0)
    # Reservations of the running jobs: released when they finish, so the most the balance can
    # reach without a top-up is balance + running_reserved.
    running_reserved: Decimal = Decimal(0)
    # Why no job can start at all (the operator lacks a setting every job needs), or None.
    unavailable: str | None = None

    @classmethod
    def of(
        cls,
        quota: EnvironmentQuota | None,
        *,
        running: Usage,
        balance: Decimal,
        running_reserved: Decimal,
        unavailable: str | None = None,
    ) -> Capacity:
        quota = quota or EnvironmentQuota()
        return cls(
            cpu=None if quota.cpu is None else parse_quantity(quota.cpu),
            memory_bytes=None if quota.memory is None else int(parse_quantity(quota.memory)),
            gpus=quota.gpus,
            jobs=quota.jobs,
            running=running,
            balance=balance,
            running_reserved=running_reserved,
            unavailable=unavailable,
        )


@dataclass(frozen=True)
class Admit:
    """Start the job now, holding `reservation` credits."""

    request: Request

    @property
    def reservation(self) -> Decimal:
        return self.request.reservation


@dataclass(frozen=True)
class Wait:
    """The job stays QUEUED: `reason` is QuotaExceeded, InsufficientCredits or
    OperatorNotConfigured; `message` has the numbers or the missing setting. `blocking` is
    False for a job that could not start even in an empty environment."""

    request: Request
    reason: Reason
    message: str
    blocking: bool


def admit_fifo(requests: Sequence[Request], capacity: Capacity) -> list[Admit | Wait]:
    """Decide, oldest first, which waiting requests start now (see the module docstring).

    `requests` are sorted here by (creation time, name), so the answer never depends on the
    order the caller listed them in. Each admitted request takes its room and credits before the
    next is considered; the first one that does not fit blocks everything behind it (they wait
    with its reason and numbers), except requests that cannot fit at all, which never block.

    An operator without a setting every job needs (`Capacity.unavailable`) admits nothing: each
    request waits with ``OperatorNotConfigured`` naming the setting, reserving nothing, and
    starts once the operator is configured (as Kueue holds workloads of an inactive queue).
    """
    if capacity.unavailable is not None:
        return [
            Wait(r, Reason.OPERATOR_NOT_CONFIGURED, capacity.unavailable, blocking=False)
            for r in sorted(requests, key=lambda r: (r.created, r.name))
        ]
    decisions: list[Admit | Wait] = []
    running, balance = capacity.running, capacity.balance
    blocker: Wait | None = None
    for request in sorted(requests, key=lambda r: (r.created, r.name)):
        need = Usage.of(request.resources)
        ceiling = capacity.balance + capacity.running_reserved
        never = _shortfall(need, Usage(), ceiling, request, capacity)
        if never is not None:
            reason, message = never
            decisions.append(Wait(request, reason, _NEVER + message, blocking=False))
        elif blocker is not None:
            decisions.append(
                Wait(
                    request,
                    blocker.reason,
                    f"waiting (first in, first out) behind job {blocker.request.name}, which "
                    f"{blocker.message}",
                    blocking=True,
                )
            )
        elif (short := _shortfall(need, running, balance, request, capacity)) is not None:
            blocker = Wait(request, short[0], short[1], blocking=True)
            decisions.append(blocker)
        else:
            decisions.append(Admit(request))
            running, balance = running + need, balance - request.reservation
    return decisions


_NEVER = "cannot start even with nothing else running: "


def _shortfall(
    need: Usage, running: Usage, balance: Decimal, request: Request, capacity: Capacity
) -> tuple[Reason, str] | None:
    """Why `need` does not fit next to `running` with `balance`, with the numbers; or None."""
    total = running + need
    quota: list[str] = []
    if capacity.jobs is not None and total.jobs > capacity.jobs:
        quota.append(f"quota.jobs is {capacity.jobs} and {running.jobs} jobs are running")
    if capacity.cpu is not None and total.cpu > capacity.cpu:
        quota.append(
            f"needs {_num(need.cpu)} vCPUs, quota.cpu is {_num(capacity.cpu)} and running jobs "
            f"hold {_num(running.cpu)}"
        )
    if capacity.memory_bytes is not None and total.memory_bytes > capacity.memory_bytes:
        quota.append(
            f"needs {_mb(need.memory_bytes)} MB of memory, quota.memory is "
            f"{_mb(capacity.memory_bytes)} MB and running jobs hold {_mb(running.memory_bytes)} MB"
        )
    if capacity.gpus is not None and total.gpus > capacity.gpus:
        quota.append(
            f"needs {need.gpus} GPUs, quota.gpus is {capacity.gpus} and running jobs hold "
            f"{running.gpus}"
        )
    if quota:
        return Reason.QUOTA_EXCEEDED, "; ".join(quota)
    if request.reservation > balance:
        return Reason.INSUFFICIENT_CREDITS, (
            f"needs {_num(request.reservation)} credits reserved ({request.resources.timeout} s "
            f"at {_num(request.rate)} credits/hour) and the balance is {_num(balance)}"
        )
    return None


def _num(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros: 2, 0.5, 1536."""
    return format(value.normalize(), "f")


def _mb(value: int) -> str:
    return _num(Decimal(value) / 2**20)


# ---------------------------------------------------------------------------------- status


def admission_status(
    job: Job,
    decision: Refusal | Wait | Admit,
    *,
    generation: int,
    now: datetime,
) -> JobStatus:
    """The Job status an admission decision writes (one status write per decision).

    - `Refusal`: FAILED, ``Succeeded=False`` with the reason and ``<JSON path>: <message>``; the
      image is recorded when it was resolved, nothing is reserved or charged.
    - `Wait`: QUEUED, ``Succeeded=Unknown`` with QuotaExceeded/InsufficientCredits and the
      numbers; the resolution is pinned (``status.image``), nothing is reserved.
    - `Admit`: STARTING, ``Succeeded=Unknown`` (Admitted), the reservation in
      ``status.credits.reserved`` and the decision in ``status.admission`` (resources, rate):
      what the job's reconcile reads from then on instead of judging the job again. It must be
      stored before the pod is created, so the ledger counts the reservation from the moment
      the job can run.
    """
    previous = job.status or JobStatus()
    admission = previous.admission
    if isinstance(decision, Refusal):
        state, reason = JobState.FAILED, decision.reason.value
        message, image, reserved = str(decision), previous.image, Decimal(0)
    elif isinstance(decision, Wait):
        state, reason = JobState.QUEUED, decision.reason.value
        message, image, reserved = decision.message, decision.request.image, Decimal(0)
    else:
        state, reason = JobState.STARTING, "Admitted"
        request = decision.request
        res = request.resources
        message = (
            f"admitted: {res.vcpus} vCPUs, {res.memory_mb} MB, {res.gpus} GPUs, timeout "
            f"{res.timeout} s; {_num(request.reservation)} credits reserved"
        )
        image, reserved = request.image, request.reservation
        admission = JobAdmission(
            resources=res.to_model(),
            rate=float(request.rate),
            cache_key=request.cache_key,
            admitted_at=now,
        )
    return job_transition(
        previous,
        state,
        reason=reason,
        condition_message=message,
        generation=generation,
        now=now,
        image=image,
        admission=admission,
        message=message if state is JobState.FAILED else None,
        credits=JobCredits(reserved=float(reserved), charged=0),
        finished_at=now if state is JobState.FAILED else None,
    )


def submitted_status(job: Job, *, generation: int, now: datetime) -> JobStatus:
    """SUBMITTED, BatchX's first state: what a new job shows until admission decides."""
    return job_transition(
        job.status or JobStatus(),
        JobState.SUBMITTED,
        reason="Submitted",
        condition_message="waiting for admission",
        generation=generation,
        now=now,
    )


def cancelled_status(job: Job, *, generation: int, now: datetime) -> JobStatus:
    """CANCELLED for a job cancelled before it was admitted: it never ran, nothing is charged."""
    previous = job.status or JobStatus()
    message = "cancelled (spec.cancel) before it started"
    return job_transition(
        previous,
        JobState.CANCELLED,
        reason="Cancelled",
        condition_message=message,
        generation=generation,
        now=now,
        image=previous.image,
        message=message,
        credits=JobCredits(reserved=0, charged=0),
        finished_at=now,
    )
