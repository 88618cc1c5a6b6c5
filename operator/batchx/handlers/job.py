"""Job handlers: every trigger runs the same level-triggered reconcile of one job.

Triggers: the Job's create/update (a cancel)/resume, its Pod's watch events, and a periodic
resync of unfinished jobs (it re-runs admission for queued jobs, and heals anything missed). A
started job's deadline is not left to the resync: its reconcile arms a wake-up for the moment
(`batchx.reconcile.context.Wakeups`), so ``Timeout`` is declared within a second of it.
Admission of an environment's queue also re-runs when a job ends and when the Environment changes
(credits topped up, quota raised). Re-checks of what is settled (a restart's resume of admitted
jobs, the listing of their pods, the resync) make their API requests in the client's
background, so that after a restart a new job's admission does not queue behind them.
"""

from __future__ import annotations

from typing import Any

import kopf

from batchx import GROUP, VERSION
from batchx.clients.kube import background
from batchx.handlers.setup import context, post
from batchx.handlers.setup import required as _required
from batchx.models import TERMINAL_STATES, JobState
from batchx.outage import outage_is_temporary
from batchx.planning import labels
from batchx.reconcile.context import Outcome
from batchx.reconcile.job import owner_job, reconcile_job
from batchx.reconcile.job_release import release_job
from batchx.settings import Settings

# Kopf fixes a timer's interval when the handler is registered (at import), so it is read here.
RESYNC_SECONDS = Settings.load().resync_seconds
_TERMINAL = frozenset(s.value for s in TERMINAL_STATES)
_WAITING = frozenset({None, JobState.SUBMITTED.value, JobState.QUEUED.value})


def _unfinished(status: kopf.Status, **_: Any) -> bool:
    return status.get("state") not in _TERMINAL


def _raise_retry(outcome: Outcome) -> None:
    if outcome.retry_after is not None:
        raise kopf.TemporaryError(outcome.retry_reason, delay=outcome.retry_after)


# A finished job (labelled: `batchx.planning.finished`) is not resumed, updated or resynced:
# a restart takes in 10,000 of them for the price of Kopf's listing. Its deletion (`job_deleted`,
# Kopf's finalizer) still runs; a final job not labelled yet is told apart by `_unfinished`.
_UNLABELLED = {labels.FINISHED: kopf.ABSENT}


@kopf.on.resume(GROUP, VERSION, "jobs", labels=_UNLABELLED, when=_unfinished)
@kopf.on.create(GROUP, VERSION, "jobs")
@kopf.on.update(GROUP, VERSION, "jobs", labels=_UNLABELLED, when=_unfinished)
@outage_is_temporary
async def job_changed(
    name: str,
    namespace: str | None,
    reason: str,
    status: kopf.Status,
    memo: kopf.Memo,
    **_: Any,
) -> None:
    # A restart resumes every admitted job: a re-check, after anything new (`background`).
    settled = reason == kopf.Reason.RESUME and status.get("state") not in _WAITING
    with background(settled):
        outcome = await reconcile_job(context(memo), _required(namespace), name)
    await post(memo, outcome)
    _raise_retry(outcome)


@kopf.on.delete(GROUP, VERSION, "jobs", id="files")
@outage_is_temporary
async def job_deleted(
    name: str, namespace: str | None, uid: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """Holds a Job's deletion (Kopf's finalizer) until its pod is gone and its files removed."""
    outcome = await release_job(context(memo), _required(namespace), name, _required(uid))
    _raise_retry(outcome)


@kopf.timer(
    GROUP,
    VERSION,
    "jobs",
    interval=RESYNC_SECONDS,
    initial_delay=RESYNC_SECONDS,
    labels=_UNLABELLED,
    when=_unfinished,
)
@outage_is_temporary
async def job_resync(name: str, namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    with background():
        outcome = await reconcile_job(context(memo), _required(namespace), name)
    await post(memo, outcome)


@kopf.on.event(
    "",
    "v1",
    "pods",
    labels={labels.MANAGED_BY: labels.MANAGED_BY_VALUE, labels.LEDGER_JOB: kopf.PRESENT},
)
@outage_is_temporary
async def pod_event(
    body: kopf.Body, type: str | None, namespace: str | None, memo: kopf.Memo, **_: Any
) -> None:
    """A job's Pod changed: its status moves the job's state (a listing's pod, `type` None:
    a re-check after a restart or a re-watch, in the API client's background)."""
    job = owner_job(dict(body))
    if job is not None:
        with background(type is None):
            outcome = await reconcile_job(context(memo), _required(namespace), job)
        await post(memo, outcome)
