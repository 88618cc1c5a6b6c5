"""Job reconcile: admission per environment (first in, first out), then one Pod per job.

Two owners, never writing the same job's status at once:

- `admit` (one pass per environment, serialised and coalesced: `batchx.reconcile.admission`)
  owns jobs that were not admitted yet (no state, ``SUBMITTED``, ``QUEUED``) and writes
  ``QUEUED`` or ``STARTING`` (the decision recorded in ``status.admission``), then starts the
  jobs it admitted.
- `reconcile_job` (serialised per job) owns admitted jobs, reading their recorded decision back
  (never judging them again: `batchx.planning.job_record`): it creates the plan ConfigMap and the
  Pod under deterministic names (AlreadyExists is success, so no job ever gets a second Pod, also
  across operator restarts), and writes `plan_status` of the Pod. The terminal state and the
  charge are one status write. A job that ends re-runs admission for its environment.
- `batchx.reconcile.job_release.release_job` (a deleted Job's finalizer) stops its pod and
  removes its files.

Every status write carries the resourceVersion it was computed from: a decision made from a
stale read is refused by the API server (Conflict) and made again from a fresh one.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Mapping
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

from batchx import API_VERSION
from batchx.clients.kube import Conflict, Forbidden, Invalid, background
from batchx.domain.coordinates import CoordinatesError, parse_coordinates
from batchx.models import JobState, JobStatus
from batchx.planning.events import job_order
from batchx.planning.job_admission import (
    ImageCandidate,
    Reason,
    Refusal,
    Request,
    admission_status,
    submitted_status,
)
from batchx.planning.job_placement import Placement, place
from batchx.planning.job_pod import (
    JobRef,
    PodPolicy,
    inline_input,
    job_files,
    owned_by,
    plan_config_map,
    plan_config_map_name,
    plan_manifest,
    plan_pod,
    pod_name,
    staging_plan,
)
from batchx.planning.job_protocol import JOB_CONTAINER, RunnerReport, parse_report
from batchx.planning.job_record import Admitted, admitted, admitted_request
from batchx.planning.kstatus import stale_job_conditions
from batchx.planning.ledger import JobAccount
from batchx.planning.pod_status import StatusInputs, plan_status
from batchx.planning.pod_view import pod_finished, stage_out_report
from batchx.reconcile import events, pipeline
from batchx.reconcile.admission import AdmittedJob, admission_pass, candidates, job_policy
from batchx.reconcile.context import JSON, Context, Notice, Outcome
from batchx.reconcile.job_status import (
    PLURAL,
    WAITING,
    JobRead,
    Stale,
    job_ref_body,
    merge,
    unchanged,
    write_status,
)
from batchx.reconcile.provenance import plan_record
from batchx.reconcile.storage import remove_files
from batchx.settings import Settings

logger = logging.getLogger(__name__)

# A stopped job's pod goes at once: its charge is decided by the clock, not by the pod's end.
STOP_GRACE_SECONDS = 1
QUOTA_RETRY_SECONDS = 2.0
NO_RUNNER_RETRY_SECONDS = 30.0
STORE_RETRY_SECONDS = 10.0
_ATTEMPTS = 3
# A deadline wake-up comes this long after pod start + timeout, so the clock is surely past it.
DEADLINE_MARGIN_SECONDS = 0.25
# The pod's news comes between the admission's (STARTING) and the pod's first state.
_AT_POD = job_order(JobState.STARTING, after=True)


def pod_policy(settings: Settings) -> PodPolicy | None:
    if not settings.runner_image:
        return None
    return PodPolicy(
        runner_image=settings.runner_image,
        store_secret=settings.store_secret,
        upload_grace_seconds=settings.upload_grace_seconds,
        run_as_user=settings.run_as_user,
        direct_output=settings.direct_output,
        direct_output_except=frozenset(settings.direct_output_except),
    )


async def admit(ctx: Context, namespace: str) -> Outcome:
    """Run admission for `namespace`, then start the jobs it admitted.

    Coalesced: calls that arrive during a pass fold into one more pass after it (a burst of
    job events costs at most two passes), and the last pass starts after the last call. Never
    in the API client's background, whoever calls it (a new job's admission waits for it).
    """
    outcome = Outcome()
    starts: list[asyncio.Task[Outcome]] = []

    async def one_pass() -> None:
        async with ctx.locks.hold(f"admission/{namespace}"):
            admitted = await admission_pass(ctx, namespace, outcome)
        # Started at once, each a task (a ConfigMap and a Pod; the API client's limiter
        # bounds the requests in flight): not after the passes a burst coalesces into this
        # call, which would hold the first pass's pods until the last pass is done.
        starts.extend(
            asyncio.ensure_future(
                reconcile_job(ctx, namespace, a.job.name, admission=False, admitted=a)
            )
            for a in admitted
        )

    with background(False):
        try:
            await ctx.coalescer.run(f"admission/{namespace}", one_pass)
        finally:
            results = await asyncio.gather(*starts, return_exceptions=True)
        for started in results:
            if isinstance(started, BaseException):
                raise started
            merge(outcome, started)
        await pipeline.summarise(ctx, outcome)
    return outcome


# ----------------------------------------------------------------------------- one job


async def reconcile_job(
    ctx: Context,
    namespace: str,
    name: str,
    *,
    admission: bool = True,
    admitted: AdmittedJob | None = None,
) -> Outcome:
    """Bring one job forward from what the API says now (level-triggered).

    `admitted`: the job as the admission pass that admitted it just wrote it, and its
    manifest; the first attempt starts from that instead of reading both again (a write that
    meets a newer job is refused, and the next attempt reads it).
    """
    outcome = Outcome()
    async with ctx.locks.hold(f"job/{namespace}/{name}"):
        for attempt in range(_ATTEMPTS):
            if attempt == 0 and admitted is not None:
                job = admitted.job
            else:
                body = await ctx.kube.get_object(PLURAL, namespace, name)
                if body is None:
                    return outcome
                job = JobRead(body)
            if job.deleting or (job.state is not None and job.state.is_terminal):
                ctx.wakeups.cancel(job_key(namespace, name))
                ctx.plans.drop(job.ref.uid)
                if not job.deleting:
                    await _heal_conditions(ctx, job, outcome)
                return outcome
            ended = False
            if job.state in WAITING:
                break
            try:
                manifest = admitted.manifest if attempt == 0 and admitted is not None else None
                ended = await _track(ctx, job, outcome, manifest)
                break
            except Stale as exc:
                # Kopf's own annotations or a cancel changed the job since we read it: read
                # again and decide again (the write that failed changed nothing).
                if attempt == _ATTEMPTS - 1:
                    outcome.retry_after, outcome.retry_reason = 1.0, str(exc)
    if admission and job.state is None:
        # A new job: SUBMITTED first, then its admission pass, which only then sees it (passes
        # leave jobs without a state alone), so SUBMITTED is always a job's first state.
        await _submitted(ctx, job, outcome)
        merge(outcome, await admit(ctx, namespace))
    elif admission and (ended or job.state in WAITING):
        merge(outcome, await admit(ctx, namespace))
    await pipeline.summarise(ctx, outcome)
    return outcome


async def _heal_conditions(ctx: Context, job: JobRead, outcome: Outcome) -> None:
    """A finished job whose Ready/Reconciling/Stalled do not match its state gets them fixed
    (write_status recomputes them; the state is unchanged, so no Event)."""
    if stale_job_conditions(job.status, generation=job.ref.generation, now=datetime.now(UTC)):
        with suppress(Stale):
            await write_status(ctx, job, job.status, outcome)


async def _submitted(ctx: Context, job: JobRead, outcome: Outcome) -> None:
    """A new job shows ``SUBMITTED`` at once, not nothing until its admission pass is done.

    Written only on the job as read: if admission got there first (Conflict), its state stands.
    """
    status = submitted_status(job.model, generation=job.ref.generation, now=datetime.now(UTC))
    with suppress(Stale):
        await write_status(ctx, job, status, outcome)


async def _track(
    ctx: Context, job: JobRead, outcome: Outcome, manifest: Mapping[str, Any] | None = None
) -> bool:
    """Create the pod if needed and write its status; True when the job ended now.

    `manifest`: the one the job was just admitted with (no plan exists yet to read it from).
    """
    kube, ref, now = ctx.kube, job.ref, datetime.now(UTC)
    decision = await _decision(ctx, job, manifest)
    if isinstance(decision, Refusal):
        # No record and no manifest to judge the job by: only a job admitted by an operator
        # that kept no record, whose image was deleted since (or whose plan was deleted too).
        status = admission_status(job.model, decision, generation=ref.generation, now=now)
        await kube.delete_pod(ref.namespace, pod_name(ref.name), STOP_GRACE_SECONDS)
        return await write_status(ctx, job, status, outcome)
    fresh = not job.status.pod_name and not job.model.spec.cancel
    # A job that never recorded its pod goes straight to creating it (one round trip less on
    # the way to the pod): a pod made before (by an operator that died before writing
    # podName) answers AlreadyExists, and `_create_pod` reads that one instead.
    pod = None if fresh else await kube.get_pod(ref.namespace, pod_name(ref.name))
    if pod is not None and not owned_by(pod, ref):
        pod = None  # a deleted job's of the same name, not yet collected: not this job's
    if pod is None and fresh:
        created = await _create_pod(ctx, job, decision, outcome)
        if isinstance(created, Refusal):
            status = admission_status(job.model, created, generation=ref.generation, now=now)
            return await write_status(ctx, job, status, outcome)
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
    # A pipeline's children summary is written by its children's changes: kept as it is.
    status = plan_status(job.model, ref, pod, inputs).model_copy(
        update={"children": job.status.children}
    )
    _arm_deadline(ctx, ref, pod, status, timeout=decision.resources.timeout, now=now)
    ends = status.state is not None and status.state.is_terminal
    stop = (
        pod is not None
        and not pod_finished(pod)
        and (ends or status.state is JobState.CANCELLING)
        and grace_left(pod) > STOP_GRACE_SECONDS
    )
    same = unchanged(job, status)
    if not same and decision.manifest.manifest.is_pipeline and (ends or stopping(status)):
        # Before the final write (see batchx.reconcile.pipeline): revoke, cancel children.
        await pipeline.finish(ctx, ref)
    if not same:
        stuck = bool(status.conditions) and status.conditions[-1].reason == "Unschedulable"
        if not await write_status(ctx, job, status, outcome, warning=stuck):
            return False  # the job is gone: its pod goes with it
    if stop:
        # Only once the verdict is written: an operator killed between the two then finds
        # a finished job (its pod ends by itself, or by activeDeadlineSeconds at the latest),
        # never a job whose pod it deleted without saying why (it would end PodLost).
        await kube.delete_pod(ref.namespace, pod_name(ref.name), STOP_GRACE_SECONDS)
    if ends:
        ctx.plans.drop(ref.uid)
    return ends and not same


async def _decision(
    ctx: Context, job: JobRead, admitted_with: Mapping[str, Any] | None = None
) -> Admitted | Refusal:
    """What admission decided for `job`, read back (batchx.planning.job_record), not redone.

    The manifest comes from the job's plan ConfigMap once it exists, before that from the
    pinned Image (looked up by its exact coordinates), or `admitted_with`: the pinned Image's
    manifest as the pass that admitted the job just read it. A job without a record (admitted
    by an operator that kept none) is judged again, against that same pinned manifest.
    """
    ref = job.ref
    manifest = dict(admitted_with) if admitted_with else ctx.plans.get(ref.uid)
    if manifest is None:
        config_map = await ctx.kube.get_config_map(ref.namespace, plan_config_map_name(ref.name))
        manifest = plan_manifest(config_map) if owned_by(config_map, ref) else None
        if manifest is not None:
            ctx.plans.keep(ref.uid, manifest)
    pinned = job.status.image
    if manifest is None:
        images = await candidates(ctx, ref.namespace, job)
        match = next(
            (c for c in images if pinned and str(c.coordinates) == pinned.coordinates), None
        )
        if match is None:  # nothing to judge by: the image is gone and no plan kept it
            return _refusal(job.judge(images, job_policy(ctx.settings)))
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


def stopping(status: JobStatus) -> bool:
    return status.state is JobState.CANCELLING


def grace_left(pod: JSON) -> float:
    """The grace period a pod is being deleted with (infinite while it is not being deleted).

    A pod deleted with a longer grace (by hand, by the namespace's deletion) is deleted again
    with the stop grace: the API server shortens the grace of a pod that is terminating.
    """
    meta = pod.get("metadata") or {}
    if not meta.get("deletionTimestamp"):
        return float("inf")
    return float(meta.get("deletionGracePeriodSeconds") or 0)


def job_key(namespace: str, name: str) -> str:
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
    key = job_key(ref.namespace, ref.name)
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
        await events.post(ctx, (await reconcile_job(ctx, ref.namespace, ref.name)).notices)

    ctx.wakeups.at(key, left + DEADLINE_MARGIN_SECONDS, wake)


async def _create_pod(
    ctx: Context, job: JobRead, decision: Admitted, outcome: Outcome
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
    record = await plan_record(ctx, ref, request)
    if record is None:
        outcome.retry_after, outcome.retry_reason = STORE_RETRY_SECONDS, "the store failed"
        return None
    plan = staging_plan(ref, request, job.model.spec.input, record)
    config_map = plan_config_map(ref, plan, decision.document)
    try:
        await kube.create_config_map(config_map)
    except Conflict:  # created before: the plan is a function of the immutable spec
        existing_plan = await kube.get_config_map(ref.namespace, plan_config_map_name(ref.name))
        if existing_plan is not None and not owned_by(existing_plan, ref):
            _previous_job(outcome, "plan ConfigMap")
            return None
    else:
        await _remove_stale_files(ctx, ref, outcome)
    if (kept := plan_manifest(config_map)) is not None:
        ctx.plans.keep(ref.uid, kept)  # what the plan holds (created now, or the same before)
    settings = ctx.settings
    placement = Placement(settings.job_tolerations, settings.job_node_selector)
    body = place(plan_pod(ref, request, policy, input_text=inline_input(plan)), placement)
    if request.manifest.manifest.is_pipeline:
        await pipeline.prepare(ctx, ref)
        body = pipeline.with_identity(body, ref, JOB_CONTAINER)
    try:
        created: JSON = await kube.create_pod(body)
    except Conflict:
        existing = await kube.get_pod(ref.namespace, body["metadata"]["name"])
        if existing is None:  # deleted again in between: decide on the next event
            outcome.retry_after = QUOTA_RETRY_SECONDS
            outcome.retry_reason = "pod deleted while being created"
        elif not owned_by(existing, ref):
            if grace_left(existing) > STOP_GRACE_SECONDS:
                await kube.delete_pod(ref.namespace, pod_name(ref.name), STOP_GRACE_SECONDS)
            _previous_job(outcome, "pod")
            return None
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
    message = f"created pod {body['metadata']['name']}"
    outcome.notices.append(Notice(job_ref_body(ref), "Normal", "PodCreated", message, _AT_POD))
    return created


async def _remove_stale_files(ctx: Context, ref: JobRef, outcome: Outcome) -> None:
    """Files under the job's folder before its first pod are a deleted namesake's.

    The plan was just created, so this job never had a pod and wrote nothing: what lies under
    ``bx://jobs/<name>/`` was left by a deleted Job of the same name whose finalizer was bypassed
    (`release_job` removes them otherwise), and would make this job's upload fail on immutable
    paths. A store that cannot be read now leaves them (the upload reports any conflict).
    """
    try:
        removed = await remove_files(ctx, ref.namespace, job_files(ref.name))
    except Exception as err:  # any store failure: the job runs; a conflicting upload says so
        # One line, not a traceback: a store outage is an expected fault (make chaos).
        logger.warning(
            "stale files of job %s not checked: %s: %s", ref.name, type(err).__name__, err
        )
        return
    if removed:
        message = (
            f"removed {removed} files under bx://{job_files(ref.name)} left by a deleted job of "
            "the same name (its finalizer was bypassed)"
        )
        notice = Notice(job_ref_body(ref), "Warning", "StaleFilesRemoved", message, _AT_POD)
        outcome.notices.append(notice)


def _previous_job(outcome: Outcome, what: str) -> None:
    """Wait for the garbage collector: a deleted Job of the same name still has its `what`."""
    outcome.retry_after = QUOTA_RETRY_SECONDS
    outcome.retry_reason = f"the {what} of a deleted job of the same name is being removed"


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


def owner_job(pod: JSON) -> str | None:
    """The name of the Job that owns `pod`, if a Job does."""
    for owner in (pod.get("metadata") or {}).get("ownerReferences") or []:
        if owner.get("kind") == "Job" and owner.get("apiVersion") == API_VERSION:
            return str(owner.get("name"))
    return None


__all__ = [
    "STOP_GRACE_SECONDS",
    "STORE_RETRY_SECONDS",
    "admit",
    "grace_left",
    "job_key",
    "job_policy",
    "owner_job",
    "pod_policy",
    "reconcile_job",
]
