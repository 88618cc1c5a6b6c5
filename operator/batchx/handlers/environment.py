"""Environment handlers: every trigger runs the same level-triggered reconcile."""

from __future__ import annotations

from typing import Any

import kopf

from batchx import GROUP, VERSION
from batchx.handlers.setup import context, post
from batchx.outage import outage_is_temporary
from batchx.reconcile.environment import NamespaceRace, reconcile_environment
from batchx.reconcile.image import reconcile_images
from batchx.reconcile.job import admit
from batchx.settings import Settings

# Kopf fixes a timer's interval when the handler is registered (at import), so it is read here.
RESYNC_SECONDS = Settings.load().resync_seconds


@kopf.on.resume(GROUP, VERSION, "environments")
@kopf.on.create(GROUP, VERSION, "environments")
@kopf.on.update(GROUP, VERSION, "environments")
@outage_is_temporary
async def environment_changed(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    await _reconcile(body, memo)
    await _images(body, memo)  # images waiting for their environment can be accepted now
    # Credits topped up or quota raised: queued jobs may start now.
    await post(memo, await admit(context(memo), str(body["metadata"]["name"])))


@kopf.timer(GROUP, VERSION, "environments", interval=RESYNC_SECONDS, initial_delay=RESYNC_SECONDS)
@outage_is_temporary
async def environment_resync(body: kopf.Body, memo: kopf.Memo, **_: Any) -> None:
    """Periodic resync: heals drift (a deleted quota), a conflict that went away, and images."""
    await _reconcile(body, memo)
    await _images(body, memo)


async def _reconcile(body: kopf.Body, memo: kopf.Memo) -> None:
    ctx = context(memo)
    try:
        outcome = await reconcile_environment(ctx, dict(body))
    except NamespaceRace as exc:
        raise kopf.TemporaryError(str(exc), delay=1) from exc
    await post(memo, outcome)
    if outcome.retry_after is not None:
        raise kopf.TemporaryError(outcome.retry_reason, delay=outcome.retry_after)


async def _images(body: kopf.Body, memo: kopf.Memo) -> None:
    outcome = await reconcile_images(context(memo), str(body["metadata"]["name"]))
    await post(memo, outcome)
