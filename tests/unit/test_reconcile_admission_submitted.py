"""An admission pass writes SUBMITTED first for a job whose own reconcile has not yet.

SUBMITTED is every job's first state (test_job_events watches for it), and a pass still
decides every waiting job in order: leaving such a job out of the pass let a younger identical
job run before it (test_caching's twins). The API stand-in is our own boundary.
"""

from __future__ import annotations

import asyncio
import copy
from pathlib import Path
from typing import Any

from batchx.clients.kube import Conflict
from batchx.reconcile.admission import admission_pass
from batchx.reconcile.context import Context, Outcome
from batchx.settings import Settings
from batchx.store import open_store
from tests.builders import PINNED, make_image

JSON = dict[str, Any]
NS = "lab"


def job(name: str, stamp: str, state: str | None = None) -> JSON:
    body: JSON = {
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{name}",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": stamp,
        },
        "spec": {"image": "tutorial/hello:1.0.0", "input": {"who": name}, "cache": False},
    }
    if state:
        body["status"] = {"state": state}
    return body


class Api:
    """Two new jobs; every status patch recorded; `raced`: the older job changed between the
    pass's list and its write (the write's precondition fails): by its own reconcile's
    SUBMITTED ("own"), or by Kopf's finalizer and annotations ("kopf")."""

    def __init__(self, raced: str = "") -> None:
        self.jobs = {
            "older": job("older", "2026-12-02T00:00:00Z"),
            "younger": job("younger", "2026-12-02T00:00:01Z", "SUBMITTED"),
        }
        self.raced, self.patches = raced, []
        ready = [{"type": "Ready", "status": "True"}]
        coordinates = f"{NS}@tutorial/hello:1.0.0"
        self.image = make_image(namespace=NS).status(coordinates=coordinates, conditions=ready)

    async def get_cluster_object(self, plural: str, name: str) -> JSON:
        env = {"credits": 1e9, "quota": {"jobs": 1}}
        return {"metadata": {"name": name}, "spec": env, "status": {"namespace": NS}}

    async def list_objects(self, plural: str, namespace: str, *_: Any, **__: Any) -> list[JSON]:
        if plural == "images":
            return [self.image.build()]
        return copy.deepcopy(list(self.jobs.values()))

    async def list_all_namespaces(self, *_: Any, **__: Any) -> list[JSON]:
        return []

    async def list_config_maps(self, *_: Any, **__: Any) -> list[JSON]:
        return []

    async def get_object(self, plural: str, namespace: str, name: str) -> JSON:
        return copy.deepcopy(self.jobs[name])

    async def patch_status(
        self, plural: str, namespace: str, name: str, patch: JSON, **kwargs: Any
    ) -> JSON:
        if self.raced and kwargs.get("resource_version"):
            if self.raced == "own":  # its own reconcile's SUBMITTED landed first
                self.jobs[name]["status"] = {"state": "SUBMITTED"}
            self.raced = ""  # "kopf": only Kopf's finalizer and annotations changed it
            raise Conflict(409, "Conflict", "the object has been modified")
        self.patches.append((name, patch.get("state")))
        self.jobs[name] = {**self.jobs[name], "status": patch}
        return copy.deepcopy(self.jobs[name])


def run(api: Api, tmp_path: Path) -> list[str]:
    url = f"file://{tmp_path / 'store'}"
    settings = Settings.load({"BATCHX_STORE": url, "BATCHX_RUNNER_IMAGE": PINNED})
    with open_store(url) as store:
        ctx = Context(settings=settings, kube=api, store=store)  # type: ignore[arg-type]
        return [a.job.name for a in asyncio.run(admission_pass(ctx, NS, Outcome()))]


def test_a_job_without_a_state_is_marked_submitted_and_decided_in_its_turn(
    tmp_path: Path,
) -> None:
    api = Api()
    assert run(api, tmp_path) == ["older"]  # the older one first (quota: one job)
    older = [state for name, state in api.patches if name == "older"]
    assert older[0] == "SUBMITTED"
    assert older[1] != "SUBMITTED"  # its decision, after
    assert ("younger", "QUEUED") in api.patches


def test_a_job_whose_own_reconcile_wrote_submitted_meanwhile_is_taken_as_it_is(
    tmp_path: Path,
) -> None:
    api = Api(raced="own")
    assert run(api, tmp_path) == ["older"]
    assert next(state for name, state in api.patches if name == "older") != "SUBMITTED"


def test_a_job_changed_only_by_kopf_meanwhile_is_marked_submitted_on_a_second_try(
    tmp_path: Path,
) -> None:
    api = Api(raced="kopf")
    assert run(api, tmp_path) == ["older"]
    assert next(state for name, state in api.patches if name == "older") == "SUBMITTED"
