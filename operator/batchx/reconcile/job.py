"""Job reconcile: admission per environment (first in, first out), then one Pod per job.

Two owners, never writing the same job's status at once:

- `admit` (one pass per environment, serialised and coalesced) owns jobs that were not admitted
  yet (no state, ``SUBMITTED``, ``QUEUED``): it judges each (refusal -> ``FAILED``), asks
  `admit_fifo` which fit the quota and the ledger's fresh balance, and writes ``QUEUED`` (with
  the numbers) or ``STARTING`` (image pinned, credits reserved, the decision recorded in
  ``status.admission``). The admission status is stored *before* any object is created, so the
  ledger counts the reservation from then on.
- `reconcile_job` (serialised per job) owns admitted jobs, reading their recorded decision back
  (never judging them again: `batchx.planning.job_record`): it creates the plan ConfigMap and the
  Pod under deterministic names (AlreadyExists is success, so no job ever gets a second Pod, also
  across operator restarts), and writes `plan_status` of the Pod. The terminal state and the
  charge are one status write. A job that ends re-runs admission for its environment.
- `release_job` (a deleted Job's finalizer) stops its pod and removes its files.

Every status write carries the resourceVersion it was computed from: a decision made from a
stale read is refused by the API server (Conflict) and made again from a fresh one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal

from batchx import API_VERSION
from batchx.clients.kube import Conflict, Forbidden, Invalid, KubeError, NotFound
from batchx.domain.coordinates import CoordinatesError, parse_coordinates
from batchx.domain.validation import FileRef
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
    Resources,
    Usage,
    Wait,
    admission_status,
    admit_fifo,
    cancelled_status,
    judge_job,
)
from batchx.planning.job_checks import (
    missing_files_refusal,
    no_environment_status,
    offered_gpu_types,
    unoffered_gpu_type,
)
from batchx.planning.job_pod import (
    JobRef,
    PodPolicy,
    RunnerReport,
    StatusInputs,
    job_files,
    parse_report,
    plan_config_map,
    plan_config_map_name,
    plan_manifest,
    plan_pod,
    plan_status,
    pod_finished,
    pod_name,
    stage_out_report,
    staging_plan,
)
from batchx.planning.job_record import Admitted, admitted, admitted_request
from batchx.planning.ledger import JobAccount, credit_totals
from batchx.reconcile import ledger
from batchx.reconcile.context import JSON, Context, Notice, Outcome
from batchx.reconcile.storage import missing_inputs, remove_files
from batchx.settings import Settings

logger = logging.getLogger(__name__)

PLURAL = "jobs"
WAITING = frozenset({None, JobState.SUBMITTED, JobState.QUEUED})
# A stopped job's pod goes at once: its charge is decided by the clock, not by the pod's end.
STOP_GRACE_SECONDS = 1
QUOTA_RETRY_SECONDS = 2.0
NO_RUNNER_RETRY_SECONDS = 30.0
STORE_RETRY_SECONDS = 10.0
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


def _candidate(body: JSON) -> ImageCandidate | None:
    status = body.get("status") or {}
    ready = any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in status.get("conditions") or []
    )
    spec = body.get("spec") or {}
    if not ready or not status.get("coordinates") or body["metadata"].get("deletionTimestamp"):
        return None
    try:
        coordinates = parse_coordinates(str(status["coordinates"]))
    except CoordinatesError:
        return None
    return ImageCandidate(
        coordinates, str(spec.get("image")), spec.get("manifest") or {}, bool(spec.get("public"))
    )


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
    return [c for c in map(_candidate, bodies) if c is not None]


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
    jobs = [_Read(b) for b in await kube.list_objects(PLURAL, namespace)]
    waiting = [j for j in jobs if j.state in WAITING and not j.deleting]
    if not waiting:
        return []
    now = datetime.now(UTC)
    if env is None or (env.get("status") or {}).get("namespace") != namespace:
        # No ready Environment owns this namespace: the jobs wait, and are told why.
        for job in waiting:
            status = no_environment_status(
                job.model, namespace, generation=job.ref.generation, now=now
            )
            if not _same_wait(job.status, status):
                await _write_or_retry(ctx, job, status, outcome, warning=True)
        return []
    policy = job_policy(ctx.settings)
    images = await _candidates(ctx, namespace)
    accounts, records = await ledger.settle(ctx, namespace)
    totals = credit_totals((env.get("spec") or {}).get("credits"), accounts, records)
    running, running_reserved = _running(jobs, images, policy)

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
    for decision in await _decide(ctx, _Pass(namespace, requests, outcome, now), capacity):
        job, _ = requests[decision.request.name]
        status = admission_status(job.model, decision, generation=job.ref.generation, now=now)
        if isinstance(decision, Wait) and _same_wait(job.status, status):
            continue
        if await _write_or_retry(ctx, job, status, outcome) and isinstance(decision, Admit):
            admitted.append(job.name)
    return admitted


def _running(
    jobs: list[_Read], images: list[ImageCandidate], policy: JobPolicy
) -> tuple[Usage, Decimal]:
    """What the admitted, unfinished jobs hold, and their reservations."""
    running, reserved = Usage(), Decimal(0)
    for job in jobs:
        if job.state is None or job.state in WAITING or job.state.is_terminal:
            continue
        # What an admitted job holds is what admission recorded; whatever became of its Image.
        recorded = job.status.admission
        if recorded is not None:
            running = running + Usage.of(Resources.of_model(recorded.resources))
        elif isinstance(verdict := job.judge(images, policy), Request):
            running = running + Usage.of(verdict.resources)
        reserved += JobAccount.from_body(job.body).reserved
    return running, reserved


@dataclass
class _Pass:
    """One admission pass's valid requests (by job name) and where its writes report."""

    namespace: str
    requests: dict[str, tuple[_Read, Request]]
    outcome: Outcome
    now: datetime


