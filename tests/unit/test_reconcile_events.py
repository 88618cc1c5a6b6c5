"""Posting Events: a failed post never fails the reconcile; one into a namespace that is going
is dropped without a warning (deleting an Environment with jobs is normal), any other is said."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from batchx.clients.kube import Conflict, KubeError, NamespaceTerminating
from batchx.planning.events import involved
from batchx.reconcile import events
from batchx.reconcile.context import Context, Notice
from batchx.settings import Settings


class Refusing:
    """A Kube whose every Event post fails with `error` (our own boundary)."""

    def __init__(self, error: KubeError) -> None:
        self.error = error
        self.posts = 0

    async def record_event(self, body: dict[str, Any]) -> None:
        self.posts += 1
        raise self.error


def post(error: KubeError) -> Refusing:
    kube = Refusing(error)
    ctx = Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]
    ref = involved("Job", "wc-0", "uid-1", "lab")
    asyncio.run(events.post(ctx, [Notice(ref, "Normal", "Admitted", "STARTING: admitted")]))
    return kube


def test_an_event_into_a_terminating_namespace_is_dropped_quietly(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger=events.__name__)
    going = NamespaceTerminating(403, "Forbidden", "... because it is being terminated")
    assert post(going).posts == 1
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_any_other_failure_is_logged_with_its_cause(caplog: pytest.LogCaptureFixture) -> None:
    assert post(Conflict(409, "Conflict", "changed")).posts == 1
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1
    assert warned[0].exc_info is not None
