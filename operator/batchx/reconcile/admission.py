"""Admission of one environment's waiting jobs: judged, checked, queued first in, first out.

One pass (serialised and coalesced per environment by `batchx.reconcile.job.admit`) owns the
jobs that were not admitted yet (no state, ``SUBMITTED``, ``QUEUED``): it judges each (refusal
-> ``FAILED``), serves the ones an identical earlier job answers and holds the twins of a
running one (`batchx.reconcile.cache`), checks what needs the world around it
(`batchx.planning.job_checks`: the Environment, the store's index, the nodes' GPU products),
asks `admit_fifo` which fit the quota and the ledger's fresh balance, and writes ``QUEUED``
(with the numbers) or ``STARTING`` (image pinned, credits reserved, the decision recorded in
``status.admission``). The admission status is stored *before* any object is created, so the
ledger counts the reservation from then on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from batchx.clients.kube import KubeError
from batchx.domain.coordinates import CoordinatesError, parse_coordinates
from batchx.domain.validation import FileRef
from batchx.models import EnvironmentQuota, JobState
from batchx.planning import labels
from batchx.planning.job_admission import (
    Admit,
    Capacity,
    ImageCandidate,
    JobPolicy,
    Refusal,
    Request,
    Resources,
    Usage,
    Wait,
    admission_status,
    admit_fifo,
    cancelled_status,
    image_candidate,
    submitted_status,
)
from batchx.planning.job_checks import (
    missing_files_refusal,
    no_environment_status,
    offered_gpu_types,
    unoffered_gpu_type,
)
from batchx.planning.ledger import JobAccount, credit_totals
from batchx.planning.pipeline import (
    by_coordinates,
    judge_child,
    largest,
    name_refusal,
    parent_of,
    pipeline_steps,
    step_usage,
)
from batchx.reconcile import cache, ledger
from batchx.reconcile.context import Context, Outcome
from batchx.reconcile.job_status import (
    PLURAL,
    WAITING,
    JobRead,
    Stale,
    same_wait,
    write_or_retry,
    write_status,
)
from batchx.reconcile.storage import missing_inputs
from batchx.settings import Settings

logger = logging.getLogger(__name__)


def job_policy(settings: Settings) -> JobPolicy:
    return JobPolicy(
        prices=settings.prices,
        default_timeout=settings.default_timeout,
        max_timeout=settings.max_timeout,
    )


# ------------------------------------------------------------------------------- images


async def candidates(
    ctx: Context, namespace: str, job: JobRead | None = None
) -> list[ImageCandidate]:
    """Images a job of `namespace` may resolve to; for an admitted job only its pinned one's."""
    pinned = job.status.image.coordinates if job and job.status.image else None
    if pinned:
        try:
            home = parse_coordinates(pinned).environment
        except CoordinatesError:
            return []
        bodies = await ctx.kube.list_objects("images", home)
    else:  # two independent reads at once: a hit's latency is a chain of these round trips
        own, public = await asyncio.gather(
            ctx.kube.list_objects("images", namespace),
            ctx.kube.list_all_namespaces("images", f"{labels.PUBLIC}=true"),
        )
        bodies = own + [b for b in public if b["metadata"].get("namespace") != namespace]
    return [c for c in map(image_candidate, bodies) if c is not None]


# ---------------------------------------------------------------------------- admission


