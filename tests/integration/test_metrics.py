"""/metrics after real jobs: the job counters, the admission histogram and the jobs gauge move.

The module runs its own in-process operator with `metricsPort` set and scrapes it over HTTP as
Prometheus would. Metric families are process-wide, so every assertion is about this module's
own Environment (a fresh name), whose series start at nothing.

The counters count the status writes of *this* operator. On the shared test bed other
engineers' operators (`--all-namespaces`) may write some of this module's job states first, as
two replicas of the operator would; so the counters are asserted to have moved and never to
exceed what happened (a state change counted twice would), while the gauge, counted from the
API, is exact.
"""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Iterator

import pytest
from kopf.testing import KopfRunner
from prometheus_client.parser import text_string_to_metric_families
from testbed.dashboard import metric_names, series_names

from tests.fixtures_jobs import JobBed
from tests.helpers import eventually
from tests.integration.bx import Bx
from tests.job_lab import Lab, make_env

pytestmark = pytest.mark.cluster

TEXT = b"the cat saw the dog\nthe end\n"

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def metrics_url(job_bed: JobBed, kubeconfig: str, batchx_crds: list[str]) -> Iterator[str]:
    port = _free_port()
    with pytest.MonkeyPatch.context() as patch:
        env = {"KUBECONFIG": kubeconfig, **job_bed.operator_env(), "BATCHX_METRICS_PORT": str(port)}
        for key, value in env.items():
            patch.setenv(key, value)
        args = ["run", "--all-namespaces", "--standalone", "-m", "batchx.handlers"]
        with KopfRunner(args, timeout=60) as runner:
            yield f"http://127.0.0.1:{port}/metrics"
    if runner.exception is not None:
        raise runner.exception


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return str(response.read().decode())


def scrape(url: str) -> Samples:
    text = fetch(url)
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_job_metrics_move_after_real_jobs(metrics_url: str, module_bx: Bx, job_bed: JobBed) -> None:
    lab: Lab = make_env(module_bx, job_bed, quota={"cpu": "2", "jobs": 1}, credits=1000)
    env = lab.name
    before = scrape(metrics_url)
    assert value(before, "batchx_job_admission_seconds_count", environment=env) == 0
    with job_bed.store() as store:
        store.env(env).put_bytes("texts/a.txt", TEXT)
    lab.submit("hello", "examples/hello-static:1.0.0", {"name": "ada"})
    lab.submit("err", "examples/exit-error:^1.0")
    lab.submit("wc", "examples/wordcount", {"text": "bx://texts/a.txt"})
    assert lab.wait_done("hello")["status"]["state"] == "SUCCEEDED"
    assert lab.wait_done("err")["status"]["state"] == "FAILED"
    wc = lab.wait_done("wc")["status"]
    assert wc["state"] == "SUCCEEDED"
    charged = sum(lab.job(n)["status"]["credits"]["charged"] for n in ("hello", "err", "wc"))

    def settled() -> Samples | None:
        # The gauge is set by the environment's next reconcile (resync), the counters at once.
        now = scrape(metrics_url)
        done = value(now, "batchx_jobs", environment=env, state="SUCCEEDED") == 2
        return now if done and value(now, "batchx_jobs", environment=env, state="FAILED") else None

    after = eventually(settled, timeout=60, what="batchx_jobs of the finished jobs")
    assert value(after, "batchx_jobs", environment=env, state="QUEUED") == 0
    assert value(after, "batchx_jobs", environment=env, state="RUNNING") == 0
    changes = "batchx_job_state_changes_total"
    counted = {
        state: value(after, changes, environment=env, state=state)
        for state in ("SUBMITTED", "QUEUED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED")
    }
    assert sum(counted.values()) > 0, counted
    assert counted["SUCCEEDED"] <= 2, counted
    assert counted["FAILED"] <= 1, counted
    assert counted["STARTING"] <= 3, counted
    admitted = value(after, "batchx_job_admission_seconds_count", environment=env)
    assert admitted == counted["STARTING"]
    assert value(after, "batchx_job_admission_seconds_sum", environment=env) >= 0
    ended = counted["SUCCEEDED"] + counted["FAILED"]
    run = value(after, "batchx_job_run_seconds_total", environment=env)
    # Whole seconds on both ends: a quick job may have run "0 s"; nothing ended, nothing ran.
    assert run >= 0 if ended else run == 0, (run, counted)
    credits = value(after, "batchx_job_credits_charged_total", environment=env)
    assert credits <= charged + 1e-9
    assert (credits > 0) == (ended > 0), (credits, counted)
    # The jobs' file traffic, once per end this operator wrote (each job's own is in its status).
    moved = {
        d: value(after, "batchx_job_file_bytes_total", environment=env, direction=d)
        for d in ("in", "out")
    }
    transfers = [lab.job(n)["status"].get("transfer") or {} for n in ("hello", "err", "wc")]
    expected = {
        "in": sum(t.get("inputBytes", 0) for t in transfers),
        "out": sum(t.get("outputBytes", 0) for t in transfers),
    }
    assert wc["transfer"]["inputBytes"] == len(TEXT), wc["transfer"]
    assert wc["transfer"]["outputBytes"] > 0, wc["transfer"]
    assert moved["in"] <= expected["in"], (moved, expected)
    assert moved["out"] <= expected["out"], (moved, expected)
    if ended == 3:  # this operator wrote every end
        assert moved == expected, (moved, expected)
    # No job names anywhere in the labels.
    assert not any(v in ("hello", "err", "wc") for (_, labels) in after for _, v in labels)


def test_the_dashboard_queries_metrics_the_operator_serves(metrics_url: str) -> None:
    served = series_names(text_string_to_metric_families(fetch(metrics_url)))
    assert metric_names() <= served, metric_names() - served
