"""A new job's first state is SUBMITTED even when its first write meets a Conflict that is not
admission's (batchx.reconcile.job._submitted).

Kopf writes a new Job's finalizer and annotations on its first events, so the operator's first
status write, made on the job as read, can be refused (Conflict) though no state was written:
without writing again, the admission pass's QUEUED was the job's first state (seen in
test_job_events). A state written meanwhile (admission's) stands. The status write and the
read are our own boundary.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from batchx.reconcile import job as job_module
from batchx.reconcile.context import Context, Outcome
from batchx.reconcile.job_status import JobRead, Stale
from batchx.settings import Settings
from tests.job_builders import make_bx_job

JSON = dict[str, Any]


def new_job() -> JSON:
    body = make_bx_job().input(name="ada").body
    body["metadata"] = {"name": "j", "namespace": "lab", "uid": "u", "generation": 1}
    return copy.deepcopy(body)


class Kube:
    """The job as the API server holds it now."""

    def __init__(self, body: JSON) -> None:
        self.body = body

    async def get_object(self, plural: str, namespace: str, name: str) -> JSON:
        return self.body


def run(kube: Kube, refusals: int, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    written: list[str] = []

    async def write_status(ctx: Context, job: JobRead, status: Any, outcome: Outcome) -> bool:
        if len(written) < refusals:
            written.append("refused")
            raise Stale("changed since read")
        written.append(str(status.state))
        return True

    monkeypatch.setattr(job_module, "write_status", write_status)
    ctx = Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]
    asyncio.run(job_module._submitted(ctx, JobRead(new_job()), Outcome()))
    return written


def test_a_conflict_that_wrote_no_state_is_written_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert run(Kube(new_job()), 1, monkeypatch) == ["refused", "SUBMITTED"]


def test_a_state_admission_wrote_meanwhile_stands(monkeypatch: pytest.MonkeyPatch) -> None:
    queued = {**new_job(), "status": {"state": "QUEUED"}}
    assert run(Kube(queued), 1, monkeypatch) == ["refused"]


def test_the_attempts_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    assert run(Kube(new_job()), 10, monkeypatch) == ["refused"] * 3
