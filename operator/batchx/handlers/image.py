"""Image handlers: any change to one Image replans all Images of its namespace."""

from __future__ import annotations

from typing import Any

import kopf

from batchx import GROUP, VERSION
from batchx.handlers.setup import context, post
from batchx.handlers.setup import required as _required
from batchx.outage import outage_is_temporary
from batchx.reconcile.image import reconcile_images


@kopf.on.resume(GROUP, VERSION, "images")
@kopf.on.create(GROUP, VERSION, "images")
@kopf.on.update(GROUP, VERSION, "images")
@outage_is_temporary
async def image_changed(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    await post(memo, await reconcile_images(context(memo), _required(namespace)))


@kopf.on.event(GROUP, VERSION, "images", when=lambda type, **_: type == "DELETED")
@outage_is_temporary
async def image_deleted(namespace: str | None, memo: kopf.Memo, **_: Any) -> None:
    """A deleted image may have held coordinates or `latest`: hand them on. A watch event, not
    a deletion handler, so Images carry no finalizer and delete even with the operator down."""
    await post(memo, await reconcile_images(context(memo), _required(namespace)))
