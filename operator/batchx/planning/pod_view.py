"""What a job's Pod says, reduced to what the status planner reads (no I/O).

Why a module of its own: reading the kubelet's pod status (container states, eviction, the
deletion's request time, the direct path's termination message) is one concern, and deciding
the job's state from it (`batchx.planning.pod_status`, the state table and the charge) is
another; the view changes when the kubelet's reporting does, the table when the product's
rules do. `stage_out_report` and `pod_finished` are the reconciler's own reads of a pod.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from batchx.planning.direct_output import is_direct
from batchx.planning.job_protocol import (
    JOB_CONTAINER,
    STAGE_IN,
    STAGE_OUT,
    RunnerReport,
    parse_report,
)

__all__ = [
    "Container",
    "PodView",
    "pod_finished",
    "silent_uploader",
    "stage_out_report",
]


def stage_out_report(pod: Mapping[str, Any]) -> RunnerReport | None:
    """The stage-out sidecar's report in `pod`'s status, if it has reported."""
    return parse_report(Container.of(_statuses(pod).get(STAGE_OUT)).message)


def pod_finished(pod: Mapping[str, Any]) -> bool:
    """Whether every container of `pod` has ended (phase Succeeded or Failed)."""
    return (pod.get("status") or {}).get("phase") in ("Succeeded", "Failed")


def _statuses(pod: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    """Every container's status in `pod` (init containers, sidecars and the job's), by name."""
    status = pod.get("status") or {}
    every = (status.get("initContainerStatuses") or []) + (status.get("containerStatuses") or [])
    return {str(s.get("name")): s for s in every}


@dataclass(frozen=True)
class Container:
    """One container's status, reduced to what planning reads."""

    running: bool = False
    terminated: bool = False
    exit_code: int | None = None
    reason: str = ""
    message: str = ""
    started_at: datetime | None = None
    finished_at: datetime | None = None

    @classmethod
    def of(cls, status: Mapping[str, Any] | None) -> Container:
        state = (status or {}).get("state") or {}
        if "running" in state:
            return cls(running=True, started_at=_time((state["running"] or {}).get("startedAt")))
        done = state.get("terminated")
        if done is None:
            waiting = state.get("waiting") or {}
            return cls(
                reason=str(waiting.get("reason") or ""), message=str(waiting.get("message") or "")
            )
        return cls(
            terminated=True,
            exit_code=done.get("exitCode"),
            reason=str(done.get("reason") or ""),
            message=str(done.get("message") or ""),
            started_at=_time(done.get("startedAt")),
            finished_at=_time(done.get("finishedAt")),
        )


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass(frozen=True)
class PodView:
    phase: str
    unschedulable: str
    reason: str
    message: str
    started: datetime | None
    created: datetime | None
    stage_in: Container
    stage_out: Container
    job: Container
    deleted_at: datetime | None = None  # when a deletion of the pod was asked for
    evicted_at: datetime | None = None  # when the kubelet evicted it (node pressure)
    direct: bool = False  # no stage-out: output.json is the job's termination message

    @classmethod
    def of(cls, pod: Mapping[str, Any]) -> PodView:
        status = pod.get("status") or {}
        meta = pod.get("metadata") or {}
        deleted_at = _time(meta.get("deletionTimestamp"))
        if deleted_at is not None:  # the timestamp is the request's time plus the grace period
            deleted_at -= timedelta(seconds=int(meta.get("deletionGracePeriodSeconds") or 0))
        by_name = _statuses(pod)
        return cls(
            phase=str(status.get("phase") or "Pending"),
            unschedulable=next(
                (
                    str(c.get("message") or c.get("reason") or "")
                    for c in status.get("conditions") or []
                    if c.get("type") == "PodScheduled" and c.get("status") == "False"
                ),
                "",
            ),
            reason=str(status.get("reason") or ""),
            message=str(status.get("message") or ""),
            started=_time(status.get("startTime")),
            created=_time((pod.get("metadata") or {}).get("creationTimestamp")),
            stage_in=Container.of(by_name.get(STAGE_IN)),
            stage_out=Container.of(by_name.get(STAGE_OUT)),
            job=Container.of(by_name.get(JOB_CONTAINER)),
            deleted_at=deleted_at,
            evicted_at=_evicted_at(status),
            direct=is_direct(pod),
        )

    @property
    def finished(self) -> bool:
        return self.phase in ("Succeeded", "Failed")

    def last_finish(self) -> datetime | None:
        times = [c.finished_at for c in (self.stage_in, self.stage_out, self.job) if c.finished_at]
        return max(times) if times else None


def _evicted_at(status: Mapping[str, Any]) -> datetime | None:
    """When the kubelet evicted the pod: its DisruptionTarget condition (TerminationByKubelet)."""
    if status.get("reason") != "Evicted":
        return None
    for cond in status.get("conditions") or []:
        if cond.get("type") == "DisruptionTarget" and cond.get("status") == "True":
            return _time(cond.get("lastTransitionTime"))
    return None


def silent_uploader(view: PodView) -> str:
    """Why no report: what became of the stage-out container (its exit, and when)."""
    out = view.stage_out
    if not out.terminated:
        return "the uploader reported nothing (its container never ended)"
    how = f"exit code {out.exit_code}" + (f", {out.reason}" if out.reason else "")
    if out.finished_at and view.job.finished_at:
        seconds = (out.finished_at - view.job.finished_at).total_seconds()
        how += f", {seconds:.0f} s after the job's container"
    return f"the uploader reported nothing (its container ended: {how})"
