"""Job reconcile: admission per environment (first in, first out), then one Pod per job.

Two owners, never writing the same job's status at once:

- `admit` (one pass per environment, serialised and coalesced) owns jobs that were not admitted
  yet (no state, ``SUBMITTED``, ``QUEUED``): it judges each (refusal -> ``FAILED``), asks
  `admit_fifo` which fit the quota and the ledger's fresh balance, and writes ``QUEUED`` (with
  the numbers) or ``STARTING`` (image pinned, credits reserved). The admission status is stored
  *before* any object is created, so the ledger counts the reservation from then on.
- `reconcile_job` (serialised per job) owns admitted jobs: it creates the plan ConfigMap and the
  Pod under deterministic names (AlreadyExists is success, so no job ever gets a second Pod, also
  across operator restarts), and writes `plan_status` of the Pod. The terminal state and the
  charge are one status write. A job that ends re-runs admission for its environment.

Every status write carries the resourceVersion it was computed from: a decision made from a
stale read is refused by the API server (Conflict) and made again from a fresh one.
"""

from __future__ import annotations

import asyncio
import hashlib
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from batchx import API_VERSION
from batchx.clients.kube import Conflict, Forbidden, Invalid, NotFound
from batchx.domain.coordinates import CoordinatesError, parse_coordinates
from batchx.models import EnvironmentQuota, Job, JobState, JobStatus
from batchx.planning import labels
from batchx.planning.job_admission import (
    Admit,
    Capacity,
    ImageCandidate,
    JobPolicy,
    Reason,
    Refusal,
    Request,
    Usage,
    Wait,
    admission_status,
    admit_fifo,
    cancelled_status,
    image_candidate,
    judge_job,
)
from batchx.planning.job_pod import (
    JobRef,
    PodPolicy,
    RunnerReport,
    StatusInputs,
    parse_report,
    plan_config_map,
    plan_pod,
    plan_status,
    pod_finished,
    pod_name,
    stage_out_report,
    staging_plan,
)
from batchx.planning.ledger import JobAccount, credit_totals
from batchx.reconcile import ledger
from batchx.reconcile.context import JSON, Context, Notice, Outcome
from batchx.settings import Settings

PLURAL = "jobs"
WAITING = frozenset({None, JobState.SUBMITTED, JobState.QUEUED})
# A stopped job's pod goes at once: its charge is decided by the clock, not by the pod's end.
STOP_GRACE_SECONDS = 1
QUOTA_RETRY_SECONDS = 2.0
NO_RUNNER_RETRY_SECONDS = 30.0
_ATTEMPTS = 3
# A deadline wake-up comes this long after pod start + timeout, so the clock is surely past it.
DEADLINE_MARGIN_SECONDS = 0.25
_FAILURES = frozenset({JobState.FAILED, JobState.OUT_OF_MEMORY, JobState.INVALID_OUTPUT})


def job_policy(settings: Settings) -> JobPolicy:
    return JobPolicy(
        prices=settings.prices,
        default_timeout=settings.default_timeout,
        max_timeout=settings.max_timeout,
    )


def pod_policy(settings: Settings) -> PodPolicy | None:
    if not settings.runner_image:
        return None
    return PodPolicy(
        runner_image=settings.runner_image,
        store_secret=settings.store_secret,
        upload_grace_seconds=settings.upload_grace_seconds,
        run_as_user=settings.run_as_user,
    )


