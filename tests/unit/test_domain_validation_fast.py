"""The fastjsonschema pre-check never changes a verdict or a message (fastcheck.py)."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchx.domain.fastcheck import fast_blocker
from batchx.domain.validation import (
    DocumentSchema,
    FileMode,
    ValidationResult,
    _document_limits,
)

DATA = Path(__file__).parent.parent / "data"
MANIFESTS = sorted((DATA / "manifests").glob("*.json"))

LOOSE: dict[str, Any] = {  # property-level required, untyped properties, files everywhere
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "name": {"type": "string", "required": True, "pattern": "^[a-z]+$"},
        "tumor": {"type": "file", "required": True},
        "lanes": {"type": "array", "format": "file"},
        "params": {
            "type": "object",
            "properties": {"coverage": {"default": 30, "minimum": 1}, "mask": {"format": "file"}},
        },
        "mode": {"enum": ["a", 1, True, None, [1], {"k": 1}]},
        "ratio": {"type": "number", "exclusiveMinimum": True, "minimum": 0},
        "tags": {"type": "array", "uniqueItems": True, "items": {"type": ["string", "integer"]}},
        "choice": {"oneOf": [{"type": "integer"}, {"type": "string", "format": "file"}]},
        "extra": {"$ref": "#/definitions/extra"},
    },
    "definitions": {"extra": {"type": "object", "propertyNames": {"maxLength": 3}}},
}


def _schemas() -> list[tuple[str, Any, Any]]:
    found: list[tuple[str, Any, Any]] = [
        ("loose", LOOSE, {"name": "x", "tumor": "bx://t.bam", "lanes": ["bx://a", "bx://b"]})
    ]
    for path in MANIFESTS:
        manifest = json.loads(path.read_text())
        sample = DATA / "inputs" / f"{path.stem}.input.json"
        document = json.loads(sample.read_text()) if sample.exists() else {}
        found.append((f"{path.stem}.input", manifest["schema"]["input"], document))
        found.append((f"{path.stem}.output", manifest["schema"]["output"], {}))
    return found


SCHEMAS = _schemas()


def _pair(schema: Any) -> tuple[DocumentSchema, DocumentSchema]:
    """(as used: fast pre-check on, reference: jsonschema only)."""
    fast, slow = DocumentSchema(copy.deepcopy(schema)), DocumentSchema(copy.deepcopy(schema))
    slow._fast = None
    return fast, slow


def _same(fast: DocumentSchema, slow: DocumentSchema, document: Any) -> ValidationResult:
    before = copy.deepcopy(document)
    for mode in FileMode:
        got, want = fast.validate(document, mode), slow.validate(document, mode)
        assert got == want
    assert document == before  # defaults are never injected
    limits, fast_ok = _document_limits(document, fast._newlines_matter)
    if fast._fast is not None and fast_ok and not limits:  # where the pre-check is asked
        verdict = fast._fast_valid(document)
        assert verdict == (not list(slow._validator.iter_errors(document)))
    return got


@pytest.mark.parametrize(("name", "schema", "document"), SCHEMAS, ids=[s[0] for s in SCHEMAS])
def test_realistic_schemas_take_the_fast_path(name: str, schema: Any, document: Any) -> None:
    fast, _ = _pair(schema)
    assert fast.ok
    assert fast_blocker(fast.schema) is None
    assert fast._fast is not None


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.sampled_from(["", "a", "x\n", "bx://a/b", "bx://../x", "/batchx/output/o", "bam", "cram"])
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=12,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for key, child in value.items():
            found.extend(_paths(child, (*prefix, key)))
    elif isinstance(value, list):
        for index, child in enumerate(value):
            found.extend(_paths(child, (*prefix, index)))
    return found


@st.composite
def _cases(draw: st.DrawFn) -> tuple[Any, Any]:
    """A realistic schema and a document near its sample: random values put at random places."""
    _, schema, sample = draw(st.sampled_from(SCHEMAS))
    document = copy.deepcopy(sample)
    for _ in range(draw(st.integers(0, 3))):
        path = draw(st.sampled_from(_paths(document)))
        value = draw(json_values)
        if not path:
            if isinstance(value, dict):
                document.update(value)
            continue
        parent = document
        for part in path[:-1]:
            parent = parent[part]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent[path[-1]] = value
    if draw(st.booleans()):  # also new keys, known or not
        key = draw(st.sampled_from([*schema.get("properties", {}), "zz"]))
        document[key] = draw(json_values)
    return schema, document


_COMPILED: dict[str, tuple[DocumentSchema, DocumentSchema]] = {}


@given(_cases())
@settings(max_examples=300, deadline=None)
def test_fast_and_slow_paths_agree_on_random_documents(case: tuple[Any, Any]) -> None:
    schema, document = case
    key = json.dumps(schema, sort_keys=True)
    if key not in _COMPILED:
        _COMPILED[key] = _pair(schema)
    _same(*_COMPILED[key], document)


# Where fastjsonschema alone would read a schema differently from jsonschema: same result anyway.
EDGES: list[tuple[str, Any, Any, bool]] = [
    ("float multipleOf", {"properties": {"x": {"multipleOf": 0.1}}}, {"x": 0.3}, False),
    ("int multipleOf", {"properties": {"x": {"multipleOf": 3}}}, {"x": 1e308}, False),
    ("enum bool vs int", {"properties": {"x": {"enum": [1]}}}, {"x": True}, False),
    ("const bool vs int", {"properties": {"x": {"const": 0}}}, {"x": False}, False),
    ("integer float", {"properties": {"x": {"type": "integer"}}}, {"x": 1.0}, True),
    ("tuple", {"properties": {"x": {"type": "array"}}}, {"x": (1, 2)}, False),
    ("tuple in array", {"properties": {"x": {"type": "array"}}}, {"x": [(1,)]}, True),
    ("dollar newline", {"properties": {"x": {"pattern": "^a$"}}}, {"x": "a\n"}, True),
    (
        "dollar in lookahead",
        {"properties": {"x": {"type": "string", "pattern": "^(?!abc$)"}}},
        {"x": "abc\n"},
        False,
    ),
    ("dollar key", {"propertyNames": {"pattern": "^a$"}}, {"a\n": 1}, True),
    ("format not checked", {"properties": {"x": {"format": "email"}}}, {"x": "no"}, True),
    ("default not injected", {"properties": {"x": {"default": 1}}}, {}, True),
    ("unique 1 and 1.0", {"properties": {"x": {"uniqueItems": True}}}, {"x": [1, 1.0]}, False),
    ("unique 1 and true", {"properties": {"x": {"uniqueItems": True}}}, {"x": [1, True]}, True),
    (
        "ref names collide",
        {
            "properties": {"x": {"$ref": "#/definitions/a-b"}, "y": {"$ref": "#/definitions/a_b"}},
            "definitions": {"a-b": {"type": "string"}, "a_b": {"type": "integer"}},
        },
        {"x": 5, "y": 5},
        False,
    ),
    (
        "property names collide",
        {"properties": {"a-b": {"type": "string"}, "ab": {"type": "integer"}}},
        {"a-b": "s", "ab": 1},
        True,
    ),
    (
        "$id",
        {"$id": "http://example.com/s", "properties": {"x": {"type": "string"}}},
        {"x": 1},
        False,
    ),
    (
        "ref siblings ignored",
        {
            "definitions": {"d": {}},
            "properties": {"x": {"$ref": "#/definitions/d", "type": "string"}},
        },
        {"x": 1},
        True,
    ),
    (
        "recursive ref",
        {"properties": {"n": {"$ref": "#"}, "v": {"type": "integer"}}},
        {"n": {"n": {"v": "s"}}},
        False,
    ),
    (
        "anyOf files",
        {"properties": {"f": {"anyOf": [{"type": "integer"}, {"format": "file"}]}}},
        {"f": "bx://../x"},
        False,
    ),
]


@pytest.mark.parametrize(("name", "schema", "document", "ok"), EDGES, ids=[e[0] for e in EDGES])
def test_edge_cases_match_jsonschema(name: str, schema: Any, document: Any, ok: bool) -> None:
    fast, slow = _pair({"type": "object", **schema})
    assert fast.ok, fast.problems
    assert _same(fast, slow, document).ok is ok


@pytest.mark.parametrize(
    ("schema", "blocked"),
    [
        ({"properties": {"x": {"multipleOf": 2}}}, True),
        ({"properties": {"x": {"$id": "#x"}}}, True),
        ({"properties": {"id": {"type": "string"}}}, False),  # a property called id is fine
        ({"properties": {"x": {"$ref": "#/definitions/a%20b"}}, "definitions": {"a b": {}}}, True),
        ({"properties": {"a-b": {}, "ab": {}}}, True),
        (
            {"properties": {"x": {"$ref": "#/definitions/A"}}, "definitions": {"A": {}, "a": {}}},
            False,
        ),
        (True, True),
    ],
)
def test_fast_blocker(schema: Any, blocked: bool) -> None:
    assert (fast_blocker(schema) is not None) is blocked
