"""Coalescing (a burst of triggers costs at most one extra run) and keyed wake-ups."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from batchx.reconcile.context import Coalescer, Wakeups


def test_calls_during_a_run_fold_into_one_more_run() -> None:
    async def scenario() -> int:
        coalescer = Coalescer()
        runs = 0
        release = asyncio.Event()

        async def work() -> None:
            nonlocal runs
            runs += 1
            if runs == 1:
                await release.wait()

        first = asyncio.create_task(coalescer.run("env", work))
        await asyncio.sleep(0)  # let the first run start and block
        for _ in range(10):
            await coalescer.run("env", work)  # folded: return at once
        release.set()
        await first
        return runs

    assert asyncio.run(scenario()) == 2


def test_keys_are_independent() -> None:
    async def scenario() -> list[str]:
        coalescer = Coalescer()
        seen: list[str] = []

        async def work(key: str) -> None:
            seen.append(key)

        await asyncio.gather(*(coalescer.run(k, lambda k=k: work(k)) for k in "abc"))
        return sorted(seen)

    assert asyncio.run(scenario()) == ["a", "b", "c"]


def test_wakeups_fire_once_at_their_time_and_rearm_or_cancel() -> None:
    async def scenario() -> list[str]:
        fired: list[str] = []
        wakeups = Wakeups()

        def note(label: str) -> Callable[[], Coroutine[Any, Any, None]]:
            async def fn() -> None:
                fired.append(label)

            return fn

        wakeups.at("a", 0.05, note("a"))
        wakeups.at("a", 0.05, note("a-again"))  # the same moment: left as armed
        wakeups.at("b", 0.05, note("b"))
        wakeups.at("b", 5.0, note("b-later"))  # re-armed later
        wakeups.at("c", 0.05, note("c"))
        wakeups.cancel("c")
        assert wakeups.pending("b") is not None
        await asyncio.sleep(0.2)
        assert wakeups.pending("a") is None
        wakeups.close()
        assert wakeups.pending("b") is None
        return fired

    assert asyncio.run(scenario()) == ["a"]
