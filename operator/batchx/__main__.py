"""`python -m batchx` / `batchx-operator`: run the BatchX operator (Kopf) against the cluster.

Configuration comes from `batchx.settings.Settings` (config file + BATCHX_* variables). Logs are
JSON lines by default (`BATCHX_LOG_FORMAT=text` for humans); the liveness endpoint is
`BATCHX_LIVENESS_ENDPOINT` (default http://127.0.0.1:8080/healthz, empty to disable).
"""

from __future__ import annotations

import argparse
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

    kopf.run(
        standalone=True,
        clusterwide=True,
        liveness_endpoint=settings.liveness_endpoint or None,
    )


if __name__ == "__main__":
    main()
