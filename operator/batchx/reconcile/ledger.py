"""Charge records: make the durable copy of every job charge (design: batchx.planning.ledger)."""

from __future__ import annotations

from batchx.clients.kube import Conflict, Forbidden, NotFound
from batchx.planning.ledger import (
    RECORD_SELECTOR,
    ChargeRecord,
    JobAccount,
    charge_record,
    missing_records,
    needs_record,
    record_name,
)
from batchx.reconcile.context import JSON, Context


async def ensure_record(ctx: Context, namespace: str, job: JobAccount) -> ChargeRecord:
    """Create the job's charge record; if it exists already, the stored one is the record."""
    try:
        await ctx.kube.create_config_map(charge_record(namespace, job))
    except Conflict:
        # AlreadyExists: recorded before (maybe by a run that died right after). Its amount,
        # not ours, is the charge: the first write is the one that counts.
        existing = await ctx.kube.get_config_map(namespace, record_name(job.uid))
        if existing is not None:
            ctx.recorded.add(namespace, [job.uid])
            return ChargeRecord.from_config_map(existing)
    ctx.recorded.add(namespace, [job.uid])
    return ChargeRecord(job.uid, job.name, job.charged)


async def _known_recorded(ctx: Context, namespace: str, uid: str) -> bool:
    """Whether the job's record is known to exist (the namespace's records listed once)."""
    if not ctx.recorded.loaded(namespace):
        async with ctx.locks.hold(f"records/{namespace}"):
            if not ctx.recorded.loaded(namespace):
                listed = await ctx.kube.list_config_maps(namespace, RECORD_SELECTOR)
                uids = [ChargeRecord.from_config_map(c).job_uid for c in listed]
                ctx.recorded.add(namespace, uids)
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
    ctx: Context, namespace: str, job_bodies: list[JSON] | None = None
) -> tuple[list[JobAccount], list[ChargeRecord]]:
    """Read the namespace's ledger, recording any charge not recorded yet.

    Jobs are listed before records: a job that finishes and gets recorded in between is seen
    once as a non-terminal job and once as a record, and the record wins (no double count).
    `job_bodies` is a list of the namespace's jobs the caller has just read (the admission
    pass: one list per pass, not two), read before the records here.
    """
    if job_bodies is None:
        try:
            job_bodies = await ctx.kube.list_objects("jobs", namespace)
        except NotFound:
            job_bodies = []  # the Job CRD is not installed: no jobs, nothing reserved
    jobs = [JobAccount.from_body(b) for b in job_bodies]
    records = [
        ChargeRecord.from_config_map(c)
        for c in await ctx.kube.list_config_maps(namespace, RECORD_SELECTOR)
    ]
    ctx.recorded.add(namespace, (r.job_uid for r in records))
    for job in missing_records(jobs, records):
        records.append(await ensure_record(ctx, namespace, job))
    return jobs, records
