"""Kopf's handlers under an API server outage, apart from the handlers.

Apart because importing `batchx.handlers` registers every handler and fixes the resync timer's
interval from the settings of that moment; this decorator is also used (and unit-tested) alone.

The API client rides out a short outage (`batchx.clients.kube.UNREACHABLE_BUDGET`); a longer
one (an API server restarted or down for 20 s, as the fault campaign does) ended every handler
then running in an exception that Kopf logs with its traceback, a dozen per outage.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import kopf

from batchx.clients.kube import Unavailable

UNAVAILABLE_RETRY_SECONDS = 5.0
Handler = TypeVar("Handler", bound=Callable[..., Awaitable[Any]])


def outage_is_temporary(fn: Handler) -> Handler:
    """A handler that meets an API server still unavailable after the client's retries (a
    restart, an outage) is retried later (Kopf's TemporaryError: one log line), instead of
    failing with a traceback. Its work was not done, so it is done again; event handlers'
    work is also done by the resync."""

    @functools.wraps(fn)
    async def handler(*args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except Unavailable as exc:
            raise kopf.TemporaryError(
                f"the API server is unavailable ({exc}); again in {UNAVAILABLE_RETRY_SECONDS:.0f}s",
                delay=UNAVAILABLE_RETRY_SECONDS,
            ) from exc

    return cast(Handler, handler)
