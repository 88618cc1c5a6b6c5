"""The operator's API client reads the real API server's answers as their causes say.

A write into a namespace that is being deleted is refused 403 with the status cause
`NamespaceTerminating`: the client raises `NamespaceTerminating` (a `Forbidden`), which the
Environment reconcile waits out (tests/unit/test_reconcile_environment_terminating.py: any
other 403 still fails the pass).
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from kubernetes import client

from batchx.clients.kube import Kube, KubeError, NamespaceTerminating

pytestmark = pytest.mark.cluster

HOLD = "batchx.io/test-hold"  # a finalizer nobody removes but this test: the namespace lingers


def secret(namespace: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": "probe", "namespace": namespace},
        "stringData": {"a": "b"},
    }


def refusal(kubeconfig: str, namespace: str) -> KubeError | None:
    async def go() -> KubeError | None:
        kube = await Kube.connect(kubeconfig=kubeconfig)
        try:
            await kube.apply_secret(secret(namespace))
        except KubeError as exc:
            return exc
        finally:
            await kube.close()
        return None

    return asyncio.run(go())


def test_a_write_into_a_terminating_namespace_is_namespace_terminating(
    kube_api: client.ApiClient, kubeconfig: str
) -> None:
    core = client.CoreV1Api(kube_api)
    name = f"bx-terminating-{uuid.uuid4().hex[:8]}"
    core.create_namespace({"metadata": {"name": name}})
    hold = {"metadata": {"name": "hold", "finalizers": [HOLD]}}
    core.create_namespaced_config_map(name, hold)
    try:
        core.delete_namespace(name)
        refused = refusal(kubeconfig, name)
        assert isinstance(refused, NamespaceTerminating), refused
        assert "being terminated" in refused.message
    finally:
        core.patch_namespaced_config_map("hold", name, {"metadata": {"finalizers": None}})