async def _decide(ctx: Context, one: _Pass, capacity: Capacity) -> list[Admit | Wait]:
    """`admit_fifo` over the requests whose input files exist.

    Input files are looked up in the index when a job is first judged, and again right before
    it is admitted (a path may have been removed while it waited); a job refused then frees its
    room for the next in line within the same pass.
    """
    await _refuse_unoffered_gpu_types(ctx, one)
    fresh = {n: r.files for n, (j, r) in one.requests.items() if j.state is not JobState.QUEUED}
    await _refuse_missing_files(ctx, one, fresh)
    checked = set(fresh)
    while True:
        decisions = admit_fifo([r for _, r in one.requests.values()], capacity)
        again = {
            d.request.name: d.request.files
            for d in decisions
            if isinstance(d, Admit) and d.request.name not in checked
        }
        checked |= again.keys()
        if not await _refuse_missing_files(ctx, one, again):
            return decisions


async def _refuse_unoffered_gpu_types(ctx: Context, one: _Pass) -> None:
    """Refuse the requests for a GPU product no node offers (rule: `unoffered_gpu_type`)."""
    if not any(r.resources.gpu_type for _, r in one.requests.values()):
        return
    try:
        nodes = await ctx.kube.list_nodes(selector=labels.GPU_PRODUCT)
    except KubeError as err:  # e.g. no RBAC to list nodes: the scheduler will say it instead
        logger.warning("GPU types not checked: nodes cannot be listed: %s", err)
        return
    offered = offered_gpu_types(nodes, ctx.settings.gpu_types)
    if not offered:  # the cluster does not label its GPUs this way: nothing to check against
        return
    for name, (job, request) in list(one.requests.items()):
        refusal = unoffered_gpu_type(request, offered)
        if refusal is not None:
            del one.requests[name]
            status = admission_status(
                job.model, refusal, generation=job.ref.generation, now=one.now
            )
            await _write_or_retry(ctx, job, status, one.outcome)


async def _refuse_missing_files(
    ctx: Context, one: _Pass, files: dict[str, tuple[FileRef, ...]]
) -> bool:
    """Refuse (and drop from the pass) the jobs whose input files are not in the index."""
    missing = await missing_inputs(ctx, one.namespace, files)
    for name, refs in missing.items():
        job, _ = one.requests.pop(name)
        refusal = missing_files_refusal(one.namespace, refs)
        status = admission_status(job.model, refusal, generation=job.ref.generation, now=one.now)
        await _write_or_retry(ctx, job, status, one.outcome)
    return bool(missing)


async def _write_or_retry(
    ctx: Context, job: _Read, status: JobStatus, outcome: Outcome, *, warning: bool = False
) -> bool:
    """An admission write; a job that changed meanwhile is decided again by another pass."""
    try:
        return await _write(ctx, job, status, outcome, precondition=False, warning=warning)
    except _Stale:
        # Its update event (or the resync) triggers the next pass, which reads it afresh.
        outcome.retry_after, outcome.retry_reason = 1.0, f"job {job.name} changed; admit again"
        return False


