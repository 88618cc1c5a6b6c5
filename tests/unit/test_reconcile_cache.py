"""The cache's steps: input digests and output aliases on a local store, and the decisions of
one admission pass (served, held, run) with the Kubernetes API stubbed (our own boundary)."""

from __future__ import annotations

import asyncio
from typing import Any

from batchx.models import JobState
from batchx.planning.finished import finished_labels
from batchx.planning.job_admission import Request
from batchx.planning.job_cache import cache_key, folder_digest
from batchx.planning.job_pod import JobRef
from batchx.planning.labels import CACHE_KEY
from batchx.reconcile.cache import _alias, serve_or_hold
from batchx.reconcile.context import Context, Outcome
from batchx.reconcile.job_status import JobRead
from batchx.reconcile.storage import content_digests
from batchx.settings import Settings
from batchx.store import Store
from batchx.store.fs import EnvFiles
from tests.job_builders import POLICY, T0, candidate

TWO = JobRef("two", "lab", "uid-two")


def test_digests_of_files_and_folders_come_from_the_index(files: EnvFiles) -> None:
    a = files.put_bytes("data/a.txt", b"alpha").entry
    b = files.put_bytes("data/sub/b.txt", b"beta").entry
    files.put_bytes("copy/a.txt", b"alpha")
    found = content_digests(files, {"data/a.txt", "copy/a.txt", "data/", "missing.txt", "empty/"})
    assert found == {
        "data/a.txt": "sha256:" + a.digest,
        "copy/a.txt": "sha256:" + a.digest,  # the same content, wherever it lies
        "data/": folder_digest([("a.txt", a.digest, 5), ("sub/b.txt", b.digest, 4)]),
    }


def test_outputs_are_aliased_to_the_same_blobs_without_quota(files: EnvFiles) -> None:
    files.put_bytes("jobs/one/output/counts.txt", b"3 the\n", job="one")
    files.put_bytes("jobs/one/output/dir/x.txt", b"x", job="one")
    used = files.usage().bytes
    needed = ["jobs/one/output/counts.txt", "jobs/one/output/dir/"]
    assert _alias(files, "one", TWO, needed)
    assert files.read_bytes("jobs/two/output/counts.txt") == b"3 the\n"
    assert files.read_bytes("jobs/two/output/dir/x.txt") == b"x"
    assert files.usage().bytes == used  # no new bytes: the blobs were the environment's
    alias = files.stat("jobs/two/output/counts.txt")
    assert alias is not None
    assert alias.job == "one"  # the job that computed it...
    assert alias.provenance == {  # ...and the one it was served to (no record: an old entry)
        "v": 1,
        "job": {"name": "one"},
        "servedTo": {"name": "two", "uid": "uid-two"},
    }
    assert _alias(files, "one", TWO, needed)  # again (an operator killed before the write)


def test_nothing_is_aliased_when_an_output_file_or_blob_is_gone(files: EnvFiles) -> None:
    entry = files.put_bytes("jobs/one/output/counts.txt", b"3 the\n").entry
    assert not _alias(files, "one", TWO, ["jobs/one/output/other.txt"])
    store: Store = files.store
    store.backend.delete_blob(entry.digest)
    assert not _alias(files, "one", TWO, ["jobs/one/output/counts.txt"])
    assert files.stat("jobs/two/output/counts.txt") is None


# ----------------------------------------------------------------------- the pass's decisions


class KubeStub:
    """Status writes recorded (and echoed back as the API server would); the labelled
    (finished) jobs answered by their cache-key label, as the API server's label index would."""

    def __init__(self, labelled: list[JobRead] | None = None) -> None:
        self.writes: dict[str, dict[str, Any]] = {}
        self.labelled = labelled or []
        self.selectors: list[str] = []

    async def list_objects(
        self, plural: str, namespace: str, selector: str | None = None
    ) -> list[dict[str, Any]]:
        assert (plural, namespace) == ("jobs", "lab")
        assert selector is not None
        self.selectors.append(selector)
        finished, keys = selector.split(",", 1)
        values = set(keys.removeprefix(f"{CACHE_KEY} in (").removesuffix(")").split(","))
        return [
            j.body
            for j in self.labelled
            if finished in j.meta["labels"] and j.meta["labels"].get(CACHE_KEY) in values
        ]

    async def patch_status(
        self, plural: str, namespace: str, name: str, patch: dict[str, Any], **_: Any
    ) -> dict[str, Any]:
        self.writes[name] = patch
        return {"metadata": meta(name), "spec": {"image": "tutorial/hello"}, "status": patch}


def meta(name: str) -> dict[str, Any]:
    return {"name": name, "namespace": "lab", "uid": f"uid-{name}", "generation": 1}


def body(name: str, *, cache: bool = True, status: dict[str, Any] | None = None) -> JobRead:
    created = {"creationTimestamp": f"2026-01-01T00:00:0{name[-1]}Z"}
    spec = {"image": "tutorial/hello", "input": {"who": "ada"}, "cache": cache}
    return JobRead({"metadata": {**meta(name), **created}, "spec": spec, "status": status})


