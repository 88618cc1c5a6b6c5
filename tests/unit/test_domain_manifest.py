"""io.batchx.manifest-10: seed schema + semantic checks, each problem at its JSON path."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchx.domain.manifest import ManifestError, check_manifest, compile_manifest, load_manifest

BWA: dict[str, Any] = json.loads(
    (Path(__file__).parent.parent / "data" / "manifests" / "bwa-mem.json").read_text()
)


def _with(**changes: Any) -> dict[str, Any]:
    manifest = copy.deepcopy(BWA)
    for dotted, value in changes.items():
        *parents, last = dotted.split("__")
        node = manifest
        for part in parents:
            node = node.setdefault(part, {})
        if value is ...:
            node.pop(last, None)
        else:
            node[last] = value
    return manifest


def test_realistic_manifest_loads_typed() -> None:
    manifest = load_manifest(BWA)
    assert manifest.min_mem == 8000
    assert manifest.default_vcpus == 4
    assert manifest.default_gpus == 0
    assert manifest.error_codes == {2: BWA["errorCodes"]["2"], 3: BWA["errorCodes"]["3"]}
    assert manifest.is_warning(10)
    assert manifest.message_for(10) == "Some reads could not be aligned"
    assert manifest.message_for(99) is None
    assert str(manifest.coordinates("lab")) == "lab@bioinformatics/bwa-mem:2.3.1"
    assert compile_manifest(BWA) is compile_manifest(copy.deepcopy(BWA))


@pytest.mark.parametrize(
    ("changes", "path", "fragment"),
    [
        ({"name": ...}, "$.name", "required"),
        ({"changeLog": ...}, "$.changeLog", "required"),
        ({"name": "n" * 61}, "$.name", "too long"),
        ({"name": "bad name"}, "$.name", "may only contain"),
        ({"version": "1.0"}, "$.version", "does not match"),
        ({"version": "01.0.0"}, "$.version", "leading zero"),
        ({"title": "t" * 101}, "$.title", "too long"),
        ({"sdk": "x"}, "$.sdk", "not allowed"),
        ({"runtime__minMem": 0}, "$.runtime.minMem", "positive"),
        ({"runtime__minMem": "8G"}, "$.runtime.minMem", "not of type 'integer'"),
        ({"runtime__defaultVcpus": 0}, "$.runtime.defaultVcpus", "positive"),
        ({"runtime__gpus": "maybe"}, "$.runtime.gpus", "is not one of"),
        ({"errorCodes__one": "x"}, "$.errorCodes.one", "integer exit code"),
        ({"warningCodes__2": "x"}, "$.warningCodes['2']", "both errorCodes and warningCodes"),
        ({"errorCodes__4": 4}, "$.errorCodes['4']", "not of type 'string'"),
        (
            {"pipeline": {"steps": ["tools/x:1.0.0"]}},
            "$.pipeline.steps[0]",
            "environment is missing",
        ),
        ({"pipeline": {"steps": ["lab@x:^1.0"]}}, "$.pipeline.steps[0]", "three numbers"),
        ({"pipeline": {"steps": []}}, "$.pipeline.steps", "should be non-empty"),
        (
            {"pipeline": {"steps": ["lab@x:1.0.0"], "readInputFiles": ["$.minSeedLength"]}},
            "$.pipeline.readInputFiles[0]",
            "not a file field",
        ),
        ({"userFiles": ["reads"]}, "$.userFiles[0]", "must start with '$'"),
        ({"userFiles": ["$.nothing"]}, "$.userFiles[0]", "not a file field"),
        ({"schema__input": {"type": "array"}}, "$.schema.input.type", "must be 'object'"),
        (
            {"schema__output": {"properties": {"a": {"type": 1}}}},
            "$.schema.output.properties.a.type",
            "JSON Schema",
        ),
        ({"schema__input": "nope"}, "$.schema.input", "not of type 'object'"),
    ],
)
def test_problems_are_reported_at_their_path(
    changes: dict[str, Any], path: str, fragment: str
) -> None:
    problems = check_manifest(_with(**changes))
    assert any(p.path == path and fragment in p.message for p in problems), problems
    with pytest.raises(ManifestError) as info:
        load_manifest(_with(**changes))
    assert info.value.problems == problems


@pytest.mark.parametrize(
    "paths",
    [["$.reference.fasta"], ["$.samples[*].reads"], ["$.samples[0].reads[*]"], ["$.reference"]],
)
def test_file_field_paths_accepted(paths: list[str]) -> None:
    assert (
        check_manifest(
            _with(userFiles=paths, pipeline={"steps": ["lab@a/b:1.0.0"], "readInputFiles": paths})
        )
        == ()
    )


def test_pipeline_and_gpus() -> None:
    manifest = load_manifest(
        _with(pipeline={"steps": ["lab@a/b:1.0.0", "lab@c:2.1.0"]}, runtime__gpus="required")
    )
    assert manifest.is_pipeline
    assert [str(c) for c in manifest.pipeline.step_coordinates] == ["lab@a/b:1.0.0", "lab@c:2.1.0"]  # type: ignore[union-attr]
    assert manifest.default_gpus == 1


def test_not_an_object() -> None:
    assert str(check_manifest([1])[0]) == "$: a manifest must be a JSON object, got list"


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=10),
    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
    max_leaves=15,
)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(sorted(BWA)), _JSON)
def test_check_never_crashes(key: str, value: Any) -> None:
    manifest = copy.deepcopy(BWA)
    manifest[key] = value
    for problem in check_manifest(manifest):
        assert problem.path.startswith("$")