@dataclass
class _Read:
    """One Job as read from the API."""

    body: JSON
    model: Job = field(init=False)

    def __post_init__(self) -> None:
        self.model = Job.model_validate(
            {"spec": self.body.get("spec") or {}, "status": self.body.get("status")}
        )

    @property
    def meta(self) -> JSON:
        meta: JSON = self.body.get("metadata") or {}
        return meta

    @property
    def name(self) -> str:
        return str(self.meta["name"])

    @property
    def namespace(self) -> str:
        return str(self.meta["namespace"])

    @property
    def ref(self) -> JobRef:
        return JobRef(
            self.name, self.namespace, str(self.meta["uid"]), int(self.meta.get("generation") or 1)
        )

    @property
    def status(self) -> JobStatus:
        return self.model.status or JobStatus()

    @property
    def state(self) -> JobState | None:
        return self.status.state

    @property
    def deleting(self) -> bool:
        return bool(self.meta.get("deletionTimestamp"))

    def judge(self, images: list[ImageCandidate], policy: JobPolicy) -> Request | Refusal:
        return judge_job(
            self.model,
            name=self.name,
            namespace=self.namespace,
            created=str(self.meta.get("creationTimestamp") or ""),
            images=images,
            policy=policy,
        )


def job_ref_body(ref: JobRef) -> JSON:
    """The reference Events about a job are posted on."""
    return {
        "apiVersion": API_VERSION,
        "kind": "Job",
        "metadata": {"name": ref.name, "namespace": ref.namespace, "uid": ref.uid},
    }


# ------------------------------------------------------------------------------- images


async def _candidates(
    ctx: Context, namespace: str, job: _Read | None = None
) -> list[ImageCandidate]:
    """Images a job of `namespace` may resolve to; for an admitted job only its pinned one's."""
    pinned = job.status.image.coordinates if job and job.status.image else None
    if pinned:
        try:
            home = parse_coordinates(pinned).environment
        except CoordinatesError:
            return []
        bodies = await ctx.kube.list_objects("images", home)
    else:
        own = await ctx.kube.list_objects("images", namespace)
        public = await ctx.kube.list_all_namespaces("images", f"{labels.PUBLIC}=true")
        bodies = own + [b for b in public if b["metadata"].get("namespace") != namespace]
    return [c for c in map(image_candidate, bodies) if c is not None]


# ---------------------------------------------------------------------------- admission


async def admit(ctx: Context, namespace: str) -> Outcome:
    """Run admission for `namespace`, then start the jobs it admitted.

    Coalesced: calls that arrive during a pass fold into one more pass after it (a burst of
    job events costs at most two passes), and the last pass starts after the last call.
    """
    outcome = Outcome()
    admitted: list[str] = []

    async def one_pass() -> None:
        async with ctx.locks.hold(f"admission/{namespace}"):
            admitted.extend(await _admission_pass(ctx, namespace, outcome))

    await ctx.coalescer.run(f"admission/{namespace}", one_pass)
    # Started concurrently: each creates a ConfigMap and a Pod, and the API client's limiter
    # (qps, burst, concurrency) bounds how many requests are in flight, not this loop.
    for started in await asyncio.gather(
        *(reconcile_job(ctx, namespace, name, admission=False) for name in admitted)
    ):
        _merge(outcome, started)
    return outcome