def done(name: str, key: str, *, state: str = "SUCCEEDED") -> JobRead:
    admission = {
        "resources": {"vcpus": 1, "memory": 64, "gpus": 0, "timeout": 60},
        "rate": 1,
        "cacheKey": key,
        "admittedAt": "2026-01-01T00:00:00Z",
    }
    status = {"state": state, "admission": admission, "exitCode": 0, "output": {"n": 1}}
    return body(name, status=status)


def labelled(job: JobRead) -> JobRead:
    """`job` as the operator labels it once it is final (`finished_labels`)."""
    labels = finished_labels(job.body)
    assert labels is not None
    return JobRead({**job.body, "metadata": {**job.meta, "labels": labels}})


def run_pass(
    waiting: list[JobRead], others: list[JobRead], finished: list[JobRead] | None = None
) -> tuple[set[str], KubeStub]:
    """One pass's cache step: `others` are in the pass's listing (unfinished, or final and not
    labelled yet), `finished` only in the label index (labelled, as a pass lists no such job)."""
    kube = KubeStub([labelled(j) for j in finished or []])
    ctx = Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]
    requests = {}
    for job in waiting:
        verdict = job.judge([candidate()], POLICY)
        assert isinstance(verdict, Request)
        requests[job.name] = (job, verdict)
    asyncio.run(
        serve_or_hold(ctx, waiting + others, requests, namespace="lab", outcome=Outcome(), now=T0)
    )
    return set(requests), kube


def key() -> str:
    """The key every job of these tests has (same image and input)."""
    job = body("k1")
    verdict = job.judge([candidate()], POLICY)
    assert isinstance(verdict, Request)
    value = cache_key(
        container=verdict.image.container,
        manifest=verdict.manifest_document,
        input=job.model.spec.input,
        files=verdict.files,
        digests={},
    )
    assert value is not None
    return value


def test_a_hit_is_served_and_leaves_the_pass() -> None:
    left, kube = run_pass([body("new2")], [done("old1", key())])
    assert left == set()
    written = kube.writes["new2"]
    assert (written["state"], written["cached"], written["cachedFrom"]) == (
        "SUCCEEDED",
        True,
        "old1",
    )


def test_a_labelled_finished_job_is_found_by_its_key_label_not_by_the_listing() -> None:
    left, kube = run_pass(
        [body("new2")], [], [done("old1", key()), done("other", "sha256:" + "1" * 64)]
    )
    assert left == set()
    assert kube.writes["new2"]["cachedFrom"] == "old1"
    assert kube.selectors == [
        f"batchx.io/finished,{CACHE_KEY} in ({key().removeprefix('sha256:')[:63]})"
    ]


def test_a_failed_job_serves_nothing_and_cache_false_always_runs() -> None:
    left, kube = run_pass([body("new2")], [done("old1", key(), state="FAILED")])
    assert (left, kube.writes) == ({"new2"}, {})
    left, kube = run_pass([body("new2", cache=False)], [done("old1", key())])
    assert (left, kube.writes) == ({"new2"}, {})


def test_identical_jobs_of_one_pass_run_the_oldest_the_others_wait_for_it() -> None:
    left, kube = run_pass([body("b2"), body("a1"), body("c3", cache=False)], [])
    assert left == {"a1", "c3"}  # cache: false never waits
    condition = kube.writes["b2"]["conditions"][-1]
    assert (kube.writes["b2"]["state"], condition["reason"]) == ("QUEUED", "WaitingForIdenticalJob")
    assert "waiting for identical job a1" in condition["message"]


def test_a_twin_of_a_running_job_waits_for_it() -> None:
    running = done("run1", key(), state="RUNNING")
    left, kube = run_pass([body("new2")], [running])
    assert left == set()
    assert "identical job run1" in kube.writes["new2"]["conditions"][-1]["message"]


def test_a_finished_job_is_read_for_its_state_and_key_without_a_typed_view() -> None:
    """An admission pass reads every unfinished job of the namespace, and the cache step the
    finished ones of the keys asked for: finished ones stay raw bodies."""
    key = "sha256:" + "0" * 64
    body = {
        "metadata": {"name": "old", "namespace": "lab", "uid": "u"},
        "spec": {"image": "hello:1.0.0", "input": {}},
        "status": {
            "state": "SUCCEEDED",
            "admission": {
                "resources": {"vcpus": 1, "memory": 32, "gpus": 0, "timeout": 300},
                "rate": 0,
                "cacheKey": key,
                "admittedAt": "2026-12-02T00:00:00Z",
            },
        },
    }
    job = JobRead(body)
    assert (job.state, job.cache_key) == (JobState.SUCCEEDED, key)
    assert "model" not in job.__dict__  # no validation was paid for
    assert job.model.status is not None
    assert job.model.status.state is JobState.SUCCEEDED
    assert JobRead({**body, "status": {"state": "SUCCEEDED", "admission": []}}).cache_key is None
