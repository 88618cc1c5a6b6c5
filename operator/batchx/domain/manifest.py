"""The BatchX manifest `io.batchx.manifest-10`: validation and the typed model the operator uses.

Validation is the seed's JSON Schema (`manifest-10.schema.json`, kept verbatim) plus the
semantic checks the schema cannot express, each reported with its JSON path:
- `name` is a valid image name and `version` a strict, monomorphic MAJOR.MINOR.PATCH
  (no leading zeros: `01.0.0` would alias `1.0.0`);
- `schema.input` and `schema.output` are usable JSON Schemas (see validation.py for the
  leniencies honoured), describing JSON objects;
- `errorCodes`/`warningCodes` keys are integers, and no code is both an error and a warning;
- `pipeline.steps` are full coordinates `env@name:version`;
- `pipeline.readInputFiles` and `userFiles` are JSON paths to file fields of the input schema;
- `runtime.minMem` and `runtime.defaultVcpus` are positive.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterator, Mapping
from functools import cache
from importlib import resources
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from batchx.domain.coordinates import (
    Coordinates,
    CoordinatesError,
    check_name,
    parse_coordinates,
)
from batchx.domain.jsonpath import WILDCARD, JsonPathError, format_path, parse_path
from batchx.domain.validation import (
    BatchxValidator,
    DocumentSchema,
    Problem,
    compile_schema,
    problem_from_error,
)
from batchx.domain.versions import VersionError, parse_version

__all__ = [
    "MANIFEST_SCHEMA",
    "CompiledManifest",
    "Manifest",
    "ManifestError",
    "Pipeline",
    "Runtime",
    "check_manifest",
    "compile_manifest",
    "load_manifest",
]

_INTEGER_KEY = re.compile(r"^-?(0|[1-9][0-9]*)$")


@cache
def _manifest_schema() -> dict[str, Any]:
    text = resources.files("batchx.domain").joinpath("manifest-10.schema.json").read_text()
    schema: dict[str, Any] = json.loads(text)
    return schema


MANIFEST_SCHEMA: Mapping[str, Any] = _manifest_schema()
_MANIFEST_VALIDATOR = BatchxValidator(MANIFEST_SCHEMA)


class ManifestError(ValueError):
    """A manifest with problems; `problems` lists every one with its JSON path."""

    def __init__(self, problems: tuple[Problem, ...]) -> None:
        lines = "\n".join(f"  {p}" for p in problems)
        super().__init__(f"invalid manifest ({len(problems)} problems):\n{lines}")
        self.problems = problems


class _Model(BaseModel):
    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="ignore")


class Runtime(_Model):
    """runtime: memory floor (MB), default vCPUs and GPU usage."""

    min_mem: int = Field(alias="minMem", gt=0)
    default_vcpus: int | None = Field(default=None, alias="defaultVcpus", gt=0)
    gpus: Literal["required", "supported"] | None = None


class Pipeline(_Model):
    """pipeline: the images a pipeline orchestrates and the input files its container reads."""

    steps: tuple[str, ...]
    read_input_files: tuple[str, ...] = Field(default=(), alias="readInputFiles")

    @property
    def step_coordinates(self) -> tuple[Coordinates, ...]:
        return tuple(parse_coordinates(s) for s in self.steps)


class Manifest(_Model):
    """A validated io.batchx.manifest-10 (build it with `load_manifest`)."""

    name: str
    version: str
    title: str
    author: str
    change_log: str = Field(alias="changeLog")
    readme: str | None = None
    scm: str | None = None
    input_schema: dict[str, Any]
    output_schema: dict[str, Any]
    error_codes: dict[int, str] = Field(default_factory=dict, alias="errorCodes")
    warning_codes: dict[int, str] = Field(default_factory=dict, alias="warningCodes")
    runtime: Runtime
    pipeline: Pipeline | None = None
    user_files: tuple[str, ...] = Field(default=(), alias="userFiles")

    @property
    def is_pipeline(self) -> bool:
        return self.pipeline is not None

    @property
    def default_vcpus(self) -> int:
        """Job vCPUs when the spec says none: runtime.defaultVcpus, else 1."""
        return self.runtime.default_vcpus or 1

    @property
    def min_mem(self) -> int:
        return self.runtime.min_mem

    @property
    def gpus(self) -> Literal["required", "supported"] | None:
        return self.runtime.gpus

    @property
    def default_gpus(self) -> int:
        """Job GPUs when the spec says none: 1 when required, else 0."""
        return 1 if self.runtime.gpus == "required" else 0

    def coordinates(self, environment: str) -> Coordinates:
        return Coordinates(environment, self.name, parse_version(self.version))

    def message_for(self, exit_code: int) -> str | None:
        """The errorCodes or warningCodes text for an exit code, if listed."""
        return self.warning_codes.get(exit_code) or self.error_codes.get(exit_code)

    def is_warning(self, exit_code: int) -> bool:
        return exit_code in self.warning_codes


class CompiledManifest:
    """A validated manifest with its input and output schemas compiled (reuse it per image)."""

    def __init__(self, manifest: Manifest) -> None:
        self.manifest = manifest
        self.input = compile_schema(manifest.input_schema)
        self.output = compile_schema(manifest.output_schema)


# ------------------------------------------------------------------------------ validation


def check_manifest(document: Any) -> tuple[Problem, ...]:
    """Every problem with a manifest document (empty when it is valid), sorted by path."""
    if not isinstance(document, Mapping):
        return (Problem("$", f"a manifest must be a JSON object, got {type(document).__name__}"),)
    try:
        problems = [problem_from_error(e) for e in _MANIFEST_VALIDATOR.iter_errors(document)]
        problems.extend(_semantic_problems(document))
    except RecursionError:
        return (Problem("$", "the manifest nests too deeply"),)
    unique = dict.fromkeys(problems)
    return tuple(sorted(unique, key=lambda p: p.path))


def load_manifest(document: Any) -> Manifest:
    """The typed manifest, or `ManifestError` listing every problem."""
    problems = check_manifest(document)
    if problems:
        raise ManifestError(problems)
    schema = document["schema"]
    return Manifest.model_validate(
        {
            **document,
            "input_schema": schema["input"],
            "output_schema": schema["output"],
            "errorCodes": {int(k): v for k, v in document.get("errorCodes", {}).items()},
            "warningCodes": {int(k): v for k, v in document.get("warningCodes", {}).items()},
        }
    )


_COMPILED: dict[str, CompiledManifest] = {}
_COMPILED_MAX = 256


def compile_manifest(document: Any) -> CompiledManifest:
    """`load_manifest` + compiled schemas, cached by content (raises `ManifestError`)."""
    key = json.dumps(document, sort_keys=True, separators=(",", ":"), default=repr)
    cached = _COMPILED.get(key)
    if cached is None:
        cached = CompiledManifest(load_manifest(document))
        if len(_COMPILED) >= _COMPILED_MAX:
            _COMPILED.pop(next(iter(_COMPILED)))  # oldest first: dicts keep insertion order
        _COMPILED[key] = cached
    return cached


def _semantic_problems(doc: Mapping[str, Any]) -> Iterator[Problem]:
    yield from _name_and_version(doc)
    input_schema = yield from _io_schemas(doc)
    yield from _codes(doc)
    yield from _runtime(doc)
    pipeline = doc.get("pipeline")
    if isinstance(pipeline, Mapping):
        steps = pipeline.get("steps")
        for index, step in enumerate(steps if isinstance(steps, list) else ()):
            if isinstance(step, str):
                try:
                    parse_coordinates(step)
                except CoordinatesError as err:
                    yield Problem(format_path(("pipeline", "steps", index)), err.reason)
        yield from _file_path_refs(
            pipeline.get("readInputFiles"), ("pipeline", "readInputFiles"), input_schema
        )
    yield from _file_path_refs(doc.get("userFiles"), ("userFiles",), input_schema)


def _name_and_version(doc: Mapping[str, Any]) -> Iterator[Problem]:
    name = doc.get("name")
    if isinstance(name, str) and len(name) <= 60:
        reason = check_name(name)
        if reason:
            yield Problem("$.name", reason)
    version = doc.get("version")
    if isinstance(version, str) and re.match(r"^\d+\.\d+\.\d+$", version):
        try:
            parse_version(version)
        except VersionError as err:
            yield Problem("$.version", str(err))


def _io_schemas(doc: Mapping[str, Any]) -> Generator[Problem, None, DocumentSchema | None]:
    """Yields the problems of schema.input/output; returns the compiled input schema if usable."""
    schemas = doc.get("schema")
    compiled_input: DocumentSchema | None = None
    if not isinstance(schemas, Mapping):
        return compiled_input
    for role in ("input", "output"):
        schema = schemas.get(role)
        if not isinstance(schema, Mapping):
            continue
        compiled = compile_schema(schema)
        for problem in compiled.problems:
            yield problem.under(f"$.schema.{role}")
        if role == "input" and compiled.ok:
            compiled_input = compiled
    return compiled_input


def _codes(doc: Mapping[str, Any]) -> Iterator[Problem]:
    codes: dict[str, set[int]] = {}
    for section in ("errorCodes", "warningCodes"):
        table = doc.get(section)
        if not isinstance(table, Mapping):
            continue
        codes[section] = set()
        for key in table:
            if _INTEGER_KEY.match(key):
                codes[section].add(int(key))
            else:
                yield Problem(
                    format_path((section, key)),
                    f"key {key!r} must be an integer exit code such as '1' or '137'",
                )
    for code in sorted(codes.get("errorCodes", set()) & codes.get("warningCodes", set())):
        yield Problem(
            format_path(("warningCodes", str(code))),
            f"exit code {code} is listed in both errorCodes and warningCodes",
        )


def _runtime(doc: Mapping[str, Any]) -> Iterator[Problem]:
    runtime = doc.get("runtime")
    if not isinstance(runtime, Mapping):
        return
    for key, what in (("minMem", "memory in MB"), ("defaultVcpus", "number of vCPUs")):
        value = runtime.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value <= 0:
            yield Problem(f"$.runtime.{key}", f"must be a positive {what}, got {value}")


def _file_path_refs(
    paths: Any, where: tuple[str, ...], input_schema: DocumentSchema | None
) -> Iterator[Problem]:
    if not isinstance(paths, list):
        return
    for index, text in enumerate(paths):
        if not isinstance(text, str):
            continue
        location = format_path((*where, index))
        try:
            parts = parse_path(text)
        except JsonPathError as err:
            yield Problem(location, str(err))
            continue
        if input_schema is None:
            continue  # the input schema's own problems are reported already
        if not _is_file_field(input_schema, parts):
            declared = ", ".join(input_schema.file_paths) or "none"
            yield Problem(
                location,
                f"{text!r} is not a file field of the input schema (file fields: {declared})",
            )


def _is_file_field(schema: DocumentSchema, parts: tuple[str | int, ...]) -> bool:
    # `$.reads`, `$.reads[*]` and `$.reads[0]` all name the files of an array of files; a path
    # to an object names the file fields inside it (a pipeline may read a whole sample sheet).
    generic = tuple("*" if p == WILDCARD or isinstance(p, int) else p for p in parts)
    wanted = format_path(generic).replace("['*']", "[*]")
    return any(
        declared == wanted or declared.startswith((f"{wanted}[", f"{wanted}."))
        for declared in schema.file_paths
    )