async def admission_pass(ctx: Context, namespace: str, outcome: Outcome) -> list[AdmittedJob]:
    kube = ctx.kube
    # Only the unfinished jobs: a pass's cost does not grow with the finished ones it keeps
    # (`batchx.planning.finished`); the cache asks for its entries by their key's label.
    env, bodies = await asyncio.gather(
        kube.get_cluster_object("environments", namespace),
        kube.list_objects(PLURAL, namespace, selector=labels.UNFINISHED),
    )
    jobs = [JobRead(b) for b in bodies]
    waiting = [j for j in jobs if j.state in WAITING and not j.deleting]
    if not waiting:
        return []
    now = datetime.now(UTC)
    # SUBMITTED first for any job whose own reconcile has not written it yet; one that cannot
    # be marked now is left to a later pass. The writes go at once (a burst's jobs are all
    # unmarked; one after another they cost a round trip each before anything is decided),
    # and with them the reads they do not change: the images and, for a ready Environment,
    # the ledger (its records read after the jobs this pass listed: see `ledger.settle`).
    unmarked = [j for j in waiting if j.state is None]
    marks = asyncio.gather(*(_marked(ctx, j, outcome, now) for j in unmarked))
    ready = env is not None and (env.get("status") or {}).get("namespace") == namespace
    if ready:
        marked, images, (accounts, records) = await asyncio.gather(
            marks, candidates(ctx, namespace), ledger.settle(ctx, namespace, bodies, fresh=False)
        )
    else:
        marked = await marks
    lost = {j.name for j, ok in zip(unmarked, marked, strict=True) if not ok}
    waiting = [j for j in waiting if j.name not in lost]
    if not waiting:
        return []
    if env is None or not ready:
        # No ready Environment owns this namespace: the jobs wait, and are told why.
        for job in waiting:
            status = no_environment_status(
                job.model, namespace, generation=job.ref.generation, now=now
            )
            if not same_wait(job.status, status):
                await write_or_retry(ctx, job, status, outcome, warning=True)
        return []
    policy = job_policy(ctx.settings)

    requests: dict[str, tuple[JobRead, Request]] = {}
    by_name = {j.name: j for j in jobs} | await _finished_parents(ctx, namespace, waiting, jobs)
    for job in waiting:
        ref = job.ref
        if job.model.spec.cancel:
            status = cancelled_status(job.model, generation=ref.generation, now=now)
            await write_or_retry(ctx, job, status, outcome)
            continue
        verdict = _pipelined(job, job.judge(images, policy), by_name, images, policy, now)
        if isinstance(verdict, Refusal):
            status = admission_status(job.model, verdict, generation=ref.generation, now=now)
            await write_or_retry(ctx, job, status, outcome)
            continue
        requests[job.name] = (job, verdict)
    # Hits finish here, twins of a running job wait; neither needs quota or credits.
    await cache.serve_or_hold(ctx, jobs, requests, namespace=namespace, outcome=outcome, now=now)
    if not requests:  # all served or held (or refused): the ledger and quota are not needed
        return []
    totals = credit_totals((env.get("spec") or {}).get("credits"), accounts, records)
    running, running_reserved, steps_running = _running(jobs, images, policy)
    spec_quota = (env.get("spec") or {}).get("quota")
    quota = EnvironmentQuota.model_validate(spec_quota) if spec_quota else None
    capacity = Capacity.of(
        quota,
        running=running,
        balance=totals.balance,
        running_reserved=running_reserved,
        unavailable=ctx.settings.jobs_unavailable(),
        steps_running=steps_running,
    )
    decisions = await _decide(ctx, _Pass(namespace, requests, outcome, now), capacity)
    # Written at once (the API client's limiter bounds the requests in flight): each write
    # stands alone, and the first admitted job's pod should not wait for the last one's write.
    written = await asyncio.gather(
        *(_write_decision(ctx, requests, d, outcome, now) for d in decisions)
    )
    return [started for started in written if started is not None]


@dataclass(frozen=True)
class AdmittedJob:
    """A job this pass admitted, as its admission write left it, and the manifest it was
    admitted with: its start needs neither read again (`batchx.reconcile.job.admit`)."""

    job: JobRead
    manifest: Mapping[str, Any]


async def _write_decision(
    ctx: Context,
    requests: dict[str, tuple[JobRead, Request]],
    decision: Admit | Wait,
    outcome: Outcome,
    now: datetime,
) -> AdmittedJob | None:
    job, request = requests[decision.request.name]
    status = admission_status(job.model, decision, generation=job.ref.generation, now=now)
    if isinstance(decision, Wait) and same_wait(job.status, status):
        return None
    if await write_or_retry(ctx, job, status, outcome) and isinstance(decision, Admit):
        return AdmittedJob(job, request.manifest_document)
    return None


async def _finished_parents(
    ctx: Context, namespace: str, waiting: list[JobRead], jobs: list[JobRead]
) -> dict[str, JobRead]:
    """The parents of waiting children that the pass's listing (unfinished jobs) lacks: read
    one by one (a finished parent refuses its child as not running, a missing one as gone)."""
    listed = {j.name for j in jobs}
    wanted = {
        str(parent)
        for j in waiting
        if (parent := (j.meta.get("labels") or {}).get(labels.PARENT)) and parent not in listed
    }
    found = await asyncio.gather(*(ctx.kube.get_object(PLURAL, namespace, n) for n in wanted))
    return {b["metadata"]["name"]: JobRead(b) for b in found if b is not None}


