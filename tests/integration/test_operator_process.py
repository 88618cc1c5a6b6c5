"""`python -m batchx` as deployed: liveness endpoint, JSON logs, Kopf markers in batchx.io."""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request

import pytest

from tests.builders import PINNED, manifest
from tests.fixtures_operator import OperatorProcess
from tests.helpers import eventually
from tests.integration.bx import Bx, condition

pytestmark = pytest.mark.cluster


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def _readiness(url: str) -> tuple[int, dict[str, object]]:
    """The readiness endpoint's status code and JSON body (503 is an answer, not an error)."""
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status, dict(json.loads(response.read()))
    except urllib.error.HTTPError as err:
        return err.code, dict(json.loads(err.read()))


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


def test_without_a_runner_image_it_is_not_ready_and_jobs_wait_reserving_nothing(
    operator_process: OperatorProcess, bx: Bx
) -> None:
    """A job must never hang silently for a missing setting: the operator says so at start-up
    (one error line), its readiness fails with the reason, and jobs wait QUEUED naming the
    setting, with nothing reserved."""
    url = f"http://127.0.0.1:{_free_port()}/readyz"
    operator_process.env["BATCHX_READINESS_ENDPOINT"] = url
    operator_process.start()

    status, body = eventually(lambda: _readiness(url), timeout=60, what="readiness endpoint")
    assert status == 503
    assert body["ready"] is False
    assert "runnerImage" in str(body["reason"])
    assert "store" in str(body["reason"])

    env = bx.create_environment(credits=100)
    bx.wait_ready(env, timeout=90)
    bx.create_image(env, "hello", {"image": PINNED, "manifest": manifest()})
    bx.wait_image(env, "hello", "True", "Accepted")
    bx.create_job(env, "waits")
    job = eventually(
        lambda: (j := bx.job(env, "waits")).get("status", {}).get("state") == "QUEUED" and j,
        timeout=60,
        what="job QUEUED",
    )
    cond = condition(job, "Succeeded")
    assert cond["reason"] == "OperatorNotConfigured"
    assert "runnerImage" in cond["message"]
    assert job["status"]["credits"]["reserved"] == 0
    assert (bx.environment(env).get("status") or {}).get("credits", {}).get("reserved", 0) == 0
    errors = [
        json.loads(line)
        for line in operator_process.log.read_text().splitlines()
        if line.startswith("{") and "cannot run jobs" in line
    ]
    assert len(errors) == 1, errors
    assert errors[0]["severity"] == "error"


def test_a_store_that_does_not_answer_keeps_it_not_ready(
    operator_process: OperatorProcess, bx: Bx
) -> None:
    """Every setting present, but the store's endpoint refuses connections: readiness says so
    (the chart's Deployment then never turns Ready, so `helm install --wait` fails)."""
    url = f"http://127.0.0.1:{_free_port()}/readyz"
    dead = f"http://127.0.0.1:{_free_port()}"
    operator_process.env.update(
        {
            "BATCHX_READINESS_ENDPOINT": url,
            "BATCHX_RUNNER_IMAGE": f"batchx.local/batchx-runner@sha256:{'0' * 64}",
            "BATCHX_STORE": f"s3://nowhere?endpoint={dead}",
            "AWS_ACCESS_KEY_ID": "x",
            "AWS_SECRET_ACCESS_KEY": "y",
        }
    )
    operator_process.start()

    def naming_the_store() -> tuple[int, dict[str, object]] | None:
        answer = _readiness(url)
        return answer if "store" in str(answer[1].get("reason")) else None

    status, body = eventually(naming_the_store, timeout=90, what="readiness naming the store")
    assert status == 503
    assert "the store does not answer" in str(body["reason"])
