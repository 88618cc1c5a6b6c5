"""metav1.Condition bookkeeping: one condition per type, lastTransitionTime kept while unchanged."""

from __future__ import annotations

import re
from datetime import datetime

from batchx.models import Condition, ConditionStatus
from batchx.models.common import REASON_PATTERN

_REASON = re.compile(REASON_PATTERN)


def as_reason(text: str | None, fallback: str) -> str:
    """`text` when it can be a condition's reason, else `fallback`.

    For reasons copied from other objects: the kubelet fails a Pod it cannot admit with reason
    ``OutOf`` + the resource's name (``OutOfnvidia.com/gpu``), which is no condition reason.
    """
    if text and len(text) <= 1024 and _REASON.match(text):
        return text
    return fallback


def set_condition(
    conditions: list[Condition],
    *,
    type: str,
    status: ConditionStatus,
    reason: str,
    message: str,
    generation: int | None,
    now: datetime,
) -> list[Condition]:
    """A copy of `conditions` with `type` set; the transition time moves only on a new status."""
    previous = next((c for c in conditions if c.type == type), None)
    since = previous.last_transition_time if previous and previous.status == status else now
    updated = Condition(
        type=type,
        status=status,
        reason=reason,
        message=message,
        last_transition_time=since,
        observed_generation=generation,
    )
    return [c for c in conditions if c.type != type] + [updated]


def find_condition(conditions: list[Condition], type: str) -> Condition | None:
    return next((c for c in conditions if c.type == type), None)
