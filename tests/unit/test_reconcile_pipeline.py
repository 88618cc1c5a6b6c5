"""A pipeline's end and its children summary (batchx.reconcile.pipeline), at the Kube boundary.

The stub holds one parent Job and its children; the checks are what the operator writes: the
ServiceAccount deleted, only unfinished children of *this* parent cancelled, and a summary patch
that touches ``status.children`` alone, with the parent's resourceVersion.
"""

from __future__ import annotations

import asyncio
from typing import Any

from batchx.clients.kube import Conflict
from batchx.planning.job_pod import JobRef
from batchx.reconcile.context import Context, Outcome
from batchx.reconcile.pipeline import finish, summarise
from batchx.settings import Settings

JSON = dict[str, Any]
PARENT = JobRef("count-all", "lab", "uid-p", 1)


def child(name: str, state: str | None, owner: str = "uid-p", **status: Any) -> JSON:
    return {
        "metadata": {
            "name": name,
            "namespace": "lab",
            "uid": f"uid-{name}",
            "labels": {"batchx.io/parent": "count-all"},
            "ownerReferences": [{"kind": "Job", "name": "count-all", "uid": owner}],
        },
        "spec": {"image": "examples/wordcount", "input": {}},
        "status": {"state": state, **status} if state else {},
    }


class Kube:
    def __init__(self, children: list[JSON], conflicts: int = 0) -> None:
        self.children = children
        self.deleted: list[str] = []
        self.cancelled: list[str] = []
        self.patches: list[tuple[JSON, str | None]] = []
        self.conflicts = conflicts
        self.version = 7

    async def delete_service_account(self, namespace: str, name: str) -> None:
        self.deleted.append(name)

    async def list_objects(self, plural: str, namespace: str, selector: str) -> list[JSON]:
        assert selector == "batchx.io/parent=count-all"
        return self.children

    async def patch_spec(self, plural: str, namespace: str, name: str, spec: JSON) -> JSON:
        assert spec == {"cancel": True}
        self.cancelled.append(name)
        return {}

    async def get_object(self, plural: str, namespace: str, name: str) -> JSON:
        meta = {
            "name": name,
            "namespace": namespace,
            "uid": "uid-p",
            "resourceVersion": str(self.version),
        }
        return {
            "metadata": meta,
            "spec": {"image": "examples/count-all", "input": {}},
            "status": {},
        }

    async def patch_status(
        self, plural: str, namespace: str, name: str, status: JSON, resource_version: str | None
    ) -> JSON:
        if self.conflicts:
            self.conflicts -= 1
            self.version += 1
            raise Conflict(409, "Conflict", "changed")
        self.patches.append((status, resource_version))
        return {}


def context(kube: Kube) -> Context:
    return Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]


CHILDREN = [
    child("queued", "QUEUED"),
    child("running", "RUNNING", credits={"reserved": 1.0, "charged": 0}),
    child("done", "SUCCEEDED", credits={"reserved": 0, "charged": 0.25}),
    child("cancelling", "RUNNING") | {"spec": {"image": "x", "input": {}, "cancel": True}},
    child("other-parents", "RUNNING", owner="uid-other"),  # a deleted namesake's
]


def test_the_end_revokes_the_identity_and_cancels_the_unfinished_children() -> None:
    kube = Kube(CHILDREN)
    assert asyncio.run(finish(context(kube), PARENT)) == 2
    assert kube.deleted == ["bx-pipeline-count-all"]
    assert kube.cancelled == ["queued", "running"]


def test_the_summary_patches_status_children_alone_after_a_conflict() -> None:
    kube = Kube(CHILDREN, conflicts=1)
    outcome = Outcome(parents={("lab", "count-all")})
    asyncio.run(summarise(context(kube), outcome))
    assert outcome.parents == set()
    ((patch, version),) = kube.patches
    assert version == "8"  # read again after the conflict
    assert patch == {
        "children": {
            "total": 4,
            "active": 3,
            "succeeded": 1,
            "failed": 0,
            "cached": 0,
            "credits": 0.25,
        }
    }