def _same_wait(previous: JobStatus, status: JobStatus) -> bool:
    """A waiting job whose state, reason and numbers did not change needs no write (no Event
    storm)."""
    if previous.state is not status.state:
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
    decision = await _decision(ctx, job)
    if isinstance(decision, Refusal):
        # No record and no manifest to judge the job by: only a job admitted by an operator
        # that kept no record, whose image was deleted since (or whose plan was deleted too).
        status = admission_status(job.model, decision, generation=ref.generation, now=now)
        await kube.delete_pod(ref.namespace, pod_name(ref.name), STOP_GRACE_SECONDS)
        return await _write(ctx, job, status, outcome)
    fresh = not job.status.pod_name and not job.model.spec.cancel
    # A job that never recorded its pod goes straight to creating it (one round trip less on
    # the way to the pod): a pod made before (by an operator that died before writing
    # podName) answers AlreadyExists, and `_create_pod` reads that one instead.
    pod = None if fresh else await kube.get_pod(ref.namespace, pod_name(ref.name))
    if pod is None and fresh:
        created = await _create_pod(ctx, job, decision, outcome)
        if isinstance(created, Refusal):
            status = admission_status(job.model, created, generation=ref.generation, now=now)
            return await _write(ctx, job, status, outcome)
        if created is None:
            return False  # retry later (quota, no runner image)
        pod = created
    inputs = StatusInputs(
        resources=decision.resources,
        rate=decision.rate,
        manifest=decision.manifest,
        image=decision.image,
        now=now,
        reserved=JobAccount.from_body(job.body).reserved,
        stored_report=await _stored_report(ctx, ref.namespace, pod),
    )
    status = plan_status(job.model, ref, pod, inputs)
    _arm_deadline(ctx, ref, pod, status, timeout=decision.resources.timeout, now=now)
    if pod is not None and not pod_finished(pod):
        stopping = status.state is JobState.CANCELLING or (
            status.state is not None and status.state.is_terminal
        )
        if stopping and _grace_left(pod) > STOP_GRACE_SECONDS:
            await kube.delete_pod(ref.namespace, pod_name(ref.name), STOP_GRACE_SECONDS)
    if status.to_json() == job.status.to_json():
        return False
    stuck = bool(status.conditions) and status.conditions[-1].reason == "Unschedulable"
    written = await _write(ctx, job, status, outcome, warning=stuck)
    return written and status.state is not None and status.state.is_terminal


async def _decision(ctx: Context, job: _Read) -> Admitted | Refusal:
    """What admission decided for `job`, read back (batchx.planning.job_record), not redone.

    The manifest comes from the job's plan ConfigMap once it exists, before that from the
    pinned Image (looked up by its exact coordinates). A job without a record (admitted by an
    operator that kept none) is judged again, against that same pinned manifest.
    """
    ref = job.ref
    config_map = await ctx.kube.get_config_map(ref.namespace, plan_config_map_name(ref.name))
    manifest = plan_manifest(config_map)
    pinned = job.status.image
    if manifest is None:
        candidates = await _candidates(ctx, ref.namespace, job)
        match = next(
            (c for c in candidates if pinned and str(c.coordinates) == pinned.coordinates), None
        )
        if match is None:  # nothing to judge by: the image is gone and no plan kept it
            return _refusal(job.judge(candidates, job_policy(ctx.settings)))
        manifest = dict(match.manifest)
    recorded = admitted(job.model, manifest)
    if recorded is not None:
        return recorded
    try:
        coordinates = parse_coordinates(str(pinned.coordinates if pinned else ""))
    except CoordinatesError as err:
        return Refusal(Reason.IMAGE_NOT_FOUND, "$.status.image.coordinates", err.reason)
    copy = ImageCandidate(coordinates, str(pinned.container if pinned else ""), manifest, True)
    verdict = job.judge([copy], job_policy(ctx.settings))
    return verdict if isinstance(verdict, Refusal) else Admitted.of_request(verdict)


def _refusal(verdict: Request | Refusal) -> Refusal:
    if isinstance(verdict, Refusal):
        return verdict
    # The image resolves now but not by the pinned coordinates: it is not what was admitted.
    return Refusal(Reason.IMAGE_NOT_FOUND, "$.status.image", "the admitted image no longer exists")


