"""The standard conditions generic tools read: Ready, Reconciling and Stalled (kstatus).

GitOps tools do not know BatchX states. Flux, `kubectl wait`-style tools and cli-utils appliers
compute an object's health with kstatus (sigs.k8s.io/cli-utils pkg/kstatus, rules in
status/generic.go): `status.observedGeneration` behind `metadata.generation` is InProgress;
`Reconciling=True` is InProgress; `Stalled=True` is Failed; otherwise `Ready=False` is InProgress
and anything else Current. A `Ready=False` alone therefore reads as "still working" forever, so
every object that will not get better without a change (a failed Job, an invalid Image, a
namespace conflict) must say `Stalled=True`, and every object still being worked on
`Reconciling=True`.

Each kind's planner decides one `Standing` (a `Progress` with a reason and message), and
`standard_conditions` turns it into the three conditions. Reconciling and Stalled follow Flux's
abnormal-true convention: present only while True. Ready is always present. The order is fixed
(Ready, Reconciling, Stalled, then every other condition as it was), so planning the same status
twice gives the same list and a resync writes nothing; a kind's own condition (the Job's
`Succeeded`) set afterwards with `set_condition` stays last.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from batchx.models import Condition, ConditionStatus, JobState, JobStatus
from batchx.planning.conditions import find_condition, set_condition
from batchx.planning.job_admission import SUCCEEDED_CONDITION

READY = "Ready"
RECONCILING = "Reconciling"
STALLED = "Stalled"
STANDARD = (READY, RECONCILING, STALLED)

__all__ = [
    "READY",
    "RECONCILING",
    "STALLED",
    "STANDARD",
    "Progress",
    "Standing",
    "job_standing",
    "stale_job_conditions",
    "standard_conditions",
    "with_job_conditions",
]


class Progress(StrEnum):
    """Where an object stands, in kstatus's terms."""

    RECONCILING = "Reconciling"  # work is pending: it will change without anyone's help
    STALLED = "Stalled"  # it will not get better until someone changes something
    CURRENT = "Current"  # done and good


@dataclass(frozen=True)
class Standing:
    """Where one object stands, with the CamelCase reason and the message users read."""

    progress: Progress
    reason: str
    message: str


def standard_conditions(
    conditions: list[Condition], standing: Standing, *, generation: int | None, now: datetime
) -> list[Condition]:
    """`conditions` with Ready, Reconciling and Stalled agreeing with `standing` (see above)."""
    ready = ConditionStatus.TRUE if standing.progress is Progress.CURRENT else ConditionStatus.FALSE
    wanted = {
        READY: ready,
        RECONCILING: ConditionStatus.TRUE if standing.progress is Progress.RECONCILING else None,
        STALLED: ConditionStatus.TRUE if standing.progress is Progress.STALLED else None,
    }
    out: list[Condition] = []
    for type, status in wanted.items():
        if status is None:
            continue
        updated = set_condition(
            conditions,
            type=type,
            status=status,
            reason=standing.reason,
            message=standing.message[:32768],
            generation=generation,
            now=now,
        )
        out.append(updated[-1])
    return out + [c for c in conditions if c.type not in STANDARD]


def job_standing(status: JobStatus) -> Standing:
    """A Job is current once it succeeded (or ended with a listed warning), stalled once it
    ended any other way (FAILED, OUT_OF_MEMORY, INVALID_OUTPUT, CANCELLED: a Job never runs
    twice), and reconciling before that (waiting, queued, starting, running, cancelling)."""
    state = status.state or JobState.SUBMITTED
    succeeded = find_condition(status.conditions, SUCCEEDED_CONDITION)
    reason = succeeded.reason if succeeded else "Submitted"
    detail = (succeeded.message if succeeded else "") or status.message or ""
    message = f"{state.value}: {detail}" if detail else state.value
    if state.is_success:
        return Standing(Progress.CURRENT, reason, message)
    if state.is_terminal:
        return Standing(Progress.STALLED, reason, message)
    return Standing(Progress.RECONCILING, reason, message)


def with_job_conditions(status: JobStatus, *, generation: int, now: datetime) -> JobStatus:
    """`status` as it is written: the standard conditions from its state, `Succeeded` last,
    and `observedGeneration` set."""
    conditions = standard_conditions(
        status.conditions, job_standing(status), generation=generation, now=now
    )
    return status.model_copy(update={"conditions": conditions, "observed_generation": generation})


def stale_job_conditions(status: JobStatus, *, generation: int, now: datetime) -> bool:
    """Whether a written status's standard conditions disagree with its state: a job that
    ended under an operator that did not write them (an upgrade), or whose last write came from
    one."""
    return with_job_conditions(status, generation=generation, now=now).to_json() != (
        status.to_json()
    )
