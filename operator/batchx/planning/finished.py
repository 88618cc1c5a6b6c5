"""Finished Jobs leave the hot path: the labels that mark them, and when they may be set.

Why: an environment keeps its finished Jobs (their outputs, their cache entries) as long as its
users like, and every admission pass and every ledger read listed and read all of them (10,000
finished jobs cost ~0.7 s of CPU per pass). A finished Job carries ``batchx.io/finished=<state>``
(and, for a result that may serve, ``batchx.io/cache-key=<hex>``); admission passes and the
ledger list only ``!batchx.io/finished``, and the cache asks the API server's label index for its
entries (`entry_selector`).

The invariant the ledger relies on: **a labelled Job is final and its charge is in a charge record
(or is zero)**. The operator labels a Job in a metadata patch after the status write that made it
final and after its charge record exists (`batchx.reconcile.ledger.mark_finished`). A status write
cannot carry labels (the status subresource ignores metadata), so these are separate writes; an
operator killed between them leaves a finished Job without the label, which costs only a listing
and is labelled by the ledger's next read of its namespace (`needs_label`): that is also how Jobs
finished before the label existed are taken in. The reverse, a label on an unfinished Job, is
refused by the API server (the ``batchx-finished-label`` policy), so no user can hide a reservation
from the ledger by setting it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from batchx.models import TERMINAL_STATES, JobState
from batchx.planning.labels import CACHE_KEY, FINISHED, cache_key_label

JSON = dict[str, Any]

_TERMINAL = frozenset(str(s) for s in TERMINAL_STATES)
_KEY_PREFIX = "sha256:"
_SERVING = frozenset({str(JobState.SUCCEEDED), str(JobState.WARNING)})


def finished_labels(body: JSON) -> dict[str, str] | None:
    """The labels a final Job should carry, or None when it is not final or carries them."""
    status = body.get("status") or {}
    state = status.get("state")
    if state not in _TERMINAL:
        return None
    wanted = {FINISHED: str(state)}
    admission = status.get("admission")
    key = admission.get("cacheKey") if isinstance(admission, dict) else None
    # Only a result that may serve is an entry (`batchx.planning.job_cache.entries`): a served
    # job's key would only lengthen the entry lookups' answers.
    serves = state in _SERVING and not status.get("cached")
    if serves and isinstance(key, str) and key.startswith(_KEY_PREFIX):
        wanted[CACHE_KEY] = cache_key_label(key)
    current = (body.get("metadata") or {}).get("labels") or {}
    if all(current.get(k) == v for k, v in wanted.items()):
        return None
    return wanted


def needs_label(body: JSON) -> bool:
    return finished_labels(body) is not None


def entry_selector(keys: Iterable[str]) -> str | None:
    """The label selector of the finished Jobs that may hold one of `keys` (None: no key)."""
    values = sorted({cache_key_label(k) for k in keys if k.startswith(_KEY_PREFIX)})
    if not values:
        return None
    return f"{FINISHED},{CACHE_KEY} in ({','.join(values)})"


__all__ = ["entry_selector", "finished_labels", "needs_label"]
