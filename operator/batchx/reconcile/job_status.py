"""Jobs as the reconcilers read them, and how their status is written (one place for both).

`JobRead` is a Job body with its parsed model; `write_status` writes a status computed from a
read with that read's resourceVersion (a decision made from a stale read is refused, `Stale`)
and posts an Event when the state (or, for a job that is stuck, its reason) changes: one per
transition, worded by `batchx.planning.events.job_event`, so a resync that writes nothing new
says nothing. A status that would change nothing once merged into the stored one is not sent at
all (`batchx.planning.status_patch`): a restart's resume of every running job, its pods'
listing events and each resync cost reads, not writes.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cached_property

from batchx import metrics
from batchx.clients.kube import Conflict, NotFound
from batchx.models import Job, JobState, JobStatus
from batchx.planning.events import involved, job_event
from batchx.planning.job_admission import ImageCandidate, JobPolicy, Refusal, Request, judge_job
from batchx.planning.job_pod import JobRef
from batchx.planning.kstatus import with_job_conditions
from batchx.planning.labels import PARENT
from batchx.planning.status_patch import status_changes
from batchx.reconcile.context import JSON, Context, Notice, Outcome

logger = logging.getLogger(__name__)

PLURAL = "jobs"
WAITING = frozenset({None, JobState.SUBMITTED, JobState.QUEUED})


@dataclass
class JobRead:
    """One Job as read from the API.

    Its typed view (`model`) is made on first use: an admission pass lists every job of the
    namespace, and the finished ones (most of them, in a long-lived environment) are only asked
    their state and cache key, read from the body (10,000 validations cost 1.5 s a pass).
    """

    body: JSON

    @cached_property
    def model(self) -> Job:
        return Job.model_validate(
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
        if "model" in self.__dict__:
            return self.status.state
        return self._listed_state

    @cached_property
    def _listed_state(self) -> JobState | None:
        """The state as the body says (the typed view, once made, is read instead)."""
        raw = (self.body.get("status") or {}).get("state")
        try:
            return None if raw is None else JobState(raw)
        except ValueError:  # not one of ours: as the typed view would read it
            return self.status.state

    def refresh(self, body: JSON) -> None:
        """Take `body` as the job now is (a write's answer, a re-read): the typed view and
        the state are made again from it, on first use."""
        self.body = body
        for derived in ("model", "_listed_state"):
            self.__dict__.pop(derived, None)

    @property
    def cache_key(self) -> str | None:
        """``status.admission.cacheKey``, read from the body (no typed view made)."""
        admission = (self.body.get("status") or {}).get("admission") or {}
        key = admission.get("cacheKey") if isinstance(admission, dict) else None
        return key if isinstance(key, str) else None

    @property
    def created(self) -> datetime | None:
        stamp = self.meta.get("creationTimestamp")
        return datetime.fromisoformat(str(stamp).replace("Z", "+00:00")) if stamp else None

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
    return involved("Job", ref.name, ref.uid, ref.namespace)


async def write_status(
    ctx: Context,
    job: JobRead,
    status: JobStatus,
    outcome: Outcome,
    *,
    precondition: bool = True,
    warning: bool = False,
) -> bool:
    """Write `status` if the job is still as read; post an Event when its state or reason
    changes (a Warning for failures, and when `warning` says the job is stuck). A status that
    changes nothing (`unchanged`) is not written: True, as if it had been.

    Admission writes go without the precondition: only the admission pass (serialised per
    environment) writes a waiting job's status, so a concurrent change can only be Kopf's
    annotations or a cancel, which the job's own reconcile handles after admission.
    """
    # Every write carries the conditions generic tools read (Ready, Reconciling, Stalled).
    status = with_job_conditions(status, generation=job.ref.generation, now=datetime.now(UTC))
    patch = status.to_json()
    changes = status_changes(job.status.to_json(), patch)
    if not changes:
        return True
    logger.debug("job %s/%s: status write changes %s", job.namespace, job.name, changes)
    version = str(job.meta.get("resourceVersion") or "") if precondition else ""
    try:
        updated = await ctx.kube.patch_status(
            PLURAL, job.namespace, job.name, patch, resource_version=version or None
        )
    except NotFound:
        return False
    except Conflict as exc:
        raise Stale(f"job {job.name} changed while being reconciled") from exc
    previous = job.status
    job.refresh(updated)
    metrics.job_state_changed(job.namespace, previous.state, status, job.created)
    parent = (job.meta.get("labels") or {}).get(PARENT)
    if parent and previous.state != status.state:
        outcome.parents.add((job.namespace, str(parent)))
    news = job_event(previous, status, stuck=warning)
    if news is not None:
        ref = job_ref_body(job.ref)
        outcome.notices.append(Notice(ref, news.type, news.reason, news.message, news.order))
    return True


def unchanged(job: JobRead, status: JobStatus) -> bool:
    """Whether writing `status` (as `write_status` would) leaves the job's status as it is."""
    written = with_job_conditions(status, generation=job.ref.generation, now=datetime.now(UTC))
    return not status_changes(job.status.to_json(), written.to_json())


class Stale(Exception):
    """The job changed since it was read: its status was not written."""


def merge(into: Outcome, other: Outcome) -> None:
    into.notices.extend(other.notices)
    into.parents |= other.parents
    if other.retry_after is not None and (
        into.retry_after is None or other.retry_after < into.retry_after
    ):
        into.retry_after, into.retry_reason = other.retry_after, other.retry_reason


async def write_or_retry(
    ctx: Context, job: JobRead, status: JobStatus, outcome: Outcome, *, warning: bool = False
) -> bool:
    """An admission write; a job that changed meanwhile is decided again by another pass."""
    try:
        return await write_status(ctx, job, status, outcome, precondition=False, warning=warning)
    except Stale:
        # Its update event (or the resync) triggers the next pass, which reads it afresh.
        outcome.retry_after, outcome.retry_reason = 1.0, f"job {job.name} changed; admit again"
        return False


def same_wait(previous: JobStatus, status: JobStatus) -> bool:
    """A waiting job whose state, reason and numbers did not change needs no write (no Event
    storm)."""
    if previous.state is not status.state:
        return False
    old = [(c.reason, c.message) for c in previous.conditions]
    return old == [(c.reason, c.message) for c in status.conditions]


__all__ = [
    "PLURAL",
    "WAITING",
    "JobRead",
    "Stale",
    "job_ref_body",
    "merge",
    "same_wait",
    "unchanged",
    "write_or_retry",
    "write_status",
]
