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
from batchx.planning import labels
from batchx.planning.ledger import JobAccount
from batchx.reconcile import ledger
from batchx.reconcile.environment import refresh_credits


@kopf.on.event(GROUP, VERSION, "jobs", labels={labels.FINISHED: kopf.ABSENT})
@outage_is_temporary
async def job_event(
    body: kopf.Body, type: str | None, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """Any change of an unfinished job may move a reservation or a charge: record (and label a
    final job finished: `batchx.reconcile.ledger.mark_finished`), then recompute the credits
    (only those: `batchx.reconcile.environment.refresh_credits`). A listing's job (`type` None)
    goes in the API client's background: a restart lists them all. A labelled job changes
    nothing the ledger counts (its charge is in its record), so its events are not handled
    here. The credits' refresh always goes in the background: it reports (admission settles
    the ledger itself), and in a burst of jobs its reads came before the jobs' pods."""
    ctx, ns = context(memo), _required(namespace)

    async def refresh() -> None:
        await post(memo, await refresh_credits(ctx, ns))

    with background(type is None):
        await ledger.mark_finished(ctx, dict(body))
    with background():
        await ctx.coalescer.run(f"environment/{ns}", refresh)


@kopf.on.delete(GROUP, VERSION, "jobs", id="ledger")
@outage_is_temporary
async def job_deleted(body: kopf.Body, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """Holds a job's deletion (Kopf's finalizer) until its charge is recorded."""
    ctx, ns, job = context(memo), _required(namespace), JobAccount.from_body(dict(body))
    await ledger.record_job(ctx, ns, job)
    ctx.finished.remove(ns, job.uid)
