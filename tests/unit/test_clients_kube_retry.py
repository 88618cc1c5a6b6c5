"""The operator's API client rides out an API server that restarts, and nothing else.

A call that was never sent (connection refused) or that the server refused as not ready (503,
or 429 while its storage initializes) is sent again within `UNREACHABLE_BUDGET`; every other
answer reaches the caller at once, and a server gone for longer still fails the call, with
status 0 saying it was never reached.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from kubernetes_asyncio import client
from kubernetes_asyncio.client.exceptions import ApiException

from batchx.clients import kube as kube_module
from batchx.clients.kube import Kube, NotFound, RateLimiter, Unavailable
from tests.helpers import metric


def refused() -> aiohttp.ClientConnectorError:
    key = SimpleNamespace(host="127.0.0.1", port=6443, ssl=True)
    return aiohttp.ClientConnectorError(key, OSError(111, "Connection refused"))  # type: ignore[arg-type]


class Flaky:
    """Fails with each of `failures` in turn, then answers `{"ok": n}` (n = calls made)."""

    def __init__(self, *failures: Exception) -> None:
        self.failures: Iterator[Exception] = iter(failures)
        self.calls = 0

    async def __call__(self) -> Any:
        self.calls += 1
        failure = next(self.failures, None)
        if failure is not None:
            raise failure
        return {"ok": self.calls}


def call(fn: Flaky) -> Any:
    async def go() -> Any:
        api = client.ApiClient(client.Configuration())
        try:
            return await Kube(api, RateLimiter(1000, 1000, 10))._call(fn)
        finally:
            await api.close()

    return asyncio.run(go())


def test_a_refused_connection_a_503_a_429_and_a_dropped_connection_are_sent_again() -> None:
    retries, unreached = (
        metric("batchx_api_retries_total"),
        metric("batchx_api_errors_total", status="0"),
    )
    fn = Flaky(
        refused(),
        ApiException(status=503, reason="Service Unavailable"),
        ApiException(status=429, reason="storage is (re)initializing"),
        aiohttp.ServerDisconnectedError(),
    )
    assert call(fn) == {"ok": 5}
    assert metric("batchx_api_retries_total") == retries + 4
    assert metric("batchx_api_errors_total", status="0") == unreached + 2


def test_other_answers_reach_the_caller_at_once() -> None:
    fn = Flaky(ApiException(status=404, reason="Not Found"))
    with pytest.raises(NotFound):
        call(fn)
    assert fn.calls == 1


def test_a_server_gone_past_the_budget_fails_the_call(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kube_module, "UNREACHABLE_BUDGET", 0.5)
    fn = Flaky(*[refused()] * 100)
    with pytest.raises(Unavailable) as failed:  # a KubeError the handlers retry later
        call(fn)
    assert failed.value.status == 0
    assert failed.value.reason == "Unreachable"
    assert 2 <= fn.calls < 10  # retried with backoff, not hammered


def test_a_server_not_ready_past_the_budget_is_unavailable_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The campaign's API server restart: 503 'before all known HTTP paths have been installed'."""
    monkeypatch.setattr(kube_module, "UNREACHABLE_BUDGET", 0.5)
    fn = Flaky(*[ApiException(status=503, reason="ServiceUnavailable")] * 100)
    with pytest.raises(Unavailable) as failed:
        call(fn)
    assert (failed.value.status, failed.value.reason) == (503, "ServiceUnavailable")
