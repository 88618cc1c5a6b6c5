"""Fixtures of the BatchX integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

from testbed import health_checker
from tests.integration.bx import GROUP, VERSION, Bx


@pytest.fixture(scope="session")
def health() -> health_checker.HealthChecker:
    """kstatus and Argo CD's Lua runtime, built once from their Go modules (testbed/health)."""
    return health_checker.build()


@pytest.fixture
def bx(kube_api: client.ApiClient, batchx_crds: list[str]) -> Iterator[Bx]:
    """API helpers; Environments the test created are deleted after it (namespaces with them)."""
    helper = Bx(kube_api)
    yield helper
    for name in helper.created_envs:
        helper.delete_environment(name)
        # Jobs carry the ledger's finalizer; with no operator left they would hold the
        # namespace in Terminating forever.
        for job in helper.jobs(name) if helper.namespace_exists(name) else []:
            helper.custom.patch_namespaced_custom_object(
                GROUP,
                VERSION,
                name,
                "jobs",
                job["metadata"]["name"],
                {"metadata": {"finalizers": None}},
            )
        try:
            # The operator may already be stopped: do not leave the object stuck on its finalizer.
            helper.custom.patch_cluster_custom_object(
                GROUP, VERSION, "environments", name, {"metadata": {"finalizers": None}}
            )
        except ApiException as exc:
            if exc.status != 404:
                raise
