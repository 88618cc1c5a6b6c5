"""Execution caching on the real test bed: an identical job is served at once, free, no pod.

Each test counts words of a text of its own (so no test serves another's job) through the real
operator, API server, kubelet and S3 store: the first job runs a pod, an identical one is served
from it (same output file content under its own output folder, charge 0, never a pod), a copy of
the input under another path hits, new content misses, ``cache: false`` runs, two identical jobs
submitted together run one pod, and a result whose job or blob is gone is not served.
Provenance: a job's output names the job, its image and input digests, through a chain of two
jobs back to the uploaded file (``bx provenance``), and a served job's copy names both jobs.
"""

from __future__ import annotations

import json
import uuid

import pytest
from kopf.testing import KopfRunner
from typer.testing import CliRunner

from batchx.cli.app import app
from tests.fixtures_jobs import JobBed
from tests.helpers import eventually
from tests.integration.bx import GROUP, VERSION, Bx, condition
from tests.job_lab import JSON, Lab, make_env

pytestmark = pytest.mark.cluster

WORDCOUNT = "examples/wordcount"


@pytest.fixture(scope="module")
def lab(jobs_operator: KopfRunner, module_bx: Bx, job_bed: JobBed) -> Lab:
    return make_env(module_bx, job_bed, quota={"cpu": "2", "jobs": 4}, credits=1000)


def a_text(lab: Lab, job_bed: JobBed, path: str | None = None, text: bytes | None = None) -> str:
    """Store a text no other test has (or `text`) at `path`; its bx:// path."""
    path = path or f"texts/{uuid.uuid4().hex[:8]}.txt"
    with job_bed.store() as store:
        store.env(lab.name).put_bytes(path, text or f"unique {uuid.uuid4().hex}\n".encode())
    return f"bx://{path}"


def count(lab: Lab, name: str, text: str, **spec: object) -> str:
    return lab.submit(name, WORDCOUNT, {"text": text}, cache=spec.pop("cache", True), **spec)


def ran(lab: Lab, name: str) -> JSON:
    """The final status of a job that ran a pod and succeeded."""
    status: JSON = lab.wait_done(name)["status"]
    assert status["state"] == "SUCCEEDED", (status.get("conditions"), lab.runner_logs(name))
    assert status["podName"] == f"bx-{name}"
    assert not status.get("cached")
    assert status["admission"]["cacheKey"].startswith("sha256:")
    return status


def served(lab: Lab, name: str, original: str) -> JSON:
    """The final status of a job served from `original`: cached, free, never a pod."""
    status: JSON = lab.wait_done(name)["status"]
    assert (status["state"], status.get("cached"), status.get("cachedFrom")) == (
        "SUCCEEDED",
        True,
        original,
    ), status.get("conditions")
    assert (status["credits"]["reserved"], status["credits"]["charged"]) == (0, 0)
    assert "podName" not in status
    assert "startedAt" not in status
    assert lab.pod(name) is None
    assert "PodCreated" not in [r for _, r in lab.bx.event_reasons(lab.name, name)]
    cond = condition(lab.job(name), "Succeeded")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "Cached")
    return status


def test_the_same_job_twice_is_served_from_the_first(lab: Lab, job_bed: JobBed) -> None:
    text = a_text(lab, job_bed)
    first = ran(lab, count(lab, "first", text))
    second = served(lab, count(lab, "second", text), "first")
    assert second["output"] == {**first["output"], "counts": "bx://jobs/second/output/counts.txt"}
    assert second["exitCode"] == first["exitCode"] == 0
    assert second["admission"]["cacheKey"] == first["admission"]["cacheKey"]
    with job_bed.store() as store:
        files = store.env(lab.name)
        assert files.read_bytes("jobs/second/output/counts.txt") == files.read_bytes(
            "jobs/first/output/counts.txt"
        )
        alias, computed = (
            files.stat("jobs/second/output/counts.txt"),
            files.stat("jobs/first/output/counts.txt"),
        )
        assert alias is not None
        assert computed is not None
        assert alias.digest == computed.digest  # an alias: the same blob, no bytes copied
    lab.bx.wait_event(lab.name, "second", "Cached", "Normal")


def test_the_same_content_under_another_path_hits(lab: Lab, job_bed: JobBed) -> None:
    data = f"shared {uuid.uuid4().hex}\n".encode()
    ran(lab, count(lab, "orig-path", a_text(lab, job_bed, text=data)))
    served(lab, count(lab, "other-path", a_text(lab, job_bed, text=data)), "orig-path")


def test_new_content_misses(lab: Lab, job_bed: JobBed) -> None:
    ran(lab, count(lab, "old-text", a_text(lab, job_bed)))
    ran(lab, count(lab, "new-text", a_text(lab, job_bed)))


