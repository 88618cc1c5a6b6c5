"""Events: what `kubectl describe` shows as an object's timeline, decided without the API.

- `involved` is the one builder of the reference an Event is posted on (every kind).
- `job_event` says whether a Job's status write is news (its state changed, or a stuck job's
  reason did) and words it with the numbers: admitted with what resources and reservation,
  queued with why, finished with the run time and the charge.
- `event_body` names the Event after what it says (the object's uid, type, reason, message), as
  client-go's EventCorrelator keys its aggregation: the same news posted again (a retry, a second
  operator, a restart between the write and the post) finds its Event by name and counts up
  instead of adding a line. A name begins with the news' place in the job's life (`order`), so a
  listing sorted by name, as `kubectl describe` shows Events of the same second, reads in order.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

from batchx import API_VERSION
from batchx.models import JobState, JobStatus

JSON = dict[str, Any]

__all__ = [
    "EVENTS_NAMESPACE",
    "JobEvent",
    "event_body",
    "event_name",
    "involved",
    "job_event",
    "job_order",
]

# Cluster-scoped objects (Environments) have their Events here, as Kopf and kubectl put them.
EVENTS_NAMESPACE = "default"
_MESSAGE_MAX = 1024
_NAME_MAX = 253
_DIGEST = 16

_FAILURES = frozenset(
    {JobState.FAILED, JobState.OUT_OF_MEMORY, JobState.INVALID_OUTPUT, JobState.WARNING}
)
# A job's life in order; every terminal state is last.
_LIFE = (
    JobState.SUBMITTED,
    JobState.QUEUED,
    JobState.STARTING,
    JobState.DOWNLOADING_INPUT,
    JobState.RUNNING,
    JobState.UPLOADING_OUTPUT,
    JobState.CANCELLING,
)


def involved(kind: str, name: str, uid: str, namespace: str | None = None) -> JSON:
    """The object an Event is about (`involvedObject`), for any BatchX kind."""
    meta: JSON = {"name": name, "uid": uid}
    if namespace is not None:
        meta["namespace"] = namespace
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta}


def job_order(state: JobState | None, *, after: bool = False) -> int:
    """Where news about `state` stands in a job's life (`after`: news that follows it)."""
    rank = _LIFE.index(state) if state in _LIFE else len(_LIFE)
    return 2 * rank + (1 if after else 0)


@dataclass(frozen=True)
class JobEvent:
    type: str
    reason: str
    message: str
    order: int


def job_event(previous: JobStatus, status: JobStatus, *, stuck: bool = False) -> JobEvent | None:
    """The Event a job's move from `previous` to `status` deserves, or None when it is no news.

    News is a new state, or, for a job that is `stuck` (unschedulable, no environment), a new
    reason: a resync that writes the same state again (numbers refreshed) says nothing.
    """
    state = status.state
    condition = status.conditions[-1] if status.conditions else None
    old = previous.conditions[-1].reason if previous.conditions else None
    if state is None or (
        state is previous.state and not (stuck and condition and condition.reason != old)
    ):
        return None
    reason = condition.reason if condition else state.value
    detail = [condition.message] if condition and condition.message else []
    if state is JobState.STARTING and previous.state is not JobState.STARTING and status.image:
        detail.append(f"image {status.image.coordinates}")
    if state.is_terminal:
        detail.extend(_ending(status))
    message = f"{state.value}: {'; '.join(d for d in detail if d)}"
    kind = "Warning" if stuck or state in _FAILURES else "Normal"
    return JobEvent(kind, reason, message[:_MESSAGE_MAX], job_order(state))


def _ending(status: JobStatus) -> list[str]:
    """A finished job's numbers: exit code, run time, charge and the reservation released."""
    out = []
    if status.exit_code is not None:
        out.append(f"exit code {status.exit_code}")
    if status.cached:
        return [*out, f"cached from job {status.cached_from}, no charge"]
    if status.started_at is not None and status.finished_at is not None:
        seconds = max(0, round((status.finished_at - status.started_at).total_seconds()))
        out.append(f"ran {seconds} s")
    credits = status.credits
    charged = _num(credits.charged if credits else 0)
    reserved = _num(credits.reserved if credits else 0)
    out.append(f"charged {charged} credits ({reserved} reserved, released)")
    return out


def _num(value: float) -> str:
    return format(Decimal(str(value)).normalize(), "f")


def event_name(ref: JSON, type: str, reason: str, message: str, order: int = 0) -> str:
    """The Event's name: the object's name, its place in the story, a digest of what it says."""
    meta = ref["metadata"]
    key = "\n".join((str(meta.get("uid", "")), type, reason, message))
    digest = hashlib.sha256(key.encode()).hexdigest()[:_DIGEST]
    suffix = f".{order:02d}{digest}"
    base = str(meta["name"])[: _NAME_MAX - len(suffix)].rstrip(".-")
    return base + suffix


def event_body(
    ref: JSON,
    type: str,
    reason: str,
    message: str,
    *,
    now: datetime,
    component: str,
    instance: str,
    order: int = 0,
) -> JSON:
    """A core/v1 Event seen once, at `now` (what `kubectl describe` and `kubectl events` read).

    `eventTime` carries microseconds, so the order of news within one second is kept too (with
    it the API server requires `reportingComponent`, `reportingInstance` and `action`).
    """
    meta = ref["metadata"]
    namespace = str(meta.get("namespace") or EVENTS_NAMESPACE)
    stamp = now.strftime("%Y-%m-%dT%H:%M:%SZ")
    return {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": event_name(ref, type, reason, message, order),
            "namespace": namespace,
        },
        "involvedObject": {
            "apiVersion": ref["apiVersion"],
            "kind": ref["kind"],
            "name": meta["name"],
            "uid": meta.get("uid", ""),
            **({"namespace": meta["namespace"]} if meta.get("namespace") else {}),
        },
        "type": type,
        "reason": reason[:128],
        "message": message[:_MESSAGE_MAX],
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": instance[:128],
        "action": "Reconcile",  # required with eventTime
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "eventTime": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "count": 1,
    }
