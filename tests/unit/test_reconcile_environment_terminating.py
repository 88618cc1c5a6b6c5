"""A namespace that begins terminating between the operator's read and its writes.

The API server then answers 403 with the cause `NamespaceTerminating` to every create in it
(the client raises `NamespaceTerminating`; tests/integration/test_kube_client.py shows it on the
real API server): that is news about the namespace, not a failure, so the pass reports the
Environment as waiting for its namespace to go (and comes back), instead of a traceback. Any
other 403 still fails. The Kube stub is our own boundary.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from batchx.clients.kube import Forbidden, NamespaceTerminating
from batchx.reconcile.context import Context
from batchx.reconcile.environment import TERMINATING_RETRY_SECONDS, reconcile_environment
from batchx.settings import Settings

UID = "0f4c3b6e-1111-2222-3333-444455556666"
ENV = {
    "metadata": {"name": "lab", "uid": UID, "generation": 1},
    "spec": {"credits": 10, "members": [], "quota": {"cpu": "2"}},
    "status": {"observedGeneration": 1},
}


class KubeGoingAway:
    """Reads find the Environment's namespace (ours, alive); writes in it are refused."""

    def __init__(self, refusal: Forbidden) -> None:
        self.refusal = refusal
        self.status: list[dict[str, Any]] = []

    async def get_namespace(self, name: str) -> dict[str, Any]:
        owner = {"apiVersion": "batchx.io/v1alpha1", "kind": "Environment", "uid": UID}
        return {"metadata": {"name": name, "ownerReferences": [owner], "labels": {}}}

    async def patch_cluster_status(self, plural: str, name: str, patch: dict[str, Any]) -> None:
        self.status.append(patch)

    async def _refuse(self, *args: Any, **kwargs: Any) -> None:
        raise self.refusal

    apply_namespace = apply_resource_quota = apply_role_binding = apply_secret = _refuse

    def __getattr__(self, name: str) -> Any:  # the other reads: nothing there yet
        async def nothing(*args: Any, **kwargs: Any) -> Any:
            return [] if name.startswith("list_") else None

        return nothing


def reconcile(kube: KubeGoingAway) -> Any:
    ctx = Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]
    return asyncio.run(reconcile_environment(ctx, ENV))


def test_a_namespace_going_away_mid_pass_is_waited_for() -> None:
    kube = KubeGoingAway(
        NamespaceTerminating(
            403,
            "Forbidden",
            'secrets "batchx-store" is forbidden: unable to create new content in namespace lab '
            "because it is being terminated",
        )
    )
    outcome = reconcile(kube)
    assert outcome.retry_after == TERMINATING_RETRY_SECONDS
    ready = [c for c in kube.status[-1]["conditions"] if c["type"] == "Ready"]
    assert ready[0]["reason"] == "NamespaceTerminating", kube.status[-1]


def test_any_other_refusal_still_fails_the_pass() -> None:
    kube = KubeGoingAway(
        Forbidden(403, "Forbidden", 'secrets "batchx-store" is forbidden: User "x" cannot create')
    )
    with pytest.raises(Forbidden):
        reconcile(kube)
