"""Job ledger handlers: record each job's charge and keep its Environment's credits true.

The Job controller itself (admission, pods, states) lives elsewhere; this module only reads
`status.state` and `status.credits` (see batchx.planning.ledger for the design).
"""

from __future__ import annotations

from typing import Any

import kopf

from batchx import GROUP, VERSION
from batchx.clients.kube import background
from batchx.handlers.setup import context, post
from batchx.handlers.setup import required as _required
from batchx.outage import outage_is_temporary
from batchx.planning.ledger import JobAccount
from batchx.reconcile import ledger
from batchx.reconcile.environment import refresh_credits


@kopf.on.event(GROUP, VERSION, "jobs")
@outage_is_temporary
async def job_event(
    body: kopf.Body, type: str | None, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """Any job change may move a reservation or a charge: record, then recompute the credits
    (only those: `batchx.reconcile.environment.refresh_credits`). A listing's job (`type`
    None) goes in the API client's background: a restart lists them all. The credits'
    refresh always does: it reports (admission settles the ledger itself), and in a burst of
    jobs its reads (the Environment, the jobs, the records) came before the jobs' pods."""
    ctx, ns = context(memo), _required(namespace)

    async def refresh() -> None:
        await post(memo, await refresh_credits(ctx, ns))

    with background(type is None):
        await ledger.record_job(ctx, ns, JobAccount.from_body(dict(body)))
    with background():
        await ctx.coalescer.run(f"environment/{ns}", refresh)


@kopf.on.delete(GROUP, VERSION, "jobs", id="ledger")
@outage_is_temporary
async def job_deleted(body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Holds a job's deletion (Kopf's finalizer) until its charge is recorded."""
    await ledger.record_job(context(memo), _required(namespace), JobAccount.from_body(dict(body)))
