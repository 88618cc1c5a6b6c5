"""Handlers and deadline wake-ups under an API server outage longer than the client rides out.

The fault campaign restarted the API server (and kept it down 20 s) while jobs ran: every
handler then running failed with a KubeError that Kopf logged with its traceback (a dozen per
outage), and a deadline wake-up then running was lost until the resync. Now the handler is
retried later in one log line (Kopf's TemporaryError) and the wake-up comes again.
"""

from __future__ import annotations

import asyncio

import kopf
import pytest

from batchx import outage
from batchx.clients.kube import NotFound, Unavailable
from batchx.reconcile import context as context_module
from batchx.reconcile.context import Wakeups


def test_an_unavailable_api_server_makes_the_handler_retry_later() -> None:
    @outage.outage_is_temporary
    async def job_changed(name: str, **_: object) -> str:
        raise Unavailable(503, "ServiceUnavailable", "not all HTTP paths installed")

    assert job_changed.__name__ == "job_changed"  # Kopf's handler id (its progress annotation)
    with pytest.raises(kopf.TemporaryError) as retried:
        asyncio.run(job_changed(name="j", extra="kopf's other kwargs"))
    assert retried.value.delay == outage.UNAVAILABLE_RETRY_SECONDS
    assert "the API server is unavailable (503 ServiceUnavailable" in str(retried.value)


def test_other_errors_and_results_pass_through() -> None:
    @outage.outage_is_temporary
    async def gone(**_: object) -> None:
        raise NotFound(404, "NotFound", "no such job")

    @outage.outage_is_temporary
    async def fine(**_: object) -> int:
        return 7

    with pytest.raises(NotFound):
        asyncio.run(gone())
    assert asyncio.run(fine()) == 7


def test_a_wakeup_that_meets_an_outage_comes_again(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(context_module, "WAKEUP_RETRY_SECONDS", 0.05)
    calls: list[int] = []

    async def main() -> None:
        wakeups, done = Wakeups(), asyncio.Event()

        async def deadline() -> None:
            calls.append(len(calls))
            if len(calls) == 1:
                raise Unavailable(0, "Unreachable", "connection refused")
            done.set()

        wakeups.at("job/lab/long", 0.01, deadline)
        await asyncio.wait_for(done.wait(), timeout=5)
        wakeups.close()

    asyncio.run(main())
    assert calls == [0, 1]
