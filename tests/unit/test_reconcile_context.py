"""Coalescing (a burst of triggers costs at most one extra run), keyed locks and wake-ups."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from batchx.reconcile.context import Coalescer, KeyedLocks, Wakeups


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


def test_keyed_locks_serialise_one_key_and_are_dropped_when_unused() -> None:
    async def scenario() -> tuple[list[str], int, int]:
        locks = KeyedLocks()
        order: list[str] = []
        inside = asyncio.Event()
        release = asyncio.Event()

        async def first() -> None:
            async with locks.hold("job/a"):
                order.append("first in")
                inside.set()
                await release.wait()
                order.append("first out")

        async def second() -> None:
            await inside.wait()
            async with locks.hold("job/a"):
                order.append("second in")

        async def cancelled() -> None:
            async with locks.hold("job/a"):
                order.append("never")

        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        waiter = asyncio.create_task(cancelled())
        await inside.wait()
        await asyncio.sleep(0)
        held = len(locks)  # one key, however many wait for it
        waiter.cancel()
        release.set()
        await asyncio.gather(*tasks, return_exceptions=True)
        for i in range(1000):  # 1,000 jobs come and go: no lock is kept for any of them
            async with locks.hold(f"job/{i}"):
                pass
        return order, held, len(locks)

    order, held, left = asyncio.run(scenario())
    assert order == ["first in", "first out", "second in"]
    assert (held, left) == (1, 0)


def test_a_keyed_lock_is_released_when_its_body_raises() -> None:
    async def scenario() -> int:
        locks = KeyedLocks()
        try:
            async with locks.hold("env"):
                raise RuntimeError("boom")
        except RuntimeError:
            pass
        async with locks.hold("env"):  # not held any more: no deadlock
            pass
        return len(locks)

    assert asyncio.run(scenario()) == 0
