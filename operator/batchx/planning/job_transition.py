"""The one place a Job's status moves to a state: the state, its ``Succeeded`` condition, the
generation it answers.

Every writer of a Job's status (admission: SUBMITTED, QUEUED, STARTING, refused, cancelled before
admission; the pod's status planner: every later state) builds it here, so the condition always
matches the state (``Unknown`` while the job is on its way, ``True`` for SUCCEEDED and WARNING,
``False`` for the other ends), its message is capped the same way, and ``observedGeneration``
is never forgotten.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from batchx.models import ConditionStatus, JobState, JobStatus
from batchx.planning.conditions import set_condition

__all__ = ["MAX_MESSAGE", "SUCCEEDED_CONDITION", "job_transition"]

SUCCEEDED_CONDITION = "Succeeded"  # the Job's one condition type (BRIEF section 3)
MAX_MESSAGE = 32768  # characters of a condition's (and the status') message


def job_transition(
    previous: JobStatus,
    state: JobState,
    *,
    reason: str,
    condition_message: str,
    generation: int,
    now: datetime,
    **fields: Any,
) -> JobStatus:
    """The status of a job now in `state` for `reason`; `fields` are the other status fields.

    `condition_message` is the condition's; ``status.message`` is a field of its own (admission
    shows it only for a refusal).

    The condition's transition time moves only when its status changes (`set_condition`).
    """
    condition = (
        ConditionStatus.UNKNOWN
        if not state.is_terminal
        else ConditionStatus.TRUE
        if state.is_success
        else ConditionStatus.FALSE
    )
    return JobStatus(
        state=state,
        conditions=set_condition(
            previous.conditions,
            type=SUCCEEDED_CONDITION,
            status=condition,
            reason=reason,
            message=condition_message[:MAX_MESSAGE],
            generation=generation,
            now=now,
        ),
        observed_generation=generation,
        **fields,
    )
