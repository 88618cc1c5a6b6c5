"""Fixtures of the BatchX integration tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from kubernetes import client

from testbed import health_checker
from tests.integration.bx import Bx


@pytest.fixture(scope="session")
def health() -> health_checker.HealthChecker:
    """kstatus and Argo CD's Lua runtime, built once from their Go modules (testbed/health)."""
    return health_checker.build()


@pytest.fixture
def bx(kube_api: client.ApiClient, batchx_crds: list[str]) -> Iterator[Bx]:
    """API helpers; Environments the test created are deleted after it (namespaces with them)."""
    helper = Bx(kube_api)
    yield helper
    helper.clean_up()


@pytest.fixture(scope="module")
def module_bx(kube_api: client.ApiClient, batchx_crds: list[str]) -> Iterator[Bx]:
    """`bx` for a module whose tests share Environments (a lab made once for all of them)."""
    helper = Bx(kube_api)
    yield helper
    helper.clean_up()
