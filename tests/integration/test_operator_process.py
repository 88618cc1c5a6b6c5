"""`python -m batchx` as deployed: liveness endpoint, JSON logs, Kopf markers in batchx.io."""

from __future__ import annotations

import json
import socket
import urllib.request

import pytest

from tests.fixtures_operator import OperatorProcess
from tests.helpers import eventually
from tests.integration.bx import Bx

pytestmark = pytest.mark.cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def test_liveness_json_logs_and_batchx_markers(operator_process: OperatorProcess, bx: Bx) -> None:
    url = f"http://127.0.0.1:{_free_port()}/healthz"
    operator_process.env["BATCHX_LIVENESS_ENDPOINT"] = url
    operator_process.start()

    def healthy() -> dict[str, object] | None:
        with urllib.request.urlopen(url, timeout=2) as response:
            return dict(json.loads(response.read()))

    assert eventually(healthy, timeout=60, what="liveness endpoint") == {"ready": True}

    name = bx.create_environment()
    env = bx.wait_ready(name)
    assert env["metadata"]["finalizers"] == ["batchx.io/finalizer"]
    # Kopf writes its last-handled marker after the handlers' status patch: it may come later.
    annotations = eventually(
        lambda: bx.environment(name)["metadata"].get("annotations"),
        timeout=30,
        what="Kopf's annotations on the Environment",
    )
    assert all(k.startswith("batchx.io/") for k in annotations), annotations

    lines = operator_process.log.read_text().splitlines()
    records = [json.loads(line) for line in lines if line.startswith("{")]
    assert records, "no JSON log lines"
    assert all({"message", "severity", "timestamp"} <= set(r) for r in records)
