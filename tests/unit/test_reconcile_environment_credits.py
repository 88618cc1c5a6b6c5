"""A job's change refreshes its Environment's credits alone (batchx.reconcile.environment.
refresh_credits): no children read, no store scan, and no write when nothing moved."""

from __future__ import annotations

import asyncio
from typing import Any

from batchx.reconcile.context import Context
from batchx.reconcile.environment import refresh_credits
from batchx.settings import Settings

JSON = dict[str, Any]


class FakeKube:
    """The API calls a credits refresh may make; any other call fails the test."""

    def __init__(self, env: JSON, jobs: list[JSON]) -> None:
        self.env, self.jobs = env, jobs
        self.patches: list[JSON] = []

    async def get_cluster_object(self, plural: str, name: str) -> JSON | None:
        assert (plural, name) == ("environments", "lab")
        return self.env

    async def list_objects(self, plural: str, namespace: str, selector: str) -> list[JSON]:
        assert (plural, namespace) == ("jobs", "lab")
        # No job here is labelled finished: all are unfinished, none is finished.
        return self.jobs if selector == "!batchx.io/finished" else []

    async def list_config_maps(self, namespace: str, selector: str) -> list[JSON]:
        return []  # no charge recorded yet

    async def patch_cluster_status(self, plural: str, name: str, patch: JSON) -> JSON:
        self.patches.append(patch)
        self.env = {**self.env, "status": {**self.env["status"], **patch}}
        return self.env


def environment(**status: Any) -> JSON:
    return {
        "metadata": {"name": "lab", "uid": "u-lab", "generation": 1},
        "spec": {"credits": 100},
        "status": {"namespace": "lab", **status},
    }


def job(name: str, state: str, reserved: float) -> JSON:
    return {
        "metadata": {"name": name, "uid": f"u-{name}"},
        "status": {"state": state, "credits": {"reserved": reserved, "charged": 0}},
    }


def test_credits_are_written_once_and_only_when_they_move() -> None:
    kube = FakeKube(environment(), [job("a", "RUNNING", 10), job("b", "QUEUED", 0)])
    ctx = Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]
    asyncio.run(refresh_credits(ctx, "lab"))
    assert kube.patches == [
        {"credits": {"granted": 100.0, "reserved": 10.0, "spent": 0.0, "balance": 90.0}}
    ]
    asyncio.run(refresh_credits(ctx, "lab"))  # nothing moved: no write
    assert len(kube.patches) == 1
    kube.jobs.append(job("c", "STARTING", 5))
    asyncio.run(refresh_credits(ctx, "lab"))
    assert kube.patches[-1]["credits"]["reserved"] == 15.0


def test_a_deleted_environment_is_left_alone() -> None:
    kube = FakeKube(environment(), [])
    kube.env = {**kube.env, "metadata": {**kube.env["metadata"], "deletionTimestamp": "now"}}
    ctx = Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]
    asyncio.run(refresh_credits(ctx, "lab"))
    assert kube.patches == []
