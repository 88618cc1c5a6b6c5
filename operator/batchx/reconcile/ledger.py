"""Charge records: make the durable copy of every job charge (design: batchx.planning.ledger),
and then label final Jobs finished, so that the ledger and admission need not read them again
(design and invariant: batchx.planning.finished).

`mark_finished` runs on each event of an unlabelled Job (the ledger's handler); `settle` also
labels the final Jobs its listing of unfinished ones still shows (an operator killed between the
final status write and the label, or Jobs that finished before the label existed), a bounded
number per call, in the API client's background, so that taking in 10,000 old Jobs never holds
up an admission.
"""

from __future__ import annotations

import asyncio
import logging

from batchx.clients.kube import Conflict, Forbidden, Invalid, KubeError, NotFound, background
from batchx.planning.finished import finished_labels
from batchx.planning.labels import FINISHED, UNFINISHED
from batchx.planning.ledger import (
    RECORD_SELECTOR,
    ChargeRecord,
    JobAccount,
    Recorded,
    charge_record,
    missing_records,
    needs_record,
    record_name,
)
from batchx.reconcile.context import JSON, Context

logger = logging.getLogger(__name__)

# Leftovers labelled per ledger read: an upgrade's 10,000 old Jobs go in batches, in the
# background, over the ledger's next reads (each job event and resync makes one).
LEFTOVERS_PER_CALL = 500


async def ensure_record(ctx: Context, namespace: str, job: JobAccount) -> ChargeRecord:
    """Create the job's charge record; if it exists already, the stored one is the record."""
    try:
        await ctx.kube.create_config_map(charge_record(namespace, job))
    except Conflict:
        # AlreadyExists: recorded before (maybe by a run that died right after). Its amount,
        # not ours, is the charge: the first write is the one that counts.
        existing = await ctx.kube.get_config_map(namespace, record_name(job.uid))
        if existing is not None:
            stored = ChargeRecord.from_config_map(existing)
            ctx.recorded.add(namespace, [stored])
            return stored
    made = ChargeRecord(job.uid, job.name, job.charged)
    ctx.recorded.add(namespace, [made])
    return made


async def _known_records(ctx: Context, namespace: str) -> Recorded:
    """The namespace's charge records as known (listed once per process: `RecordedCharges`)."""
    if not ctx.recorded.loaded(namespace):
        async with ctx.locks.hold(f"records/{namespace}"):
            if not ctx.recorded.loaded(namespace):
                listed = await ctx.kube.list_config_maps(namespace, RECORD_SELECTOR)
                ctx.recorded.load(namespace, map(ChargeRecord.from_config_map, listed))
    return ctx.recorded.summary(namespace)


async def _known_recorded(ctx: Context, namespace: str, uid: str) -> bool:
    """Whether the job's record is known to exist (the namespace's records listed once)."""
    await _known_records(ctx, namespace)
    return ctx.recorded.has(namespace, uid)


async def record_job(ctx: Context, namespace: str, job: JobAccount) -> None:
    """Record `job`'s charge if it has one; once this returns the job may be deleted."""
    if not needs_record(job):
        return
    try:
        if await _known_recorded(ctx, namespace, job.uid):
            return
        await ensure_record(ctx, namespace, job)
    except NotFound:
        # The namespace is gone (the job's last event can arrive after it): so are its
        # Environment and ledger, and there is nothing to record into.
        return
    except Forbidden:
        # Nothing can be created in a namespace being deleted, and nothing needs to be: its
        # Environment is gone, ledger included. Any other refusal is a real error (retried).
        ns = await ctx.kube.get_namespace(namespace)
        if ns is not None and not ns.get("metadata", {}).get("deletionTimestamp"):
            raise


