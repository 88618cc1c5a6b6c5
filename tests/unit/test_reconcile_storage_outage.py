"""A store that cannot be reached does not fail the Environment's reconcile: its storage figures
are not synced this pass (None: the status keeps the last ones) and one warning line says why,
with no traceback (a store outage is a fault the campaign injects, not a bug)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from batchx.reconcile import storage
from batchx.reconcile.context import Context
from batchx.settings import Settings


class Unreachable:
    """A store whose every environment read fails as a stopped S3 server's would."""

    def env(self, name: str) -> object:
        raise ConnectionError(f"could not connect to the store for {name}")


def test_an_unreachable_store_leaves_the_figures_and_says_so(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ctx = Context(settings=Settings.load({}), kube=None, store=Unreachable())  # type: ignore[arg-type]
    assert asyncio.run(storage.sync_storage(ctx, "lab", "1Gi")) is None
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warned] == [
        "storage of lab not synced: the store failed (could not connect to the store for lab)"
    ]
    assert warned[0].exc_info is None