async def _admission_pass(ctx: Context, namespace: str, outcome: Outcome) -> list[str]:
    kube = ctx.kube
    env = await kube.get_cluster_object("environments", namespace)
    if env is None or (env.get("status") or {}).get("namespace") != namespace:
        return []  # no ready Environment owns this namespace: jobs wait (no state yet)
    jobs = [_Read(b) for b in await kube.list_objects(PLURAL, namespace)]
    waiting = [j for j in jobs if j.state in WAITING and not j.deleting]
    if not waiting:
        return []
    policy = job_policy(ctx.settings)
    images = await _candidates(ctx, namespace)
    accounts, records = await ledger.settle(ctx, namespace)
    totals = credit_totals((env.get("spec") or {}).get("credits"), accounts, records)
    now = datetime.now(UTC)

    running, running_reserved = Usage(), Decimal(0)
    for job in jobs:
        if job.state is None or job.state in WAITING or job.state.is_terminal:
            continue
        verdict = job.judge(images, policy)
        if isinstance(verdict, Request):
            running = running + Usage.of(verdict.resources)
        running_reserved += JobAccount.from_body(job.body).reserved

    requests: dict[str, tuple[_Read, Request]] = {}
    for job in waiting:
        ref = job.ref
        if job.model.spec.cancel:
            status = cancelled_status(job.model, generation=ref.generation, now=now)
            await _write_or_retry(ctx, job, status, outcome)
            continue
        verdict = job.judge(images, policy)
        if isinstance(verdict, Refusal):
            status = admission_status(job.model, verdict, generation=ref.generation, now=now)
            await _write_or_retry(ctx, job, status, outcome)
            continue
        requests[job.name] = (job, verdict)

    spec_quota = (env.get("spec") or {}).get("quota")
    quota = EnvironmentQuota.model_validate(spec_quota) if spec_quota else None
    capacity = Capacity.of(
        quota,
        running=running,
        balance=totals.balance,
        running_reserved=running_reserved,
        unavailable=ctx.settings.jobs_unavailable(),
    )
    admitted = []
    for decision in admit_fifo([r for _, r in requests.values()], capacity):
        job, _ = requests[decision.request.name]
        status = admission_status(job.model, decision, generation=job.ref.generation, now=now)
        if isinstance(decision, Wait) and _same_wait(job.status, status):
            continue
        if await _write_or_retry(ctx, job, status, outcome) and isinstance(decision, Admit):
            admitted.append(job.name)
    return admitted


async def _write_or_retry(ctx: Context, job: _Read, status: JobStatus, outcome: Outcome) -> bool:
    """An admission write; a job that changed meanwhile is decided again by another pass."""
    try:
        return await _write(ctx, job, status, outcome, precondition=False)
    except _Stale:
        # Its update event (or the resync) triggers the next pass, which reads it afresh.
        outcome.retry_after, outcome.retry_reason = 1.0, f"job {job.name} changed; admit again"
        return False


def _same_wait(previous: JobStatus, status: JobStatus) -> bool:
    """A queued job whose reason and numbers did not change needs no write (no Event storm)."""
    if previous.state is not JobState.QUEUED:
        return False
    old = [(c.reason, c.message) for c in previous.conditions]
    return old == [(c.reason, c.message) for c in status.conditions]


# ----------------------------------------------------------------------------- one job


async def reconcile_job(
    ctx: Context, namespace: str, name: str, *, admission: bool = True
) -> Outcome:
    """Bring one job forward from what the API says now (level-triggered)."""
    outcome = Outcome()
    async with ctx.locks.hold(f"job/{namespace}/{name}"):
        for attempt in range(_ATTEMPTS):
            body = await ctx.kube.get_object(PLURAL, namespace, name)
            if body is None:
                return outcome
            job = _Read(body)
            if job.deleting or (job.state is not None and job.state.is_terminal):
                ctx.wakeups.cancel(_key(namespace, name))
                return outcome
            ended = False
            if job.state in WAITING:
                break
            try:
                ended = await _track(ctx, job, outcome)
                break
            except _Stale as exc:
                # Kopf's own annotations or a cancel changed the job since we read it: read
                # again and decide again (the write that failed changed nothing).
                if attempt == _ATTEMPTS - 1:
                    outcome.retry_after, outcome.retry_reason = 1.0, str(exc)
    if admission and (ended or job.state in WAITING):
        _merge(outcome, await admit(ctx, namespace))
    return outcome


