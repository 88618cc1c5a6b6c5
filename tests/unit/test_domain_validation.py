"""Input/output validation with BatchX semantics: leniencies, file references, limits."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchx.domain.validation import (
    MAX_DOCUMENT_BYTES,
    DocumentSchema,
    FileMode,
    compile_schema,
    normalise_schema,
    output_relative_path,
    rewrite_files,
)

DATA = Path(__file__).parent.parent / "data"

# Modelled on a real public BatchX image (armadillo): property-level required, untyped
# properties with only minimum/default, file fields, additionalProperties false.
LOOSE_SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "required": True},
        "tumor": {"type": "string", "format": "file", "required": True},
        "index": {"type": "string", "format": "file", "required": False},
        "reads": {"type": "array", "items": {"type": "string", "format": "file"}},
        "lanes": {"type": "array", "format": "file"},
        "panel": {"type": "file"},
        "params": {
            "type": "object",
            "required": False,
            "properties": {
                "coverage": {"default": 30, "minimum": 1},
                "mask": {"format": "file"},
            },
        },
        "samples": {
            "type": "object",
            "additionalProperties": {"type": "string", "format": "file"},
        },
    },
}


def _schema() -> DocumentSchema:
    return compile_schema(LOOSE_SCHEMA)


def test_loose_schema_compiles_and_declares_its_file_fields() -> None:
    schema = _schema()
    assert schema.problems == ()
    assert schema.file_paths == (
        "$.tumor",
        "$.index",
        "$.reads[*]",
        "$.lanes",
        "$.panel",
        "$.params.mask",
        "$.samples.*",
    )


def test_property_level_required_is_honoured() -> None:
    normalised, problems = normalise_schema(LOOSE_SCHEMA)
    assert problems == ()
    assert normalised["required"] == ["name", "tumor"]
    assert "required" not in normalised["properties"]["index"]
    result = _schema().validate({"name": "x"})
    assert [str(p) for p in result.problems] == ["$.tumor: is required but missing"]


def test_files_found_everywhere_with_json_paths() -> None:
    document = {
        "name": "run1",
        "tumor": "bx://bams/tumor.bam",
        "reads": ["bx://r/1.fq", "bx://r/2.fq"],
        "lanes": ["bx://l/1", "bx://l/2"],
        "panel": "bx://panels/",
        "params": {"coverage": 10, "mask": "bx://mask.bed"},
        "samples": {"s1": "bx://s/1.bam"},
    }
    result = _schema().validate(document)
    assert result.ok, result.problems
    assert [(f.path, f.target) for f in result.files] == [
        ("$.tumor", "bams/tumor.bam"),
        ("$.reads[0]", "r/1.fq"),
        ("$.reads[1]", "r/2.fq"),
        ("$.lanes[0]", "l/1"),
        ("$.lanes[1]", "l/2"),
        ("$.panel", "panels/"),
        ("$.params.mask", "mask.bed"),
        ("$.samples.s1", "s/1.bam"),
    ]


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"name": "x", "tumor": "bx://../etc/passwd"}, "$.tumor: file reference"),
        ({"name": "x", "tumor": "bx:///etc/passwd"}, "absolute"),
        ({"name": "x", "tumor": "bx://a//b"}, "segment 1 is empty"),
        ({"name": "x", "tumor": "/etc/passwd"}, "must start with 'bx://'"),
        ({"name": "x", "tumor": "s3://bucket/key"}, "must start with 'bx://'"),
        ({"name": "x", "tumor": "bx://t", "reads": ["bx://ok", "bx://a/./b"]}, "$.reads[1]"),
        ({"name": "x", "tumor": "bx://t", "params": {"mask": "x"}}, "$.params.mask"),
        ({"name": "x", "tumor": 5}, "$.tumor: 5 is not of type 'string'"),
        (
            {"name": "x", "tumor": "bx://t", "params": {"coverage": 0}},
            "$.params.coverage: 0 is less",
        ),
        ({"name": "x", "tumor": "bx://t", "nope": 1}, "$.nope: is not allowed"),
    ],
)
def test_bad_inputs_name_the_json_path(document: dict[str, Any], expected: str) -> None:
    result = _schema().validate(document)
    assert not result.ok
    assert any(expected in str(p) for p in result.problems), result.problems


def test_no_default_injection() -> None:
    document = {"name": "x", "tumor": "bx://t", "params": {}}
    before = json.dumps(document)
    assert _schema().validate(document).ok
    assert json.dumps(document) == before


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ([], "must be a JSON object"),
        ({"a": float("nan")}, "not plain JSON"),
        ({"a": "x" * (MAX_DOCUMENT_BYTES + 1)}, "the limit is 262144"),
        ({"a": {1: 2}}, "non-string key"),
    ],
)
def test_document_limits(document: Any, reason: str) -> None:
    result = compile_schema({"type": "object"}).validate(document)
    assert reason in str(result.problems[0])


def test_deep_document_is_refused_without_recursion() -> None:
    deep: dict[str, Any] = {}
    node = deep
    for _ in range(5000):
        node["a"] = {}
        node = node["a"]
    result = compile_schema({"type": "object"}).validate(deep)
    assert "nests deeper than 64 levels" in str(result.problems[0])


@pytest.mark.parametrize(
    ("schema", "where", "reason"),
    [
        ({"type": "strng"}, "$.type", "not a valid JSON Schema"),
        ({"type": "string"}, "$.type", "must be 'object'"),
        ({"properties": {"a": {"pattern": "(unclosed"}}}, "$.properties.a.pattern", "regex"),
        (
            {"properties": {"a": {"$ref": "https://example.com/s.json"}}},
            "$.properties.a.$ref",
            "local",
        ),
        (
            {"properties": {"a": {"$ref": "#/definitions/missing"}}},
            "$.properties.a.$ref",
            "nothing",
        ),
        ({"properties": {"a": 5}}, "$.properties.a", "object or boolean"),
        ({"properties": {"a": {"minimum": "one"}}}, "$.properties.a.minimum", "not of type"),
    ],
)
def test_unusable_schemas_are_reported(schema: dict[str, Any], where: str, reason: str) -> None:
    compiled = DocumentSchema(schema)
    assert not compiled.ok
    assert any(p.path == where and reason in p.message for p in compiled.problems), (
        compiled.problems
    )
    refused = compiled.validate({})
    assert "the schema is unusable" in str(refused.problems[0])


def test_schema_depth_limit() -> None:
    schema: dict[str, Any] = {"type": "object"}
    node = schema
    for _ in range(100):
        node["properties"] = {"a": {"type": "object"}}
        node = node["properties"]["a"]
    assert any("deeper than 64" in p.message for p in DocumentSchema(schema).problems)


def test_local_refs_and_draft4_exclusive_bounds() -> None:
    schema = {
        "type": "object",
        "definitions": {"file": {"type": "string", "format": "file"}},
        "properties": {
            "ref": {"$ref": "#/definitions/file"},
            "ratio": {"type": "number", "maximum": 1, "exclusiveMaximum": True},
        },
    }
    compiled = DocumentSchema(schema)
    assert compiled.ok
    assert compiled.file_paths == ("$.ref",)
    assert not compiled.validate({"ratio": 1}).ok
    assert compiled.validate({"ratio": 0.5, "ref": "bx://a"}).files[0].target == "a"


def test_recursive_schema_validates_without_crashing() -> None:
    schema = {
        "type": "object",
        "properties": {"child": {"$ref": "#"}, "f": {"type": "string", "format": "file"}},
    }
    compiled = DocumentSchema(schema)
    result = compiled.validate({"f": "bx://top", "child": {"child": {"f": 3}}})
    assert [f.path for f in result.files] == ["$.f"]
    assert any(p.path == "$.child.child.f" for p in result.problems)


def test_any_of_branches_give_the_closest_error() -> None:
    schema = {
        "type": "object",
        "properties": {
            "x": {"anyOf": [{"type": "integer"}, {"type": "string", "maxLength": 2}]},
            "y": {"oneOf": [{"type": "string", "format": "file"}, {"type": "integer"}]},
        },
    }
    compiled = DocumentSchema(schema)
    result = compiled.validate({"x": "long", "y": "bx://y"})
    assert result.problems[0].path == "$.x"
    assert "closest match" in result.problems[0].message
    assert [f.path for f in result.files] == ["$.y"]


# ---------------------------------------------------------------------------- outputs

OUTPUT_SCHEMA = {
    "type": "object",
    "properties": {
        "vcf": {"type": "string", "format": "file", "required": True},
        "minibams": {"type": "array", "items": {"type": "string", "format": "file"}},
        "report": {"format": "file"},
    },
}


def test_container_outputs_are_normalised_under_batchx_output() -> None:
    compiled = DocumentSchema(OUTPUT_SCHEMA)
    output = {
        "vcf": "/batchx/output//proj/proj_final.vcf",
        "minibams": ["/batchx/output/bams/a.bam", "/batchx/output/./bams/b.bam"],
        "report": "/batchx/output/report",
    }
    result = compiled.validate(output, FileMode.CONTAINER_OUTPUT)
    assert result.ok, result.problems
    assert [f.target for f in result.files] == [
        "proj/proj_final.vcf",
        "bams/a.bam",
        "bams/b.bam",
        "report",
    ]
    uploaded = rewrite_files(output, result.files, lambda f: f"bx://jobs/j1/output/{f.target}")
    assert uploaded["minibams"][1] == "bx://jobs/j1/output/bams/b.bam"
    assert output["minibams"][1] == "/batchx/output/./bams/b.bam"  # not mutated
    assert compiled.validate(uploaded).ok


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("/batchx/output/../../etc/passwd", "not under /batchx/output/"),
        ("/batchx/outputs/x", "not under /batchx/output/"),
        ("/batchx/output", "not under /batchx/output/"),
        ("/batchx/output/", "not under /batchx/output/"),
        ("relative/file.txt", "absolute path"),
        ("/batchx/output/a\nb", "control character"),
    ],
)
def test_bad_output_paths(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        output_relative_path(value)
    result = DocumentSchema(OUTPUT_SCHEMA).validate({"vcf": value}, FileMode.CONTAINER_OUTPUT)
    assert result.problems[0].path == "$.vcf"


def test_compiled_schemas_are_shared_by_content() -> None:
    first = compile_schema({"type": "object", "properties": {"a": {"type": "string"}}})
    second = compile_schema({"properties": {"a": {"type": "string"}}, "type": "object"})
    assert first is second


def test_realistic_fixture_input_is_valid() -> None:
    manifest = json.loads((DATA / "manifests" / "bwa-mem.json").read_text())
    document = json.loads((DATA / "inputs" / "bwa-mem.input.json").read_text())
    result = compile_schema(manifest["schema"]["input"]).validate(document)
    assert result.ok, result.problems
    assert len(result.files) == 7


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=200, deadline=None)
@given(_JSON)
def test_validators_never_crash_on_arbitrary_documents(document: Any) -> None:
    for mode in FileMode:
        result = _schema().validate(document, mode)
        assert all(p.path.startswith("$") for p in result.problems)


@settings(max_examples=200, deadline=None)
@given(
    st.dictionaries(
        st.sampled_from(
            [
                "type",
                "properties",
                "items",
                "required",
                "format",
                "$ref",
                "anyOf",
                "minimum",
                "pattern",
            ]
        ),
        _JSON,
        max_size=4,
    )
)
def test_schema_compilation_never_crashes_on_arbitrary_json(schema: dict[str, Any]) -> None:
    compiled = DocumentSchema(schema)
    result = compiled.validate({"a": ["bx://x"]})
    assert isinstance(result.ok, bool)
