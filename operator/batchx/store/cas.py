"""One compare-and-swap loop for every small record the file system updates in place.

The index's tombstones, the reference counts and the usage record are all read-modify-write on
one object, guarded by the backend's conditional put (create-only when the key is absent,
`If-Match: <etag>` otherwise). Each used to carry its own retry loop, and only one backed off;
under contention the others re-read as fast as the server answered. `swap` is that loop, once,
with capped exponential backoff and jitter (so that two writers that collided do not collide
again in lock-step).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar

from batchx.store.backend import Backend
from batchx.store.errors import PreconditionFailed

T = TypeVar("T")

Current = tuple[bytes, str] | None
"""What a key holds: (body, etag), or None when it is absent."""

Change = Callable[[bytes | None], tuple[bytes | None, T]]
"""Given the current body (None: absent), the body to write (None: write nothing) and the
result to return once it is written. It may raise to give up; it is called again, with what the
key holds then, each time another writer got in first, so it must not assume it runs once."""

FIRST_DELAY = 0.001
MAX_DELAY = 0.05


class _Unread:
    """`swap`'s default for `current`: read the key first."""


UNREAD = _Unread()


def swap(
    backend: Backend, key: str, change: Change[T], *, current: Current | _Unread = UNREAD
) -> T:
    """Apply `change` to the object at `key` atomically; return what `change` returned.

    `current` is what the caller already read (or None when it knows the key is absent, which
    makes the first attempt a create-only put without a read); by default the key is read first.
    """
    got = backend.get(key) if isinstance(current, _Unread) else current
    delay = FIRST_DELAY
    while True:
        body, result = change(None if got is None else got[0])
        if body is None:
            return result
        try:
            if got is None:
                backend.put(key, body, create_only=True)
            else:
                backend.put(key, body, if_match=got[1])
        except PreconditionFailed:
            time.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, MAX_DELAY)
            got = backend.get(key)
            continue
        return result
