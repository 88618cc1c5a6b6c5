"""Operator start-up: Kopf settings, the API client, the probes (liveness: Kopf's; readiness:
`batchx.handlers.readiness`), and one error line at start-up when a setting every job needs is
missing (`Settings.jobs_unavailable`)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path
from typing import Any

import kopf
from aiohttp import web

from batchx import metrics
from batchx.clients.kube import Kube, KubeError
from batchx.diffbase import DigestedDiffBase
from batchx.handlers import files_api, readiness
from batchx.reconcile import events, gc
from batchx.reconcile.context import Context, Outcome
from batchx.settings import Settings
from batchx.store.config import open_store

PREFIX = "batchx.io"
WORKER_IDLE_SECONDS = 0.5
logger = logging.getLogger("batchx")


def configure(kopf_settings: kopf.OperatorSettings, settings: Settings) -> None:
    """Kopf's knobs, set explicitly rather than left to defaults."""
    # Kopf's own markers in the product's domain (STYLE: no kopf.zalando.org on our objects).
    kopf_settings.persistence.finalizer = f"{PREFIX}/finalizer"
    kopf_settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=PREFIX)
    kopf_settings.persistence.diffbase_storage = DigestedDiffBase(
        prefix=PREFIX, key="last-handled-configuration"
    )
    # One operator replica (Helm: replicas 1, strategy Recreate); no KopfPeering CRDs needed.
    kopf_settings.peering.standalone = True
    kopf_settings.peering.clusterwide = True
    # Bounded work: at most this many objects are handled at once; Events post in the background.
    kopf_settings.queueing.worker_limit = settings.worker_limit
    # An object's worker waits this long for its next event before it frees its place (Kopf's
    # default, 5 s, makes a restart's listing of 1,100 jobs hold 20 workers for 1,100 / 20 x 5 s,
    # and a job submitted meanwhile wait for all of them). A worker expecting its own patch's echo
    # waits for it regardless (Kopf's consistency wait).
    kopf_settings.queueing.idle_timeout = WORKER_IDLE_SECONDS
    # Events come from reconcilers (`batchx.reconcile.events`: one per news, aggregated), not
    # from log lines: Kopf would post one per retried or failed handler run ("failed
    # temporarily"), a line per reconcile pass in `kubectl describe`. Those stay in the logs.
    kopf_settings.posting.enabled = False
    kopf_settings.networking.request_timeout = 60
    kopf_settings.networking.connect_timeout = 10
    # Watches are re-established well before idle connections are cut by proxies.
    kopf_settings.watching.server_timeout = 300
    kopf_settings.watching.client_timeout = 330
    kopf_settings.watching.connect_timeout = 10
    kopf_settings.execution.max_workers = 4  # only for sync handlers; all of ours are async


SERVICE_ACCOUNT = Path("/var/run/secrets/kubernetes.io/serviceaccount")


@kopf.on.login()
def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """In a Pod, the service account at the API server's Service address; else $KUBECONFIG.

    The address comes from KUBERNETES_SERVICE_HOST/PORT, as client-go's in-cluster config (and
    our own API client) reads it. Kopf's own reader names `kubernetes.default.svc`, which needs
    cluster DNS, which not every cluster runs. The token is read at every login: Kopf logs in
    again when the API server refuses an expired (rotated) token.
    """
    host = os.environ.get("KUBERNETES_SERVICE_HOST")
    token = SERVICE_ACCOUNT / "token"
    if host and token.exists():
        port = os.environ.get("KUBERNETES_SERVICE_PORT", "443")
        namespace = SERVICE_ACCOUNT / "namespace"
        return kopf.ConnectionInfo(
            server=f"https://{f'[{host}]' if ':' in host else host}:{port}",
            ca_path=str(SERVICE_ACCOUNT / "ca.crt"),
            token=token.read_text().strip(),
            default_namespace=namespace.read_text().strip() if namespace.exists() else None,
        )
    return kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def startup(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
    config = await asyncio.to_thread(Settings.load)  # may read the config file
    configure(settings, config)
    kube = await Kube.connect(
        kubeconfig=config.kubeconfig,
        qps=config.api_qps,
        burst=config.api_burst,
        concurrency=config.api_concurrency,
    )
    # The store is opened only when configured: without it, status.storage stays at zero.
    store = await asyncio.to_thread(open_store, config.store) if config.store else None
    memo["batchx"] = Context(
        settings=config,
        kube=kube,
        store=store,
        store_credentials=config.store_credentials(),
    )
    if config.metrics_port is not None:
        metrics.serve(config.metrics_port, config.metrics_address)
    if unavailable := config.jobs_unavailable():
        logger.error("%s", unavailable)
    if config.readiness_endpoint:
        memo["batchx-readiness"] = await readiness.serve(config.readiness_endpoint, memo)
    if config.files_api_address:
        try:
            memo["batchx-files-api"] = await _serve_files_api(memo["batchx"], config)
        except (OSError, ValueError, KubeError) as exc:  # jobs still run; `bx cp` cannot
            logger.error("the files API (files.batchx.io) is not served: %s", exc)
    if config.store and config.gc_interval_seconds:
        url = config.store
        memo["batchx-gc"] = asyncio.create_task(
            gc.run_forever(
                lambda: open_store(url), config.gc_interval_seconds, config.gc_grace_seconds
            )
        )


async def _serve_files_api(ctx: Context, config: Settings) -> web.AppRunner:
    if not (config.files_api_cert and config.files_api_key and config.files_api_address):
        raise ValueError("filesApiAddress needs filesApiCert and filesApiKey")
    found = await ctx.kube.get_config_map(*files_api.AUTH_CONFIG)
    if found is None:
        raise ValueError(
            f"no ConfigMap {'/'.join(files_api.AUTH_CONFIG)}: the API server serves no "
            "aggregated APIs"
        )
    proxy = files_api.FrontProxy.from_config_map(found.get("data") or {})
    return await files_api.serve(
        ctx, proxy, config.files_api_address, config.files_api_cert, config.files_api_key
    )


@kopf.on.cleanup()
async def cleanup(memo: kopf.Memo, **_: Any) -> None:
    ctx = memo.get("batchx")
    if isinstance(ctx, Context):
        ctx.wakeups.close()
        await ctx.kube.close()
    collector = memo.get("batchx-gc")
    if isinstance(collector, asyncio.Task):
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
    for served in ("batchx-readiness", "batchx-files-api"):
        runner = memo.get(served)
        if isinstance(runner, web.AppRunner):
            await runner.cleanup()


@kopf.on.probe(id="ready")
async def probe(memo: kopf.Memo, **_: Any) -> bool:
    """Reported by the liveness endpoint: true once the API client is connected."""
    return isinstance(memo.get("batchx"), Context)


def context(memo: kopf.Memo) -> Context:
    ctx = memo.get("batchx")
    if not isinstance(ctx, Context):  # pragma: no cover - startup runs before any handler
        raise kopf.TemporaryError("operator is still starting", delay=1)
    return ctx


def required(namespace: str | None) -> str:
    """The namespace of a namespaced object (Kopf types it optional for cluster-scoped ones)."""
    if namespace is None:  # pragma: no cover - Images and Jobs are namespaced by their CRDs
        raise kopf.PermanentError("expected a namespaced object")
    return namespace


async def post(memo: kopf.Memo, outcome: Outcome) -> None:
    """Post the reconcile's Events (`batchx.reconcile.events`: aggregated, failures logged)."""
    await events.post(context(memo), outcome.notices)