async def _track(ctx: Context, job: _Read, outcome: Outcome) -> bool:
    """Create the pod if needed and write its status; True when the job ended now."""
    kube, ref, now = ctx.kube, job.ref, datetime.now(UTC)
    verdict = job.judge(await _candidates(ctx, ref.namespace, job), job_policy(ctx.settings))
    if isinstance(verdict, Refusal):  # its image was deleted since admission
        status = admission_status(job.model, verdict, generation=ref.generation, now=now)
        await kube.delete_pod(ref.namespace, pod_name(ref.name), STOP_GRACE_SECONDS)
        return await _write(ctx, job, status, outcome)
    fresh = not job.status.pod_name and not job.model.spec.cancel
    # A job that never recorded its pod goes straight to creating it (one round trip less on
    # the way to the pod): a pod made before (by an operator that died before writing
    # podName) answers AlreadyExists, and `_create_pod` reads that one instead.
    pod = None if fresh else await kube.get_pod(ref.namespace, pod_name(ref.name))
    if pod is None and fresh:
        created = await _create_pod(ctx, job, verdict, outcome)
        if isinstance(created, Refusal):
            status = admission_status(job.model, created, generation=ref.generation, now=now)
            return await _write(ctx, job, status, outcome)
        if created is None:
            return False  # retry later (quota, no runner image)
        pod = created
    inputs = StatusInputs(
        resources=verdict.resources,
        prices=ctx.settings.prices,
        manifest=verdict.manifest,
        image=job.status.image or verdict.image,
        now=now,
        reserved=JobAccount.from_body(job.body).reserved,
        stored_report=await _stored_report(ctx, ref.namespace, pod),
    )
    status = plan_status(job.model, ref, pod, inputs)
    _arm_deadline(ctx, ref, pod, status, timeout=verdict.resources.timeout, now=now)
    if pod is not None and not pod_finished(pod):
        stopping = status.state is JobState.CANCELLING or (
            status.state is not None and status.state.is_terminal
        )
        if stopping and not (pod.get("metadata") or {}).get("deletionTimestamp"):
            await kube.delete_pod(ref.namespace, pod_name(ref.name), STOP_GRACE_SECONDS)
    if status.to_json() == job.status.to_json():
        return False
    written = await _write(ctx, job, status, outcome)
    return written and status.state is not None and status.state.is_terminal


def _key(namespace: str, name: str) -> str:
    return f"job/{namespace}/{name}"


def _arm_deadline(
    ctx: Context, ref: JobRef, pod: JSON | None, status: JobStatus, *, timeout: int, now: datetime
) -> None:
    """Reconcile the job again at its deadline (pod start + timeout), not at the next resync.

    No watch event marks a deadline: a program that ignores SIGTERM keeps its pod running
    through the kubelet's grace period, and the resync may be a minute away. The wake-up lands
    a moment after the deadline (`plan_status` then says Timeout); it is armed only for a
    deadline still ahead, so a stopping job is never woken in a loop.
    """
    key = _key(ref.namespace, ref.name)
    started = ((pod or {}).get("status") or {}).get("startTime")
    if (
        not started
        or status.state is None
        or status.state.is_terminal
        or status.state is JobState.CANCELLING
    ):
        if status.state is not None and status.state.is_terminal:
            ctx.wakeups.cancel(key)
        return
    deadline = datetime.fromisoformat(str(started).replace("Z", "+00:00"))
    left = (deadline - now).total_seconds() + timeout
    if left <= 0:
        return

    async def wake() -> None:
        outcome = await reconcile_job(ctx, ref.namespace, ref.name)
        ctx.post(outcome.notices)

    ctx.wakeups.at(key, left + DEADLINE_MARGIN_SECONDS, wake)


