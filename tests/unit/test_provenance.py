"""Provenance: the record a job's outputs carry in the index, and the chain `trace` walks back
to the uploaded files (local store; the runner's stage-out as the Pod runs it)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from batchx.cli.app import app
from batchx.models import JobImage
from batchx.planning.job_cache import folder_digest
from batchx.planning.job_pod import JobRef, staging_plan
from batchx.planning.job_protocol import StagingPlan
from batchx.planning.provenance import Record, job_record, served_record, trace
from batchx.reconcile.storage import content_digests
from batchx.runner.stage import Dirs, stage_out
from batchx.store import EnvFiles
from batchx.store.fs import Entry, NewPath
from tests.job_builders import FILE_INPUT_SCHEMA, candidate, make_bx_job, request_for

DIGEST = "sha256:" + "ab" * 32
IMAGE = JobImage(coordinates="lab@wordcount:1.0.0", container=f"reg/wordcount@{DIGEST}")
COUNTS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"counts": {"type": "string", "format": "file"}},
}


def run_job(files: EnvFiles, tmp_path: Path, name: str, text: str, **inputs: Any) -> Entry:
    """Stage out one job's `counts.txt` as the runner does, with the plan's record."""
    ref = JobRef(name, "lab", f"uid-{name}")
    image = candidate(schema={"input": FILE_INPUT_SCHEMA, "output": COUNTS_SCHEMA})
    job = make_bx_job("tutorial/hello:1.0.0").input(**inputs).model()
    request = request_for(job, image, name=name)
    digests = content_digests(files, {r.target for r in request.files})
    plan = staging_plan(ref, request, job.spec.input, job_record(ref, IMAGE, digests))
    out = tmp_path / name
    out.mkdir()
    (out / "counts.txt").write_text(text)
    (out / "output.json").write_text(json.dumps({"counts": "/batchx/output/counts.txt"}))
    stage_out(StagingPlan.from_json(json.loads(plan.dumps())), files, Dirs(tmp_path, out))
    entry = files.stat(f"jobs/{name}/output/counts.txt")
    assert entry is not None
    return entry


def chain(files: EnvFiles, path: str) -> dict[str, Any]:
    return trace(path, files.stat, lambda f: files.entries(list(files.find(f)))).to_json()


def test_an_output_records_its_job_image_and_the_digests_of_its_inputs(
    files: EnvFiles, tmp_path: Path
) -> None:
    upload = files.put_bytes("data/a.txt", b"the cat the").entry
    entry = run_job(files, tmp_path, "wc-1", "2 the\n", reads="bx://data/a.txt")
    assert entry.job == "wc-1"
    assert entry.provenance == {
        "v": 1,
        "job": {"name": "wc-1", "uid": "uid-wc-1"},
        "image": {
            "coordinates": "lab@wordcount:1.0.0",
            "container": f"reg/wordcount@{DIGEST}",
            "digest": DIGEST,
        },
        "inputs": [{"path": "bx://data/a.txt", "digest": "sha256:" + upload.digest}],
    }
    assert files.stat("data/a.txt") == upload  # an uploaded file has no record
    assert upload.provenance is None


def test_the_index_entry_keeps_the_record_and_reads_old_entries_without_one() -> None:
    record = {"v": 1, "job": {"name": "j", "uid": "u"}}
    entry = Entry("p", "ff" * 32, 3, "2026-12-02T00:00:00Z", "j", record)
    assert Entry.from_bytes("p", entry.to_bytes()) == entry
    old = b'{"digest":"' + b"ff" * 32 + b'","size":3,"created":"2026-12-02T00:00:00Z","job":null}'
    assert Entry.from_bytes("p", old).provenance is None
    assert b"provenance" not in Entry("p", "ff" * 32, 3, "t").to_bytes()  # uploads: as before


def test_the_chain_goes_back_through_two_jobs_to_the_uploaded_file(
    files: EnvFiles, tmp_path: Path
) -> None:
    files.put_bytes("data/a.txt", b"the cat the")
    first = run_job(files, tmp_path, "wc-1", "2 the\n", reads="bx://data/a.txt")
    run_job(files, tmp_path, "wc-2", "1 2\n", reads="bx://jobs/wc-1/output/counts.txt")
    found = chain(files, "jobs/wc-2/output/counts.txt")
    assert found["producedBy"]["job"] == {"name": "wc-2", "uid": "uid-wc-2"}
    [middle] = found["inputs"]
    assert middle["path"] == "bx://jobs/wc-1/output/counts.txt"
    assert middle["digest"] == "sha256:" + first.digest
    assert middle["producedBy"]["job"]["name"] == "wc-1"
    [upload] = middle["inputs"]
    assert upload["path"] == "bx://data/a.txt"
    assert upload["producedBy"] is None  # uploaded by a user: the chain ends
    assert "inputs" not in upload


def test_a_folder_input_lists_its_files_and_changed_content_is_reported(
    files: EnvFiles, tmp_path: Path
) -> None:
    a = files.put_bytes("set/a.txt", b"A").entry
    b = files.put_bytes("set/b.txt", b"B").entry
    files.put_bytes("one.txt", b"old")
    run_job(files, tmp_path, "wc-1", "x", reads="bx://one.txt", more=["bx://set/"])
    files.delete("one.txt")
    files.put_bytes("one.txt", b"new content")  # removed, then written again: other bytes
    found = chain(files, "jobs/wc-1/output/counts.txt")
    by_path = {n["path"]: n for n in found["inputs"]}
    folder = by_path["bx://set/"]
    assert folder["digest"] == folder_digest([("a.txt", a.digest, 1), ("b.txt", b.digest, 1)])
    assert [n["path"] for n in folder["inputs"]] == ["bx://set/a.txt", "bx://set/b.txt"]
    changed = by_path["bx://one.txt"]
    assert changed["producedBy"] is None
    assert "other content now" in changed["note"]


def test_a_missing_file_ends_the_chain_with_a_note(files: EnvFiles) -> None:
    found = chain(files, "nothing/here.txt")
    assert found["note"] == "no longer in the index"
    assert found["producedBy"] is None


def test_a_served_alias_names_the_computing_job_and_the_served_one() -> None:
    original = job_record(JobRef("wc-1", "lab", "u1"), IMAGE, {"data/a.txt": DIGEST})
    alias = served_record(original, "wc-1", JobRef("wc-2", "lab", "u2"))
    record = Record.of(alias)
    assert record is not None
    assert (record.job, record.job_uid) == ("wc-1", "u1")
    assert (record.served_to, record.served_uid) == ("wc-2", "u2")
    assert record.inputs == (("bx://data/a.txt", DIGEST),)
    assert "servedTo" not in original  # the original's record is not changed


@pytest.mark.parametrize("raw", [None, "text", {"job": "x", "inputs": [{"path": 1}]}])
def test_damaged_records_read_as_far_as_they_go(raw: Any) -> None:
    record = Record.of(raw)
    assert record is None or (record.job is None and record.inputs == ())


# --------------------------------------------------------------------------------- the CLI


def test_bx_provenance_prints_the_tree_and_json_and_ls_shows_the_jobs(
    files: EnvFiles, tmp_path: Path
) -> None:
    files.put_bytes("data/a.txt", b"the cat the")
    run_job(files, tmp_path, "wc-1", "2 the\n", reads="bx://data/a.txt")
    run_job(files, tmp_path, "wc-2", "1 2\n", reads="bx://jobs/wc-1/output/counts.txt")
    original = files.require("jobs/wc-2/output/counts.txt")
    served = served_record(original.provenance, "wc-2", JobRef("wc-3", "lab", "uid-wc-3"))
    files.add([_alias_of(original, "jobs/wc-3/output/counts.txt", served)])
    where = ["-e", "lab", "--store", f"file://{tmp_path / 'store'}"]
    runner = CliRunner(env={"COLUMNS": "250"})  # one line per label, as on a wide terminal

    shown = runner.invoke(app, ["provenance", "bx://jobs/wc-3/output/counts.txt", *where])
    assert shown.exit_code == 0, shown.output
    text = " ".join(shown.output.split())
    assert "made by job wc-2 uid uid-wc-2" in text
    assert "served from the cache to job wc-3" in text
    assert "made by job wc-1" in text
    assert "bx://data/a.txt" in text
    assert "uploaded" in text

    as_json = runner.invoke(
        app, ["provenance", "bx://jobs/wc-2/output/counts.txt", *where, "-o", "json"]
    )
    assert as_json.exit_code == 0, as_json.output
    document = json.loads(as_json.output)
    assert document["producedBy"]["job"]["name"] == "wc-2"
    assert document["inputs"][0]["inputs"][0]["path"] == "bx://data/a.txt"

    listing = runner.invoke(app, ["ls", "-l", "-r", "bx://jobs/", *where])
    assert listing.exit_code == 0, listing.output
    assert "wc-2 -> wc-3 (cached)" in listing.output
    missing = runner.invoke(app, ["provenance", "bx://nothing.txt", *where])
    assert missing.exit_code == 2
    assert "not found" in missing.output


def _alias_of(entry: Entry, path: str, record: dict[str, Any]) -> NewPath:
    return NewPath(path, entry.digest, entry.size, entry.job, record)
