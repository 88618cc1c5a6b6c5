"""A store that cannot be reached does not fail the Environment's reconcile: its storage figures
are not synced this pass (None: the status keeps the last ones) and one warning line says why,
with no traceback (a store outage is a fault the campaign injects, not a bug)."""

from __future__ import annotations

import asyncio
import logging

import pytest

from batchx.domain.validation import FileRef
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


def test_an_unreachable_store_checks_no_input_file_and_says_so_in_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Was a warning with the botocore traceback at every admission pass of the campaign's
    'store unreachable 60s' (the operator logged 15 tracebacks)."""
    ctx = Context(settings=Settings.load({}), kube=None, store=Unreachable())  # type: ignore[arg-type]
    ref = FileRef(
        path="$.text", pointer=("text",), value="bx://texts/t0.txt", target="texts/t0.txt"
    )
    wanted = {"wc-0": [ref]}
    assert asyncio.run(storage.missing_inputs(ctx, "lab", wanted)) == {}
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert [r.getMessage() for r in warned] == [
        "input files of lab not checked: the store failed: ConnectionError: could not connect "
        "to the store for lab"
    ]
    assert warned[0].exc_info is None