async def _marked(ctx: Context, job: JobRead, outcome: Outcome, now: datetime) -> bool:
    """Write SUBMITTED for a job this pass sees before its own reconcile wrote it; False when
    the job could not be marked (gone, or changed on every attempt).

    SUBMITTED is always a job's first state (a pass another job started once wrote QUEUED
    first: test_job_events), and the pass still decides every job in order (leaving such a
    job out let a younger twin run first: test_caching). Written on the job as read: a write
    that meets a change (the job's own SUBMITTED, or Kopf's finalizer and annotations on a new
    object) reads the job again and, while it still has no state, tries again.
    """
    for _ in range(_MARK_ATTEMPTS):
        status = submitted_status(job.model, generation=job.ref.generation, now=now)
        try:
            return await write_status(ctx, job, status, outcome)
        except Stale:
            fresh = await ctx.kube.get_object(PLURAL, job.namespace, job.name)
            if fresh is None:
                return False
            job.refresh(fresh)
            if job.state is not None:
                return True
    return False


_MARK_ATTEMPTS = 3


def _pipelined(  # noqa: PLR0917 (one pass's context, passed through)
    job: JobRead,
    verdict: Request | Refusal,
    jobs: dict[str, JobRead],
    images: list[ImageCandidate],
    policy: JobPolicy,
    now: datetime,
) -> Request | Refusal:
    """A child judged against its parent, a pipeline given the room of its largest step
    (`batchx.planning.pipeline`); any other verdict as it is."""
    if isinstance(verdict, Refusal):
        return verdict
    pipeline = verdict.manifest.manifest.pipeline
    if pipeline is not None:
        if (refused := name_refusal(job.name)) is not None:
            return refused
        need = step_usage(pipeline.step_coordinates, images)
        verdict = replace(verdict, step_need=need or Usage.of(verdict.resources))
    parent_name = (job.meta.get("labels") or {}).get(labels.PARENT)
    if not parent_name:
        return verdict
    found = jobs.get(str(parent_name))
    parent = None
    if found is not None and not found.deleting:
        parent = parent_of(
            found.name,
            found.ref.uid,
            str(found.meta.get("creationTimestamp") or ""),
            found.status,
            by_coordinates(images),
        )
    owner = next(
        (
            str(o.get("uid"))
            for o in job.meta.get("ownerReferences") or []
            if o.get("kind") == "Job" and o.get("name") == parent_name
        ),
        None,
    )
    judged = judge_child(verdict, parent, owner_uid=owner, now=now, prices=policy.prices)
    if isinstance(judged, Request) and parent is not None:
        judged = replace(judged, parent=(parent.created, parent.name))
    return judged


def _running(
    jobs: list[JobRead], images: list[ImageCandidate], policy: JobPolicy
) -> tuple[Usage, Decimal, Usage | None]:
    """What the admitted, unfinished jobs hold, their reservations, and the largest step of
    the pipelines among them."""
    running, reserved = Usage(), Decimal(0)
    steps: list[Usage | None] = []
    known = by_coordinates(images)
    for job in jobs:
        if job.state is None or job.state in WAITING or job.state.is_terminal:
            continue
        pinned = pipeline_steps(job.status.image.coordinates if job.status.image else None, known)
        if pinned is not None:
            steps.append(step_usage(pinned, images))
        # What an admitted job holds is what admission recorded; whatever became of its Image.
        recorded = job.status.admission
        if recorded is not None:
            running = running + Usage.of(Resources.of_model(recorded.resources))
        elif isinstance(verdict := job.judge(images, policy), Request):
            running = running + Usage.of(verdict.resources)
        reserved += JobAccount.from_body(job.body).reserved
    return running, reserved, largest(steps)


@dataclass
class _Pass:
    """One admission pass's valid requests (by job name) and where its writes report."""

    namespace: str
    requests: dict[str, tuple[JobRead, Request]]
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
            await write_or_retry(ctx, job, status, one.outcome)


async def _refuse_missing_files(
    ctx: Context, one: _Pass, files: dict[str, tuple[FileRef, ...]]
) -> bool:
    """Refuse (and drop from the pass) the jobs whose input files are not in the index."""
    missing = await missing_inputs(ctx, one.namespace, files)
    for name, refs in missing.items():
        job, _ = one.requests.pop(name)
        refusal = missing_files_refusal(one.namespace, refs)
        status = admission_status(job.model, refusal, generation=job.ref.generation, now=one.now)
        await write_or_retry(ctx, job, status, one.outcome)
    return bool(missing)


__all__ = ["AdmittedJob", "admission_pass", "candidates", "job_policy"]
