"""Posting the Events reconciles decide (`Outcome.notices`), aggregated as client-go does.

Kopf's `kopf.event` creates a new Event for every call. Ours are named after what they say
(`batchx.planning.events.event_body`), so news posted twice (a retry after a Conflict, a restart
between a status write and its post, a second operator) counts up on one Event instead of adding
a line to `kubectl describe`. A failed post is logged and dropped: an Event is a courtesy, and
never holds up or fails the reconcile that decided it. An Event into a namespace that is being
deleted is dropped quietly: deleting an Environment with jobs is normal, not a warning.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Iterable

from batchx.clients.kube import NamespaceTerminating, NotFound, Unavailable
from batchx.planning.events import event_body
from batchx.reconcile.context import Context, Notice

logger = logging.getLogger(__name__)

COMPONENT = "batchx-operator"
# The pod's name in a cluster (HOSTNAME), the machine's name elsewhere.
INSTANCE = os.environ.get("HOSTNAME") or socket.gethostname() or COMPONENT


async def post(ctx: Context, notices: Iterable[Notice]) -> None:
    """Post each notice as an Event (one more of its count when it was posted before)."""
    for notice in notices:
        body = event_body(
            notice.ref,
            notice.type,
            notice.reason,
            notice.message,
            now=notice.at,
            component=COMPONENT,
            instance=INSTANCE,
            order=notice.order,
        )
        try:
            await ctx.kube.record_event(body)
        except (NamespaceTerminating, NotFound):
            # The object's namespace is being deleted (or gone): nobody will read the Event.
            logger.debug("event %s dropped: its namespace is going", notice.reason)
        except Unavailable as err:  # an API server outage (make chaos): one line, no traceback
            logger.warning(
                "event %s %s on %s not posted: %s",
                notice.reason,
                notice.type,
                body["involvedObject"]["name"],
                err,
            )
        except Exception:  # any other failure: the reconcile's work stands without its Event
            logger.warning(
                "event %s %s on %s not posted",
                notice.reason,
                notice.type,
                body["involvedObject"]["name"],
                exc_info=True,
            )


__all__ = ["COMPONENT", "post"]
