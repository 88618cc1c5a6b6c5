"""The API client's rate limiter: background work takes only what nothing else wants.

After a restart, the listing's re-checks (a hundred running jobs, each re-read) queue hundreds
of requests; a new job's admission must not wait behind them (issue 16, restarts are cheap).
"""

from __future__ import annotations

import asyncio

from batchx.clients.kube import RateLimiter, background


async def _take(limiter: RateLimiter, name: str, order: list[str], *, settled: bool) -> None:
    with background(settled):
        async with limiter.slot():
            order.append(name)


def test_a_request_goes_before_background_ones_that_waited_longer() -> None:
    async def main() -> list[str]:
        limiter, order = RateLimiter(qps=20, burst=1, concurrency=4), []
        await _take(limiter, "first", order, settled=False)  # the bucket is empty now
        waiting = [
            asyncio.create_task(_take(limiter, f"re-check-{i}", order, settled=True))
            for i in range(4)
        ]
        for _ in range(5):  # every re-check is waiting for a token
            await asyncio.sleep(0)
        news = [_take(limiter, f"new-{i}", order, settled=False) for i in range(2)]
        await asyncio.gather(*waiting, *news)
        return order

    order = asyncio.run(main())
    assert order[:3] == ["first", "new-0", "new-1"]
    assert sorted(order[3:]) == [f"re-check-{i}" for i in range(4)]


def test_background_alone_gets_the_whole_rate() -> None:
    async def main() -> tuple[list[str], float]:
        limiter, order = RateLimiter(qps=50, burst=5, concurrency=4), []
        loop = asyncio.get_running_loop()
        started = loop.time()
        await asyncio.gather(*(_take(limiter, f"b{i}", order, settled=True) for i in range(10)))
        return order, loop.time() - started

    order, took = asyncio.run(main())
    assert sorted(order) == sorted(f"b{i}" for i in range(10))
    assert took < 1.0  # 5 at once, 5 more at 50 per second: ~0.1 s, not a stall


def test_background_false_inside_background_is_an_ordinary_request() -> None:
    async def main() -> list[str]:
        limiter, order = RateLimiter(qps=20, burst=1, concurrency=4), []
        await _take(limiter, "first", order, settled=False)
        with background():
            waiting = asyncio.create_task(_take(limiter, "re-check", order, settled=True))
            for _ in range(3):
                await asyncio.sleep(0)
            await _take(limiter, "admission", order, settled=False)
        await waiting
        return order

    assert asyncio.run(main()) == ["first", "admission", "re-check"]
