"""Coalescing of environment refreshes: a burst of triggers costs at most one extra run."""

from __future__ import annotations

import asyncio

from batchx.reconcile.context import Coalescer


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