async def _create_pod(
    ctx: Context, job: _Read, request: Request, outcome: Outcome
) -> JSON | Refusal | None:
    """The job's plan ConfigMap and Pod (AlreadyExists is success); None: retry later."""
    kube, ref = ctx.kube, job.ref
    policy = pod_policy(ctx.settings)
    if policy is None:
        outcome.retry_after = NO_RUNNER_RETRY_SECONDS
        outcome.retry_reason = "no runnerImage configured: job pods cannot be created"
        return None
    config_map = plan_config_map(ref, staging_plan(ref, request, job.model.spec.input))
    with suppress(Conflict):  # created before: the plan is a function of the immutable spec
        await kube.create_config_map(config_map)
    body = plan_pod(ref, request, policy)
    try:
        created: JSON = await kube.create_pod(body)
    except Conflict:
        existing = await kube.get_pod(ref.namespace, body["metadata"]["name"])
        if existing is None:  # deleted again in between: decide on the next event
            outcome.retry_after = QUOTA_RETRY_SECONDS
            outcome.retry_reason = "pod deleted while being created"
        return existing
    except Forbidden as exc:
        if "exceeded quota" in exc.message:
            # Room frees when a running pod ends (admission counted the job as fitting; a pod
            # still terminating can hold the quota a little longer): retry, never fail.
            outcome.retry_after = QUOTA_RETRY_SECONDS
            outcome.retry_reason = f"pod refused by the quota, retrying: {exc.message}"
            return None
        return Refusal(Reason.POD_REJECTED, "$.spec", f"the pod was refused: {exc.message}")
    except Invalid as exc:
        return Refusal(Reason.POD_REJECTED, "$.spec", f"the pod was refused: {exc.message}")
    outcome.notices.append(
        Notice(job_ref_body(ref), "Normal", "PodCreated", f"created pod {body['metadata']['name']}")
    )
    return created


async def _stored_report(ctx: Context, namespace: str, pod: JSON | None) -> RunnerReport | None:
    """The full stage-out report when it was too big for the termination message."""
    report = None if pod is None else stage_out_report(pod)
    store = ctx.store
    if report is None or report.output is not None or not report.result or store is None:
        return None
    path, digest = report.result, report.digest

    def fetch() -> RunnerReport | None:  # a store call: in a worker thread, never on the loop
        data = store.env(namespace).read_bytes(path)
        if digest and "sha256:" + hashlib.sha256(data).hexdigest() != digest:
            return None
        return parse_report(data.decode())

    return await asyncio.to_thread(fetch)


# ------------------------------------------------------------------------------ writes


async def _write(
    ctx: Context, job: _Read, status: JobStatus, outcome: Outcome, *, precondition: bool = True
) -> bool:
    """Write `status` if the job is still as read; post an Event when its state changes.

    Admission writes go without the precondition: only the admission pass (serialised per
    environment) writes a waiting job's status, so a concurrent change can only be Kopf's
    annotations or a cancel, which the job's own reconcile handles after admission.
    """
    patch = status.to_json()
    version = str(job.meta.get("resourceVersion") or "") if precondition else ""
    try:
        updated = await ctx.kube.patch_status(
            PLURAL, job.namespace, job.name, patch, resource_version=version or None
        )
    except NotFound:
        return False
    except Conflict as exc:
        raise _Stale(f"job {job.name} changed while being reconciled") from exc
    previous = job.status.state
    job.body = updated
    job.model = Job.model_validate(
        {"spec": updated.get("spec") or {}, "status": updated.get("status")}
    )
    if status.state != previous:
        state = status.state.value if status.state else "?"
        condition = status.conditions[-1] if status.conditions else None
        reason = condition.reason if condition else state
        message = f"{state}: {condition.message if condition else ''}"[:1024]
        kind = "Warning" if status.state in _FAILURES else "Normal"
        outcome.notices.append(Notice(job_ref_body(job.ref), kind, reason, message))
    return True


class _Stale(Exception):
    """The job changed since it was read: its status was not written."""


def _merge(into: Outcome, other: Outcome) -> None:
    into.notices.extend(other.notices)
    if other.retry_after is not None and (
        into.retry_after is None or other.retry_after < into.retry_after
    ):
        into.retry_after, into.retry_reason = other.retry_after, other.retry_reason


def owner_job(pod: JSON) -> str | None:
    """The name of the Job that owns `pod`, if a Job does."""
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == "Job" and owner.get("apiVersion") == API_VERSION:
            return str(owner.get("name"))
    return None


__all__ = ["admit", "job_policy", "owner_job", "pod_policy", "reconcile_job"]
