"""Execution cache planning: the key (pinned), which jobs serve it, and the served status."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta

import pytest

from batchx.domain.validation import FileRef
from batchx.models import JobAdmission, JobResources, JobState, JobStatus
from batchx.planning.job_admission import Request, judge_job
from batchx.planning.job_cache import (
    Candidate,
    cache_key,
    cached_status,
    entries,
    folder_digest,
    image_digest,
    output_paths,
    rewrite_output,
    running_twin,
)
from tests.builders import DIGEST
from tests.job_builders import FILE_INPUT_SCHEMA, POLICY, T0, candidate, make_bx_job

IMAGE = candidate(schema={"input": FILE_INPUT_SCHEMA, "output": {"type": "object"}})
HEX_A, HEX_B = "a" * 64, "b" * 64


def request(**input: object) -> Request:
    verdict = judge_job(
        make_bx_job().input(**input).model(),
        name="job-1",
        namespace="lab",
        created="2026-01-01T00:00:00Z",
        images=[IMAGE],
        policy=POLICY,
    )
    assert isinstance(verdict, Request)
    return verdict


def key_of(req: Request, digests: dict[str, str], **input: object) -> str | None:
    return cache_key(
        container=req.image.container,
        manifest=req.manifest_document,
        input=input,
        files=req.files,
        digests=digests,
    )


def test_the_key_is_pinned() -> None:
    # The definition in docs/caching.md, spelled out and computed once: a change of it (which
    # would make every earlier result miss) must be deliberate, with CACHE_KEY_VERSION raised.
    manifest = {"name": "t/wc", "version": "1.0.0", "cacheVersion": "db-2026"}
    files = (FileRef("$.reads", ("reads",), "bx://data/r1.fq", "data/r1.fq"),)
    key = cache_key(
        container=f"registry.example/t/wc@sha256:{HEX_B}",
        manifest=manifest,
        input={"reads": "bx://data/r1.fq", "threads": 4, "name": "é"},
        files=files,
        digests={"data/r1.fq": "sha256:" + HEX_A},
    )
    manifest_digest = hashlib.sha256(
        b'{"cacheVersion":"db-2026","name":"t/wc","version":"1.0.0"}'
    ).hexdigest()
    document = (
        '{"cacheVersion":"db-2026","image":"sha256:' + HEX_B + '","input":{"name":"é",'
        '"reads":"sha256:' + HEX_A + '","threads":4},"manifest":"sha256:' + manifest_digest
        + '","v":1}'
    )  # fmt: skip
    assert key == "sha256:" + hashlib.sha256(document.encode()).hexdigest()
    assert key == "sha256:85f1f8e95404246a5472b955de87a43ec30ef985b5914301e52fa6a2bec2b43f"


def test_the_same_content_under_another_path_gives_the_same_key() -> None:
    one, two = request(reads="bx://data/r1.fq"), request(reads="bx://copy/elsewhere.fq")
    same = {"data/r1.fq": "sha256:" + HEX_A, "copy/elsewhere.fq": "sha256:" + HEX_A}
    assert key_of(one, same, reads="bx://data/r1.fq") == key_of(
        two, same, reads="bx://copy/elsewhere.fq"
    )


def test_other_content_other_input_or_other_image_change_the_key() -> None:
    req = request(reads="bx://data/r1.fq", threads=1)
    base = key_of(req, {"data/r1.fq": "sha256:" + HEX_A}, reads="bx://data/r1.fq", threads=1)
    other_content = key_of(
        req, {"data/r1.fq": "sha256:" + HEX_B}, reads="bx://data/r1.fq", threads=1
    )
    other_value = key_of(req, {"data/r1.fq": "sha256:" + HEX_A}, reads="bx://data/r1.fq", threads=2)
    moved = replace(req, image=req.image.model_copy(update={"container": "x@sha256:" + HEX_B}))
    other_image = key_of(
        moved, {"data/r1.fq": "sha256:" + HEX_A}, reads="bx://data/r1.fq", threads=1
    )
    bumped = replace(req, manifest_document={**req.manifest_document, "cacheVersion": 2})
    other_version = key_of(
        bumped, {"data/r1.fq": "sha256:" + HEX_A}, reads="bx://data/r1.fq", threads=1
    )
    assert len({base, other_content, other_value, other_image, other_version}) == 5


def test_resources_are_not_part_of_the_key() -> None:
    req = request(reads="bx://data/r1.fq")
    bigger = replace(req, resources=replace(req.resources, vcpus=8, memory_mb=4096))
    digests = {"data/r1.fq": "sha256:" + HEX_A}
    assert key_of(req, digests, reads="bx://data/r1.fq") == key_of(
        bigger, digests, reads="bx://data/r1.fq"
    )


def test_no_key_for_a_tag_or_a_file_without_a_digest() -> None:
    req = request(reads="bx://data/r1.fq")
    tagged = replace(req, image=req.image.model_copy(update={"container": "x/hello:latest"}))
    assert key_of(tagged, {"data/r1.fq": "sha256:" + HEX_A}, reads="bx://data/r1.fq") is None
    assert key_of(req, {}, reads="bx://data/r1.fq") is None
    assert image_digest(f"x@{DIGEST}") == DIGEST
    assert image_digest("x:1.0") is None


def test_a_folder_digest_is_its_listing_in_any_order() -> None:
    listing = [("b.txt", HEX_B, 2), ("a.txt", HEX_A, 1)]
    assert folder_digest(listing) == folder_digest(reversed(listing))
    assert folder_digest(listing).startswith("folder:sha256:")
    assert folder_digest(listing) != folder_digest([("a.txt", HEX_A, 1)])


# ------------------------------------------------------------------------------- entries


def job(
    name: str,
    state: JobState | None,
    key: str | None = "k",
    *,
    cached: bool = False,
    deleting: bool = False,
    minutes: int = 0,
) -> Candidate:
    admission = JobAdmission(
        resources=JobResources(vcpus=1, memory=64, gpus=0, timeout=60),
        rate=1,
        cache_key=key,
        admitted_at=T0,
    )
    status = JobStatus(
        state=state,
        admission=admission,
        cached=cached or None,
        finished_at=T0 + timedelta(minutes=minutes) if state and state.is_terminal else None,
    )
    return Candidate.of(name, status, deleting=deleting)


@pytest.mark.parametrize(
    ("jobs", "served_by"),
    [
        ([job("a", JobState.SUCCEEDED)], ["a"]),
        ([job("a", JobState.WARNING)], ["a"]),
        ([job("a", JobState.FAILED), job("b", JobState.INVALID_OUTPUT)], []),
        ([job("a", JobState.SUCCEEDED, key="other")], []),
        ([job("a", JobState.SUCCEEDED, cached=True)], []),  # the computing job serves, not it
        ([job("a", JobState.SUCCEEDED, deleting=True)], []),
        (
            [job("a", JobState.SUCCEEDED, minutes=1), job("b", JobState.SUCCEEDED, minutes=2)],
            ["b", "a"],
        ),
    ],
)
def test_entries_are_computed_successes_of_the_key_newest_first(
    jobs: list[Candidate], served_by: list[str]
) -> None:
    assert [c.name for c in entries("k", jobs)] == served_by


def test_a_running_twin_is_an_admitted_unfinished_job_of_the_key() -> None:
    assert running_twin("k", [job("q", JobState.QUEUED), job("s", JobState.SUCCEEDED)]) is None
    assert running_twin("k", [job("r2", JobState.RUNNING), job("r1", JobState.STARTING)]) == "r1"
    assert running_twin("k", [job("r", JobState.RUNNING, key="x")]) is None


# ------------------------------------------------------------------------------- serving


OUTPUT = {"counts": "bx://jobs/wc-1/output/counts.txt", "n": 3, "all": ["bx://x/y"]}


def test_output_paths_and_their_aliases() -> None:
    assert output_paths(OUTPUT, "wc-1") == ["jobs/wc-1/output/counts.txt"]
    assert rewrite_output(OUTPUT, "wc-1", "wc-2") == {
        "counts": "bx://jobs/wc-2/output/counts.txt",
        "n": 3,
        "all": ["bx://x/y"],
    }


def test_a_served_job_has_the_originals_result_and_costs_nothing() -> None:
    original = Candidate.of(
        "wc-1",
        JobStatus(
            state=JobState.WARNING, output=OUTPUT, exit_code=3, message="low coverage",
            finished_at=T0,
        ),
        deleting=False,
    )  # fmt: skip
    req = request(reads="bx://data/r1.fq")
    status = cached_status(
        make_bx_job().model(), req, original, key="k", name="wc-2", generation=1, now=T0
    )
    assert (status.state, status.exit_code, status.message) == (JobState.WARNING, 3, "low coverage")
    assert (status.cached, status.cached_from) == (True, "wc-1")
    assert status.output == rewrite_output(OUTPUT, "wc-1", "wc-2")
    assert status.credits is not None
    assert (status.credits.reserved, status.credits.charged) == (0, 0)
    assert status.admission is not None
    assert status.admission.cache_key == "k"
    assert status.pod_name is None
    assert status.started_at is None
    (condition,) = status.conditions
    assert (condition.type, condition.status, condition.reason) == ("Succeeded", "True", "Cached")
    assert "wc-1" in condition.message
