"""What a status merge patch would change, so that a write that changes nothing is not sent.

Why: the operator writes statuses with JSON merge patches (RFC 7386) of a whole planned
status, and a planned status never carries every stored field (``status.admission`` is
written once, at admission, and left out of every later plan). Compared whole, a running job's
planned status therefore always differed from its stored one, and every reconcile of it (a
restart's resume and its pod's listing event, each resync) rewrote it: 113 unchanged
running-job statuses after a restart with 100 running jobs (issue 16, item 5). What counts is
what the object would hold after the patch.

A condition's ``lastTransitionTime`` is not content: a change in it alone (a planner that
stamped a condition whose status did not change) is no reason to write.
"""

from __future__ import annotations

import copy
from typing import Any

JSON = dict[str, Any]

# Fields of a condition that only say when it changed, not what it says.
_CONDITION_TIMES = frozenset({"lastTransitionTime"})

__all__ = ["merged", "status_changes"]


def merged(current: Any, patch: Any) -> Any:
    """`current` with the merge patch `patch` applied (RFC 7386): objects merge key by key,
    a null removes a key, anything else (a list, a scalar) replaces."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(current) if isinstance(current, dict) else {}
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = merged(out.get(key), value)
    return out


def status_changes(current: JSON | None, patch: JSON) -> list[str]:
    """The top-level status fields the merge patch `patch` would change in `current` (empty:
    the write would change nothing), a condition's transition time aside."""
    before = current or {}
    after = merged(before, patch)
    keys = sorted(set(before) | set(after))
    return [k for k in keys if _content(k, before.get(k)) != _content(k, after.get(k))]


def _content(key: str, value: Any) -> Any:
    if key != "conditions" or not isinstance(value, list):
        return value
    return [
        {k: v for k, v in c.items() if k not in _CONDITION_TIMES} if isinstance(c, dict) else c
        for c in value
    ]