def test_cache_false_runs_and_its_result_serves_later_jobs(lab: Lab, job_bed: JobBed) -> None:
    text = a_text(lab, job_bed)
    ran(lab, count(lab, "computed", text))
    ran(lab, count(lab, "uncached", text, cache=False))
    # Both computed it: a later job is served from the newest result.
    served(lab, count(lab, "after-uncached", text), "uncached")


def test_identical_jobs_submitted_together_run_one_pod(lab: Lab, job_bed: JobBed) -> None:
    text = a_text(lab, job_bed)
    count(lab, "twin-a", text)
    count(lab, "twin-b", text)
    ran(lab, "twin-a")  # the older one runs
    served(lab, "twin-b", "twin-a")
    lab.bx.wait_event(lab.name, "twin-b", "WaitingForIdenticalJob", "Normal")


def test_a_result_whose_job_is_deleted_is_not_served(lab: Lab, job_bed: JobBed) -> None:
    text = a_text(lab, job_bed)
    ran(lab, count(lab, "gone", text))
    served(lab, count(lab, "from-gone", text), "gone")
    lab.bx.custom.delete_namespaced_custom_object(GROUP, VERSION, lab.name, "jobs", "gone")
    eventually(
        lambda: "gone" not in [j["metadata"]["name"] for j in lab.bx.jobs(lab.name)],
        timeout=60,
        what="job gone deleted (its finalizers done)",
    )
    # The served job is no entry (it computed nothing): the next identical job runs.
    ran(lab, count(lab, "after-gone", text))
    with job_bed.store() as store:  # the served job's aliases outlive the original's paths
        files = store.env(lab.name)
        assert files.stat("jobs/gone/output/counts.txt") is None
        assert files.read_bytes("jobs/from-gone/output/counts.txt")


def test_a_result_whose_blob_is_gone_is_not_served(lab: Lab, job_bed: JobBed) -> None:
    text = a_text(lab, job_bed)
    ran(lab, count(lab, "lost", text))
    with job_bed.store() as store:
        entry = store.env(lab.name).stat("jobs/lost/output/counts.txt")
        assert entry is not None
        store.backend.delete_blob(entry.digest)  # lost data (a bucket rule, a bad restore)
    ran(lab, count(lab, "after-lost", text))


# ------------------------------------------------------------------------------ provenance


def test_provenance_goes_back_through_two_jobs_and_names_the_served_job(
    lab: Lab, job_bed: JobBed, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = a_text(lab, job_bed)
    first = ran(lab, count(lab, "prov-1", text))
    second = ran(lab, count(lab, "prov-2", first["output"]["counts"]))
    served(lab, count(lab, "prov-3", first["output"]["counts"]), "prov-2")
    uids = {n: lab.job(n)["metadata"]["uid"] for n in ("prov-1", "prov-2", "prov-3")}
    for key, value in {**job_bed.credentials(), "BATCHX_STORE": job_bed.store_url}.items():
        monkeypatch.setenv(key, value)
    runner = CliRunner(env={"COLUMNS": "250"})
    where = ["-e", lab.name]

    shown = runner.invoke(app, ["provenance", second["output"]["counts"], *where, "-o", "json"])
    assert shown.exit_code == 0, shown.output
    chain = json.loads(shown.output)
    made = chain["producedBy"]
    assert made["job"] == {"name": "prov-2", "uid": uids["prov-2"]}
    assert made["image"]["coordinates"] == second["image"]["coordinates"]
    assert made["image"]["container"] == second["image"]["container"]
    assert made["image"]["digest"] == second["image"]["container"].split("@")[1]
    [middle] = chain["inputs"]
    assert middle["path"] == first["output"]["counts"]
    assert middle["producedBy"]["job"] == {"name": "prov-1", "uid": uids["prov-1"]}
    [upload] = middle["inputs"]
    assert upload["path"] == text
    assert upload["producedBy"] is None  # the user's upload: the chain ends
    with job_bed.store() as store:
        uploaded = store.env(lab.name).require(text.removeprefix("bx://"))
    assert upload["digest"] == "sha256:" + uploaded.digest
    assert middle["producedBy"]["inputs"] == [{"path": text, "digest": upload["digest"]}]

    # The served job's copy names the job that computed it and the one it was served to.
    alias = runner.invoke(app, ["provenance", "bx://jobs/prov-3/output/counts.txt", *where])
    assert alias.exit_code == 0, alias.output
    assert f"made by job prov-2 uid {uids['prov-2']}" in alias.output
    assert "served from the cache to job prov-3" in alias.output
    assert "made by job prov-1" in alias.output
    assert "uploaded" in alias.output
    listing = runner.invoke(app, ["ls", "-l", "-r", "bx://jobs/prov-3/", *where])
    assert listing.exit_code == 0, listing.output
    assert "prov-2 -> prov-3 (cached)" in listing.output
