"""Jobs end to end on the real test bed: the operator admits, runs and charges real images.

One operator and one Environment (``quota.cpu: 2``, so the batch also queues first in, first
out) serve the module; the example jobs are submitted together by the `batch` fixture and each
test waits for its own job's outcome. Input and output files go through the real S3 store.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest
from kopf.testing import KopfRunner
from kubernetes import client

from tests.fixtures_jobs import JobBed
from tests.helpers import eventually
from tests.integration.bx import GROUP, VERSION, Bx, condition
from tests.job_lab import JSON, TERMINAL, Lab, make_env

pytestmark = pytest.mark.cluster

TEXT = b"the cat saw the dog\nthe end\n"


@pytest.fixture(scope="module")
def lab(jobs_operator: KopfRunner, module_bx: Bx, job_bed: JobBed) -> Lab:
    lab = make_env(module_bx, job_bed, quota={"cpu": "2", "jobs": 4}, credits=1000)
    with job_bed.store() as store:
        store.env(lab.name).put_bytes("texts/a.txt", TEXT)
    return lab


@pytest.fixture(scope="module")
def batch(lab: Lab) -> Lab:
    """Every example outcome, submitted at once (they run two at a time under the quota)."""
    lab.submit("wc", "examples/wordcount", {"text": "bx://texts/a.txt"})
    lab.submit("hello", "examples/hello-static:1.0.0", {"name": "ada"})
    lab.submit("warn", "examples/exit-warning")
    lab.submit("err", "examples/exit-error:^1.0")
    lab.submit("oom", "examples/memory-hog", memory=32)
    lab.submit("slow", "examples/sleeper", timeout=8)
    lab.submit("bad", "examples/bad-output")
    lab.submit("typo", "examples/wordcount", {"text": 5})
    return lab


def test_wordcount_reads_an_input_file_and_writes_an_output_file(
    batch: Lab, job_bed: JobBed
) -> None:
    job = batch.wait_done("wc")
    status = job["status"]
    assert status["state"] == "SUCCEEDED", (status.get("conditions"), batch.runner_logs("wc"))
    assert status["output"] == {"counts": "bx://jobs/wc/output/counts.txt", "lines": 2, "words": 7}
    assert status["exitCode"] == 0
    assert status["image"]["coordinates"] == f"{batch.name}@examples/wordcount:1.0.0"
    assert status["image"]["container"] == job_bed.examples["wordcount"].image.pinned
    assert status["podName"] == "bx-wc"
    assert status["startedAt"]
    assert status["finishedAt"]
    assert status["observedGeneration"] == 1
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "Succeeded")
    assert 0 < status["credits"]["charged"] <= status["credits"]["reserved"]
    with job_bed.store() as store:
        written = store.env(batch.name).read_bytes("jobs/wc/output/counts.txt")
    counts = written.decode()
    assert counts.split("\n")[0].split() == ["3", "the"]
    assert status["transfer"] == {
        "inputFiles": 1,
        "inputBytes": len(TEXT),
        "outputFiles": 1,
        "outputBytes": len(written),
    }
    logs = batch.bx.core.read_namespaced_pod_log("bx-wc", batch.name, container="job")
    assert "2 lines, 7 words" in logs
    batch.bx.wait_event(batch.name, "wc", "Succeeded", "Normal")


def test_static_image_without_shell_succeeds(batch: Lab) -> None:
    status = batch.wait_done("hello")["status"]
    assert status["state"] == "SUCCEEDED", status
    assert status["output"]["greeting"] == "bx://jobs/hello/output/greeting.txt"


def test_listed_warning_code_is_warning_with_its_message(batch: Lab) -> None:
    status = batch.wait_done("warn")["status"]
    assert status["state"] == "WARNING", status
    assert (status["exitCode"], status["message"]) == (
        3,
        "finished with warnings: some records were skipped",
    )
    assert status["output"] == {"note": "exited with 3 on purpose"}


def test_listed_error_code_fails_with_its_message(batch: Lab) -> None:
    job = batch.wait_done("err")
    status = job["status"]
    assert (status["state"], status["exitCode"]) == ("FAILED", 2), status
    assert status["message"] == "the reference genome is not indexed"
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("False", "ExitCode")
    batch.bx.wait_event(batch.name, "err", "ExitCode", "Warning")


def test_memory_hog_is_out_of_memory(batch: Lab) -> None:
    job = batch.wait_done("oom")
    assert job["status"]["state"] == "OUT_OF_MEMORY", job["status"]
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert cond["reason"] == "OOMKilled"


def test_sleeper_past_its_timeout_fails_with_reason_timeout(batch: Lab) -> None:
    job = batch.wait_done("slow")
    status = job["status"]
    assert status["state"] == "FAILED", status
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert cond["reason"] == "Timeout"
    # Declared at the deadline (pod start + 8 s, a wake-up), not at the next pod event or resync:
    # the job container starts after the pod (staging), and the API's times are whole seconds.
    ran = _seconds(status["finishedAt"]) - _seconds(status["startedAt"])
    assert 8 - 5 <= ran <= 8 + 2, (status["startedAt"], status["finishedAt"])
    # Charged for at most its timeout (8 s at 1 vCPU + 32 MB), never beyond the reservation.
    assert 0 < status["credits"]["charged"] <= status["credits"]["reserved"]
    eventually(lambda: batch.pod("slow") is None or _pod_done(batch.pod("slow")), timeout=60)


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


def _pod_done(pod: client.V1Pod | None) -> bool:
    return (
        pod is None
        or pod.metadata.deletion_timestamp is not None
        or pod.status.phase
        in (
            "Succeeded",
            "Failed",
        )
    )


def test_output_violating_its_schema_is_invalid_output(batch: Lab) -> None:
    job = batch.wait_done("bad")
    status = job["status"]
    assert status["state"] == "INVALID_OUTPUT", status
    assert "count" in status["message"]


def test_invalid_input_fails_at_admission_with_the_json_path_and_no_pod(batch: Lab) -> None:
    job = batch.wait_done("typo", timeout=60)
    status = job["status"]
    assert status["state"] == "FAILED"
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("False", "InvalidInput")
    assert status["message"].startswith("$.spec.input.text")
    assert status["credits"] == {"reserved": 0, "charged": 0}
    assert batch.pod("typo") is None
    batch.bx.wait_event(batch.name, "typo", "InvalidInput", "Warning")


def test_cancel_stops_a_running_job(batch: Lab) -> None:
    batch.submit("nap", "examples/sleeper", timeout=600)
    batch.wait_state("nap", "RUNNING")
    batch.bx.custom.patch_namespaced_custom_object(
        GROUP, VERSION, batch.name, "jobs", "nap", {"spec": {"cancel": True}}
    )
    status = batch.wait_state("nap", "CANCELLED", timeout=60)["status"]
    assert status["credits"]["charged"] > 0  # it ran: charged up to the cancellation
    eventually(lambda: batch.pod("nap") is None, timeout=60, what="the cancelled job's pod gone")


def test_environment_spent_is_the_sum_of_charges(batch: Lab) -> None:
    names = ["wc", "hello", "warn", "err", "oom", "slow", "bad", "typo"]
    charges = [
        Decimal(repr(float(batch.wait_done(n)["status"]["credits"]["charged"]))) for n in names
    ]
    assert all(c > 0 for c in charges[:-1])

    def settled() -> bool:
        jobs = batch.bx.jobs(batch.name)
        if any((j.get("status") or {}).get("state") not in TERMINAL for j in jobs):
            return False
        total = sum(
            (Decimal(repr(float(j["status"]["credits"]["charged"]))) for j in jobs), Decimal(0)
        )
        credits = batch.bx.environment(batch.name)["status"]["credits"]
        return abs(Decimal(repr(float(credits["spent"]))) - total) < Decimal("0.000001") and (
            credits["reserved"] == 0
        )

    eventually(settled, timeout=120, what="spent == sum of the jobs' charges")


def test_job_over_the_balance_waits_queued_until_credits_are_topped_up(
    jobs_operator: KopfRunner, module_bx: Bx, job_bed: JobBed
) -> None:
    poor = make_env(module_bx, job_bed, credits=0.001)
    poor.submit("rich", "examples/hello-static", timeout=60)
    job = poor.wait_state("rich", "QUEUED", timeout=60)
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == (
        "Unknown",
        "InsufficientCredits",
    )
    assert "credits reserved (60 s at" in cond["message"]
    assert "the balance is 0.001" in cond["message"]
    assert poor.pod("rich") is None

    module_bx.patch_environment(poor.name, {"credits": 10})
    status = poor.wait_done("rich")["status"]
    assert status["state"] == "SUCCEEDED", status
    charged = status["credits"]["charged"]
    assert charged > 0

    def settled() -> JSON | None:
        credits: JSON = module_bx.environment(poor.name)["status"]["credits"]
        done = credits["reserved"] == 0 and credits["spent"] == pytest.approx(charged, abs=1e-6)
        return credits if done else None

    credits = eventually(settled, timeout=60, what="the environment charged the job's charge")
    assert (credits["granted"], credits["balance"]) == (10, pytest.approx(10 - charged, abs=1e-6))
    records = module_bx.core.list_namespaced_config_map(
        poor.name, label_selector="batchx.io/ledger=charge"
    ).items
    assert [r.data["job"] for r in records] == ["rich"]
