"""The readiness endpoint: can this operator run jobs right now, and if not, why?

Liveness is Kopf's own endpoint (its event loop answers). Readiness is ours, because an operator
that cannot run jobs must not look healthy to `helm install --wait`, a Deployment rollout or an
admin's `kubectl get pods`. `/readyz` answers 200 `{"ready": true}`, or 503 with the reason:

- not connected to the API server yet;
- a setting every job needs is missing (`Settings.jobs_unavailable`, which also stops
  admission: jobs wait QUEUED, OperatorNotConfigured);
- the store does not answer (a GET of an absent key: it proves the endpoint, the bucket and the
  credentials). Probed at most every `STORE_PROBE_SECONDS`, in a worker thread, never longer
  than `STORE_PROBE_TIMEOUT` per request: the kubelet's probe is never kept waiting on S3.
"""

from __future__ import annotations

import asyncio
import json
import time
from urllib.parse import urlsplit

import kopf
from aiohttp import web

from batchx.reconcile.context import Context
from batchx.store.fs import Store

STORE_PROBE_SECONDS = 10.0
STORE_PROBE_TIMEOUT = 3.0
PROBE_KEY = "readyz/probe"  # never written: its absence is the answer


class StoreProbe:
    """The store's last answer, refreshed in the background at most every STORE_PROBE_SECONDS."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.problem: str | None = "the store has not answered yet"
        self._checked = float("-inf")
        self._task: asyncio.Task[None] | None = None

    async def verdict(self) -> str | None:
        if self._task is None and time.monotonic() - self._checked > STORE_PROBE_SECONDS:
            self._task = asyncio.create_task(self._probe())
        if self._task is not None:
            await asyncio.wait({self._task}, timeout=STORE_PROBE_TIMEOUT)
        return self.problem

    async def _probe(self) -> None:
        try:
            await asyncio.to_thread(self.store.backend.get, PROBE_KEY)
            self.problem = None
        except Exception as err:
            self.problem = f"the store does not answer: {type(err).__name__}: {err}"[:500]
        finally:
            self._checked, self._task = time.monotonic(), None


async def not_ready(memo: kopf.Memo) -> str | None:
    """Why the operator cannot run jobs now, or None."""
    ctx = memo.get("batchx")
    if not isinstance(ctx, Context):
        return "starting: not connected to the API server yet"
    if unavailable := ctx.settings.jobs_unavailable():
        return unavailable
    if ctx.store is None:  # pragma: no cover - jobs_unavailable names a missing store
        return "no store"
    probe = memo.get("batchx-store-probe")
    if not isinstance(probe, StoreProbe):
        memo["batchx-store-probe"] = probe = StoreProbe(ctx.store)
    return await probe.verdict()


async def serve(endpoint: str, memo: kopf.Memo) -> web.AppRunner:
    """Serve `/readyz` (the path of `endpoint`) on its host and port."""
    url = urlsplit(endpoint)

    async def readyz(_: web.Request) -> web.Response:
        reason = await not_ready(memo)
        body = {"ready": reason is None, **({"reason": reason} if reason else {})}
        return web.json_response(body, status=503 if reason else 200, dumps=json.dumps)

    app = web.Application()
    app.router.add_get(url.path or "/", readyz)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, url.hostname, url.port or 80).start()
    return runner