def _grace_left(pod: JSON) -> float:
    """The grace period a pod is being deleted with (infinite while it is not being deleted).

    A pod deleted with a longer grace (by hand, by the namespace's deletion) is deleted again
    with the stop grace: the API server shortens the grace of a pod that is terminating.
    """
    meta = pod.get("metadata") or {}
    if not meta.get("deletionTimestamp"):
        return float("inf")
    return float(meta.get("deletionGracePeriodSeconds") or 0)


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
    # A pod no node took has no startTime: its timeout counts from its creation (plan_status).
    started = ((pod or {}).get("status") or {}).get("startTime") or (
        (pod or {}).get("metadata") or {}
    ).get("creationTimestamp")
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
    ctx: Context, job: _Read, decision: Admitted, outcome: Outcome
) -> JSON | Refusal | None:
    """The job's plan ConfigMap and Pod (AlreadyExists is success); None: retry later."""
    kube, ref = ctx.kube, job.ref
    policy = pod_policy(ctx.settings)
    if policy is None:
        outcome.retry_after = NO_RUNNER_RETRY_SECONDS
        outcome.retry_reason = "no runnerImage configured: job pods cannot be created"
        return None
    request = admitted_request(
        job.model,
        decision,
        name=ref.name,
        created=str(job.meta.get("creationTimestamp") or ""),
        reserved=JobAccount.from_body(job.body).reserved,
    )
    if isinstance(request, Refusal):
        return request
    plan = staging_plan(ref, request, job.model.spec.input)
    config_map = plan_config_map(ref, plan, decision.document)
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
    ctx: Context,
    job: _Read,
    status: JobStatus,
    outcome: Outcome,
    *,
    precondition: bool = True,
    warning: bool = False,
) -> bool:
    """Write `status` if the job is still as read; post an Event when its state or reason
    changes (a Warning for failures, and when `warning` says the job is stuck).

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
    previous_reason = job.status.conditions[-1].reason if job.status.conditions else None
    job.body = updated
    job.model = Job.model_validate(
        {"spec": updated.get("spec") or {}, "status": updated.get("status")}
    )
    condition = status.conditions[-1] if status.conditions else None
    if status.state != previous or (warning and condition and condition.reason != previous_reason):
        state = status.state.value if status.state else "?"
        reason = condition.reason if condition else state
        message = f"{state}: {condition.message if condition else ''}"[:1024]
        kind = "Warning" if warning or status.state in _FAILURES else "Normal"
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


async def release_job(ctx: Context, namespace: str, name: str) -> Outcome:
    """A deleted Job's last step: its pod stopped, then its files removed (`job_files`).

    Held by the Job's finalizer, so the name is free for a new Job only once the old outputs
    are gone: a Job re-created under a finished Job's name (a GitOps replace) writes its own
    outputs to the same stable paths instead of failing on immutable ones. A user who wants to
    keep an output copies it first (``bx cp``: an alias, no bytes copied, no quota). The pod
    goes first because a running one could still upload into the folder being emptied.
    """
    outcome = Outcome()
    async with ctx.locks.hold(_key(namespace, name)):
        ctx.wakeups.cancel(_key(namespace, name))
        pod = await ctx.kube.get_pod(namespace, pod_name(name))
        if pod is not None:
            if _grace_left(pod) > STOP_GRACE_SECONDS:
                await ctx.kube.delete_pod(namespace, pod_name(name), STOP_GRACE_SECONDS)
            outcome.retry_after, outcome.retry_reason = 1.0, f"waiting for pod {pod_name(name)}"
            return outcome
        try:
            await remove_files(ctx, namespace, job_files(name))
        except Exception as exc:  # any store failure: keep the finalizer, try again
            if not await _namespace_terminating(ctx, namespace):
                outcome.retry_after = STORE_RETRY_SECONDS
                outcome.retry_reason = f"the files of job {name} could not be removed: {exc}"
    return outcome


async def _namespace_terminating(ctx: Context, namespace: str) -> bool:
    """Whether `namespace` is being deleted (its Environment with it: nothing to hold for)."""
    ns = await ctx.kube.get_namespace(namespace)
    return ns is None or bool((ns.get("metadata") or {}).get("deletionTimestamp"))


def owner_job(pod: JSON) -> str | None:
    """The name of the Job that owns `pod`, if a Job does."""
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == "Job" and owner.get("apiVersion") == API_VERSION:
            return str(owner.get("name"))
    return None


__all__ = ["admit", "job_policy", "owner_job", "pod_policy", "reconcile_job", "release_job"]
