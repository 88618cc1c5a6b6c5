"""`python -m batchx` / `batchx-operator`: run the BatchX operator (Kopf) against the cluster.

Configuration comes from `batchx.settings.Settings` (config file + BATCHX_* variables). Logs are
JSON lines by default (`BATCHX_LOG_FORMAT=text` for humans); the liveness endpoint is
`BATCHX_LIVENESS_ENDPOINT` (default http://127.0.0.1:8080/healthz, empty to disable).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Sequence

import kopf

from batchx.settings import Settings


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="batchx-operator", description=__doc__.splitlines()[0])
    parser.add_argument("--verbose", action="store_true", help="debug logging")
    args = parser.parse_args(argv)
    settings = Settings.load()  # fail fast, before connecting, on a bad configuration
    kopf.configure(
        verbose=args.verbose,
        log_format=kopf.LogFormat.JSON if settings.log_format == "json" else kopf.LogFormat.FULL,
        log_refkey="object",
    )
    import batchx.handlers  # noqa: F401, PLC0415 - registers the handlers with Kopf

    asyncio.run(_operate(settings.liveness_endpoint or None))


async def _operate(liveness_endpoint: str | None) -> None:
    """Run Kopf until a signal stops it; if its watches fail, reconnect instead of exiting.

    Kopf treats some answers of an API server that is still starting (a 404 for the batchx.io
    resources before their CRDs are served again) as fatal for the whole operator. Exiting
    would leave recovery to the Deployment's restart backoff; reconnecting here takes a second
    or two, and every decision lives in the cluster (statuses, plans, ledger records), so a
    new Kopf run carries on exactly where the last one stopped.
    """
    delay = _RETRY_FIRST
    while True:
        started = time.monotonic()
        try:
            await kopf.operator(
                standalone=True, clusterwide=True, liveness_endpoint=liveness_endpoint
            )
            return  # stopped by a signal
        except Exception as err:  # any failure of a run is retried, and said
            if time.monotonic() - started > _HEALTHY_RUN:
                delay = _RETRY_FIRST
            _log.warning("the operator's run failed (%s); reconnecting in %.0f s", err, delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, _RETRY_MAX)


_log = logging.getLogger("batchx")
_RETRY_FIRST, _RETRY_MAX = 1.0, 30.0  # seconds between runs that fail at once, doubling
_HEALTHY_RUN = 60.0  # a run that lasted this long resets the backoff


if __name__ == "__main__":
    main()
