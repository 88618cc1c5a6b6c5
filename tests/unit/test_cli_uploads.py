"""`--upload`: which input values are local files to store, and where they go."""

from __future__ import annotations

from pathlib import Path

from batchx.cli.uploads import local_files, replaced, upload_path
from batchx.domain.manifest import compile_manifest
from tests.builders import manifest
from tests.job_builders import FILE_INPUT_SCHEMA

COMPILED = compile_manifest(
    manifest(schema={"input": FILE_INPUT_SCHEMA, "output": {"type": "object"}})
)


def test_only_existing_local_files_at_file_fields_are_picked(tmp_path: Path) -> None:
    reads, more = tmp_path / "r.fq", tmp_path / "m.fq"
    reads.write_text("ACGT")
    more.write_text("TTTT")
    document = {
        "reads": str(reads),
        "more": ["bx://already/there.fq", str(more), str(tmp_path / "missing.fq")],
        "threads": 4,
    }
    assert local_files(COMPILED, document) == [("$.more[1]", more), ("$.reads", reads)]


def test_a_string_that_is_a_file_outside_file_fields_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    assert local_files(COMPILED, {"reads": "bx://r.fq", "threads": str(tmp_path / "x")}) == []


def test_the_upload_path_is_named_by_content(tmp_path: Path) -> None:
    a, b = tmp_path / "a" / "same.txt", tmp_path / "b" / "same.txt"
    for path in (a, b):
        path.parent.mkdir()
        path.write_text("the same words")
    other = tmp_path / "a" / "other.txt"
    other.write_text("other words")
    assert upload_path(a) == upload_path(b)
    assert upload_path(a).startswith("uploads/")
    assert upload_path(a).endswith("/same.txt")
    assert upload_path(other).split("/")[1] != upload_path(a).split("/")[1]


def test_replaced_rewrites_the_values_on_a_copy() -> None:
    document = {"reads": "/tmp/r.fq", "more": ["bx://m.fq", "/tmp/x.fq"]}
    new = replaced(document, {"$.reads": "uploads/1/r.fq", "$.more[1]": "uploads/2/x.fq"})
    assert new == {"reads": "bx://uploads/1/r.fq", "more": ["bx://m.fq", "bx://uploads/2/x.fq"]}
    assert document["reads"] == "/tmp/r.fq"