async def settle(
    ctx: Context,
    namespace: str,
    job_bodies: list[JSON] | None = None,
    *,
    label: bool = False,
    fresh: bool = True,
) -> tuple[list[JobAccount], Recorded]:
    """Read the namespace's ledger, recording any charge not recorded yet.

    Only the Jobs without ``batchx.io/finished`` are read: a labelled Job is final and its
    charge is in a record already (`batchx.planning.finished`), so the records hold everything
    the labelled Jobs would add. Jobs are listed before records: a job that finishes and gets
    recorded (and labelled) in between is seen once as a non-terminal job and once as a record,
    and the record wins (no double count). `job_bodies` is a list of the namespace's unfinished
    jobs the caller has just read (the admission pass: one list per pass, not two), read before
    the records here. With `label`, the final Jobs of that list are labelled
    (`label_leftovers`): not in an admission pass, whose writes a new job waits for.

    `fresh` lists the records from the API server (the Environment's reconcile and resync: a
    record deleted by hand is made again while its job exists); otherwise they are the known
    ones (`RecordedCharges`, listed once per process), so that an admission pass or a job
    event's credit refresh does not list one ConfigMap per charged job each time.
    """
    if job_bodies is None:
        try:
            job_bodies = await ctx.kube.list_objects("jobs", namespace, selector=UNFINISHED)
        except NotFound:
            job_bodies = []  # the Job CRD is not installed: no jobs, nothing reserved
    jobs = [JobAccount.from_body(b) for b in job_bodies]
    if fresh:
        listed = await ctx.kube.list_config_maps(namespace, RECORD_SELECTOR)
        records = [ChargeRecord.from_config_map(c) for c in listed]
        ctx.recorded.load(namespace, records)
        for job in missing_records(jobs, records):
            records.append(await ensure_record(ctx, namespace, job))
        recorded = Recorded.of(records)
    else:
        for job in missing_records(jobs, await _known_records(ctx, namespace)):
            await ensure_record(ctx, namespace, job)  # known from then on
        recorded = ctx.recorded.summary(namespace)
    if label:
        await label_leftovers(ctx, job_bodies)
    return jobs, recorded


async def mark_finished(ctx: Context, body: JSON) -> JSON | None:
    """Record the Job's charge (if it has one), then, if it is final, label it; its new body,
    or None (no label needed, or the Job is gone or is another one of the same name now)."""
    meta = body.get("metadata") or {}
    namespace, name, uid = str(meta["namespace"]), str(meta["name"]), str(meta.get("uid") or "")
    # First the record: a labelled Job's charge must already be in one (the ledger does not
    # read labelled Jobs).
    await record_job(ctx, namespace, JobAccount.from_body(body))
    wanted = finished_labels(body)
    if wanted is None:
        return None
    try:
        labelled = await ctx.kube.patch_labels("jobs", namespace, name, wanted, uid=uid or None)
    except (NotFound, Conflict, Invalid):
        return None  # gone, or a new Job of that name (its uid differs): not ours to label
    ctx.finished.add(namespace, uid, wanted[FINISHED])
    return labelled


async def job_states(ctx: Context, namespace: str, jobs: list[JobAccount]) -> list[str | None]:
    """The states of all the namespace's jobs: `jobs` (a listing of the unfinished ones) and
    the labelled ones (`Context.finished`, listed once per process), each job once."""
    if not ctx.finished.loaded(namespace):
        async with ctx.locks.hold(f"finished/{namespace}"):
            if not ctx.finished.loaded(namespace):
                with background(True):
                    listed = await ctx.kube.list_objects("jobs", namespace, selector=FINISHED)
                states = {
                    str(b["metadata"].get("uid")): str(b["metadata"]["labels"][FINISHED])
                    for b in listed
                }
                ctx.finished.load(namespace, states)
    by_uid: dict[str, str | None] = {j.uid: j.state for j in jobs}
    by_uid.update(ctx.finished.states(namespace))
    return list(by_uid.values())


async def label_leftovers(ctx: Context, bodies: list[JSON]) -> int:
    """Label the final Jobs among `bodies` (a listing of unlabelled ones); how many were."""
    leftovers = [b for b in bodies if finished_labels(b) is not None][:LEFTOVERS_PER_CALL]
    if not leftovers:
        return 0
    with background(True):
        results = await asyncio.gather(
            *(mark_finished(ctx, b) for b in leftovers), return_exceptions=True
        )
    failed = [r for r in results if isinstance(r, BaseException)]
    for err in failed:
        if not isinstance(err, KubeError):
            raise err
    if failed:  # labelled by a later read: an unlabelled final Job is only listed, not wrong
        logger.warning("%d finished jobs not labelled yet: %s", len(failed), failed[0])
    return len(leftovers) - len(failed)
