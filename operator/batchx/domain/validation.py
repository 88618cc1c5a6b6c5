"""Job input and output validation with BatchX semantics: draft-07 plus real-world leniencies.

Real BatchX manifests are looser than draft-07, and the platform honours what authors meant:
- property-level `"required": true` (draft-03 style) makes the property required in its parent;
  `"required": false` is dropped;
- properties without `type` accept any value (plain draft-07);
- `format: "file"` marks a file reference, on a string, on an array (each item is a file) or on
  array items, at any depth; `"type": "file"` is read as `type: string, format: file`;
- draft-04 boolean `exclusiveMinimum`/`exclusiveMaximum` are converted to draft-07 numbers;
- `$schema` is ignored: schemas are always applied as draft-07, and only local `$ref`s
  (`#/definitions/x`) are allowed, so validation never fetches anything.

Other formats (`email`, `uri`, ...) are annotations, as draft-07 says by default. Defaults are
never injected: real images merge their own defaults, and an input must reach them as written.

Limits, so that a hostile document cannot exhaust the operator:
- `MAX_DOCUMENT_BYTES` (256 KiB of compact UTF-8 JSON) and `MAX_DOCUMENT_DEPTH` (64) per
  input or output document;
- `MAX_SCHEMA_DEPTH` (64 levels of JSON nesting) per schema;
- at most `MAX_PROBLEMS` (100) problems reported per document.

Compile a schema once with `compile_schema` (cached by content) and reuse the `DocumentSchema`.

Speed: a document is first checked by `fastjsonschema` code compiled from the same normalised
draft-07 schema (formats off, defaults off); only when that says "invalid" does jsonschema run,
so every problem message and JSON path comes from jsonschema exactly as before. The fast check is
used only where it cannot accept what jsonschema refuses (see `batchx.domain.fastcheck`).
"""

from __future__ import annotations

import copy
import hashlib
import json
import posixpath
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any
from urllib.parse import unquote

from jsonschema import Draft7Validator, FormatChecker, ValidationError
from jsonschema.exceptions import best_match
from jsonschema.validators import extend

from batchx.domain.fastcheck import fast_check, has_dollar_pattern
from batchx.domain.jsonpath import format_path
from batchx.domain.paths import BxPathError, parse_bx_path, validate_relative_path

__all__ = [
    "MAX_DOCUMENT_BYTES",
    "MAX_DOCUMENT_DEPTH",
    "MAX_PROBLEMS",
    "MAX_SCHEMA_DEPTH",
    "OUTPUT_DIR",
    "BatchxValidator",
    "DocumentSchema",
    "FileMode",
    "FileRef",
    "Problem",
    "ValidationResult",
    "check_document_limits",
    "compile_schema",
    "normalise_schema",
    "output_relative_path",
    "problem_from_error",
    "rewrite_files",
]

MAX_DOCUMENT_BYTES = 256 * 1024
MAX_DOCUMENT_DEPTH = 64
MAX_SCHEMA_DEPTH = 64
MAX_PROBLEMS = 100
OUTPUT_DIR = "/batchx/output/"
_MAX_REPR = 120

JsonPointer = tuple[str | int, ...]


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a document, at a JSON path such as `$.reads[2]`."""

    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def under(self, prefix: str) -> Problem:
        """The same problem with its path re-rooted under `prefix` (e.g. `$.schema.input`)."""
        return Problem(prefix + self.path[1:], self.message)


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file reference found in a document.

    `path` is its JSON path, `pointer` the keys/indexes to reach it (for `rewrite_files`),
    `value` the string as written, `target` the normalised location: the bx:// relative path
    for inputs, or the path relative to /batchx/output/ for container outputs.
    """

    path: str
    pointer: JsonPointer
    value: str
    target: str


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """Problems (empty when valid) and the file references found, both in document order."""

    problems: tuple[Problem, ...] = ()
    files: tuple[FileRef, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.problems


class FileMode(StrEnum):
    """What a file reference must look like in the document being validated."""

    BX = "bx"
    """A bx:// path (job inputs, and outputs after upload)."""
    CONTAINER_OUTPUT = "container-output"
    """An absolute path under /batchx/output/ (output.json as the container wrote it)."""


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_REPR else text[: _MAX_REPR - 3] + "..."


# --------------------------------------------------------------------------- schema normalising

# Keywords whose value is a schema, a list of schemas, or a mapping of name -> schema.
_SCHEMA_KEYWORDS = (
    "additionalItems",
    "additionalProperties",
    "contains",
    "propertyNames",
    "if",
    "then",
    "else",
    "not",
)
_SCHEMA_LIST_KEYWORDS = ("allOf", "anyOf", "oneOf")
_SCHEMA_MAP_KEYWORDS = ("properties", "patternProperties", "definitions", "$defs")


@dataclass
class _Normaliser:
    problems: list[Problem] = field(default_factory=list)

    def node(self, schema: Any, path: JsonPointer) -> Any:
        if isinstance(schema, bool):
            return schema
        if not isinstance(schema, Mapping):
            self.problems.append(
                Problem(
                    format_path(path),
                    f"a schema must be an object or boolean, got {_short(schema)}",
                )
            )
            return True
        if len(path) > MAX_SCHEMA_DEPTH:
            self.problems.append(
                Problem(
                    format_path(path), f"schema is nested deeper than {MAX_SCHEMA_DEPTH} levels"
                )
            )
            return True
        out: dict[str, Any] = {}
        for key, value in schema.items():
            if key == "$schema":
                continue  # always draft-07; an unknown dialect must not change the rules
            if key == "required" and isinstance(value, bool):
                continue  # lifted into the parent's `required` list by `_properties`
            out[key] = self._keyword(key, value, path)
        if out.get("type") == "file":
            out["type"] = "string"
            out.setdefault("format", "file")
        for bound in ("Minimum", "Maximum"):
            self._draft4_exclusive(out, bound)
        if isinstance(schema.get("properties"), Mapping):
            self._lift_required(schema["properties"], out)
        return out

    def _keyword(self, key: str, value: Any, path: JsonPointer) -> Any:
        if key in _SCHEMA_KEYWORDS:
            return self.node(value, (*path, key))
        if key in _SCHEMA_LIST_KEYWORDS and isinstance(value, list):
            return [self.node(v, (*path, key, i)) for i, v in enumerate(value)]
        if key == "items":
            if isinstance(value, list):
                return [self.node(v, (*path, key, i)) for i, v in enumerate(value)]
            return self.node(value, (*path, key))
        if key in _SCHEMA_MAP_KEYWORDS and isinstance(value, Mapping):
            return {k: self.node(v, (*path, key, k)) for k, v in value.items()}
        if key == "dependencies" and isinstance(value, Mapping):
            return {
                k: v if isinstance(v, list) else self.node(v, (*path, key, k))
                for k, v in value.items()
            }
        return value

    @staticmethod
    def _draft4_exclusive(out: dict[str, Any], bound: str) -> None:
        flag = out.get(f"exclusive{bound}")
        if not isinstance(flag, bool):
            return
        limit = out.get(bound.lower())
        del out[f"exclusive{bound}"]
        if flag and isinstance(limit, int | float):
            out[f"exclusive{bound}"] = limit
            del out[bound.lower()]

    @staticmethod
    def _lift_required(properties: Mapping[str, Any], out: dict[str, Any]) -> None:
        lifted = [
            name
            for name, sub in properties.items()
            if isinstance(sub, Mapping) and sub.get("required") is True
        ]
        if not lifted:
            return
        existing = out.get("required")
        merged = list(existing) if isinstance(existing, list) else []
        merged.extend(name for name in lifted if name not in merged)
        out["required"] = merged


def normalise_schema(schema: Any) -> tuple[Any, tuple[Problem, ...]]:
    """The draft-07 equivalent of a BatchX schema, and the problems met while converting it."""
    normaliser = _Normaliser()
    result = normaliser.node(schema, ())
    return result, tuple(normaliser.problems)


# ------------------------------------------------------------------------- the validator class


def _required(
    validator: Any, required: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    # Point at the missing property itself ($.reads) rather than at its parent object.
    if not validator.is_type(instance, "object") or not isinstance(required, list):
        return
    for name in required:
        if isinstance(name, str) and name not in instance:
            yield ValidationError("is required but missing", path=(name,))


_DRAFT7_ADDITIONAL = Draft7Validator.VALIDATORS["additionalProperties"]


def _additional_properties(
    validator: Any, additional: Any, instance: Any, schema: Mapping[str, Any]
) -> Iterator[ValidationError]:
    # One error per unexpected property, located at that property.
    if additional is not False or not validator.is_type(instance, "object"):
        yield from _DRAFT7_ADDITIONAL(validator, additional, instance, schema)
        return
    known = schema.get("properties", {})
    patterns = [re.compile(p) for p in schema.get("patternProperties", {})]
    for name in instance:
        if name in known or any(p.search(name) for p in patterns):
            continue
        yield ValidationError(
            "is not allowed by the schema (additionalProperties: false)", path=(name,)
        )


# Draft-07 with errors located at the offending property (see the two keyword functions above).
BatchxValidator = extend(
    Draft7Validator,
    validators={"required": _required, "additionalProperties": _additional_properties},
)
_META_VALIDATOR = Draft7Validator(
    Draft7Validator.META_SCHEMA, format_checker=FormatChecker(formats=["regex"])
)


def problem_from_error(error: ValidationError) -> Problem:
    path = format_path(list(error.absolute_path))
    if error.validator in ("anyOf", "oneOf") and error.context:
        closest = best_match(error.context)
        if closest is not None:
            where = format_path([*error.absolute_path, *closest.path])
            return Problem(
                path, f"{_message(error)}; closest match fails at {where}: {_message(closest)}"
            )
    return Problem(path, _message(error))


def _message(error: ValidationError) -> str:
    message = str(error.message)
    if len(message) > 300:
        message = message[:297] + "..."
    return message


# --------------------------------------------------------------------------- compiled schemas


@dataclass(frozen=True, slots=True)
class _FileNode:
    """Where file references can live: a tree mirroring the schema's data shape."""

    is_file: bool = False
    declared: frozenset[str] = frozenset()  # every name in `properties`, files or not
    properties: Mapping[str, _FileNode] = field(default_factory=dict)
    segments: Mapping[str, str] = field(default_factory=dict)  # name -> `.name`, for paths
    patterns: tuple[tuple[re.Pattern[str], _FileNode], ...] = ()
    additional: _FileNode | None = None
    items: _FileNode | None = None
    tuple_items: tuple[_FileNode, ...] = ()
    branches: tuple[tuple[Any, _FileNode], ...] = ()  # (sub-schema, node): taken if it validates

    @property
    def empty(self) -> bool:
        return not (
            self.is_file
            or self.properties
            or self.patterns
            or self.additional
            or self.items
            or self.tuple_items
            or self.branches
        )


_EMPTY = _FileNode()


class DocumentSchema:
    """A compiled input or output schema: validate documents and find their file references.

    `problems` lists what is wrong with the schema itself (paths relative to the schema root);
    a schema with problems refuses every document with those problems.
    """

    def __init__(self, schema: Any) -> None:
        self.source = schema
        normalised, problems = normalise_schema(schema)
        found = list(problems)
        if not found:
            found.extend(_meta_problems(normalised))
        found.extend(_ref_problems(normalised))
        if not found and isinstance(normalised, Mapping):
            declared = normalised.get("type")
            if (
                declared is not None
                and declared != "object"
                and not (isinstance(declared, list) and "object" in declared)
            ):
                found.append(
                    Problem(
                        "$.type",
                        f"must be 'object' (documents are JSON objects), got {_short(declared)}",
                    )
                )
        self.schema = normalised
        self.problems: tuple[Problem, ...] = tuple(found)
        self._validator = BatchxValidator(normalised if not found else True)
        # The yes/no pre-check; jsonschema still decides (and words) every refusal.
        self._fast = None if found else fast_check(normalised)
        # `pattern` with `$` is `\Z` in fastjsonschema: documents with newlines go to jsonschema.
        self._newlines_matter = self._fast is not None and has_dollar_pattern(normalised)
        self._files = _EMPTY if found else self._file_tree(normalised, 0, set())
        self.file_paths = _file_paths(self._files)

    @property
    def ok(self) -> bool:
        return not self.problems

    # -- file tree ------------------------------------------------------------------------
    def _file_tree(self, schema: Any, depth: int, seen: set[str]) -> _FileNode:
        if not isinstance(schema, Mapping) or depth > MAX_SCHEMA_DEPTH:
            return _EMPTY
        ref = schema.get("$ref")
        if isinstance(ref, str):
            if ref in seen:  # recursive schema: files below the cycle are not tracked
                return _EMPTY
            target = _resolve_local(self.schema, ref)
            return self._file_tree(target, depth + 1, seen | {ref})
        is_file = schema.get("format") == "file"
        props = schema.get("properties")
        properties = {
            name: node
            for name, sub in (props.items() if isinstance(props, Mapping) else ())
            if not (node := self._file_tree(sub, depth + 1, seen)).empty
        }
        pattern_map = schema.get("patternProperties")
        patterns = tuple(
            (re.compile(p), node)
            for p, sub in (pattern_map.items() if isinstance(pattern_map, Mapping) else ())
            if not (node := self._file_tree(sub, depth + 1, seen)).empty
        )
        extra = self._file_tree(schema.get("additionalProperties"), depth + 1, seen)
        raw_items = schema.get("items")
        items = None
        tuple_items: tuple[_FileNode, ...] = ()
        if isinstance(raw_items, list):
            tuple_items = tuple(self._file_tree(s, depth + 1, seen) for s in raw_items)
            if all(n.empty for n in tuple_items):
                tuple_items = ()
        else:
            node = self._file_tree(raw_items, depth + 1, seen)
            items = None if node.empty else node
        branches: list[tuple[Any, _FileNode]] = []
        for keyword in ("allOf", "anyOf", "oneOf"):
            subs = schema.get(keyword)
            for sub in subs if isinstance(subs, list) else ():
                node = self._file_tree(sub, depth + 1, seen)
                if not node.empty:
                    # allOf branches always apply; anyOf/oneOf only when the branch validates.
                    branches.append((True if keyword == "allOf" else sub, node))
        return _FileNode(
            is_file=is_file,
            declared=frozenset(props) if isinstance(props, Mapping) else frozenset(),
            properties=properties,
            segments={name: _segment(name) for name in properties},
            patterns=patterns,
            additional=None if extra.empty else extra,
            items=items,
            tuple_items=tuple_items,
            branches=tuple(branches),
        )

    # -- validation -----------------------------------------------------------------------
    def validate(self, document: Any, mode: FileMode = FileMode.BX) -> ValidationResult:
        """Validate `document`; never raises for any JSON-like value."""
        if self.problems:
            return ValidationResult(
                tuple(
                    Problem("$", f"the schema is unusable: {p}")
                    for p in self.problems[:MAX_PROBLEMS]
                )
            )
        limits, fast_ok = _document_limits(document, self._newlines_matter)
        if limits:
            return ValidationResult(limits)
        try:
            problems: list[Problem] = []
            if not (fast_ok and self._fast_valid(document)):
                for error in self._validator.iter_errors(document):
                    problems.append(problem_from_error(error))
                    if len(problems) >= MAX_PROBLEMS:
                        problems.append(Problem("$", f"more than {MAX_PROBLEMS} problems; stopped"))
                        break
            found: list[tuple[str, JsonPointer, Any]] = []
            if not self._files.empty:
                self._collect(document, self._files, (), "$", found, depth=0)
            typed = {p.path for p in problems}
            checked: list[FileRef] = []
            for path, pointer, value in found:
                target, problem = _check_file(path, value, mode)
                if target is not None:
                    checked.append(FileRef(path, pointer, value, target))
                # A non-string file value already has its type error; one message is enough.
                elif problem is not None and not (path in typed and not isinstance(value, str)):
                    problems.append(problem)
        except RecursionError:
            return ValidationResult((Problem("$", "document or schema nests too deeply"),))
        except Exception as err:  # a validator must never take the operator down
            return ValidationResult(
                (Problem("$", f"could not be validated: {type(err).__name__}: {err}"),)
            )
        problems.sort(key=lambda p: p.path)
        unique = {ref.pointer: ref for ref in checked}  # allOf branches may find a file twice
        return ValidationResult(tuple(problems), tuple(unique.values()))

    def _fast_valid(self, document: Any) -> bool:
        if self._fast is None:
            return False
        try:
            self._fast(document)
        except Exception:  # invalid, or anything unexpected: jsonschema decides
            return False
        return True

    def _collect(
        self,
        value: Any,
        node: _FileNode,
        pointer: JsonPointer,
        path: str,
        out: list[tuple[str, JsonPointer, Any]],
        *,
        depth: int,
    ) -> None:
        # `path` is format_path(pointer), built one segment at a time.
        if depth > MAX_DOCUMENT_DEPTH:
            return
        if node.is_file:
            if isinstance(value, list):
                # `format: file` on the array itself: every item is a file.
                for index, item in enumerate(value):
                    out.append((f"{path}[{index}]", (*pointer, index), item))
            else:
                out.append((path, pointer, value))
        if isinstance(value, dict):
            if node.properties or node.patterns or node.additional is not None:
                for name, child in value.items():
                    sub = node.properties.get(name)
                    if sub is None and name not in node.declared:
                        matched = [n for p, n in node.patterns if p.search(name)]
                        if matched:
                            child_path = path + _segment(name)
                            for pattern_node in matched:
                                self._collect(
                                    child,
                                    pattern_node,
                                    (*pointer, name),
                                    child_path,
                                    out,
                                    depth=depth + 1,
                                )
                            continue
                        sub = node.additional
                    if sub is not None:
                        child_path = path + (node.segments.get(name) or _segment(name))
                        self._collect(
                            child, sub, (*pointer, name), child_path, out, depth=depth + 1
                        )
        elif isinstance(value, list) and (node.items is not None or node.tuple_items):
            for index, item in enumerate(value):
                sub = node.tuple_items[index] if index < len(node.tuple_items) else node.items
                if sub is not None:
                    self._collect(
                        item, sub, (*pointer, index), f"{path}[{index}]", out, depth=depth + 1
                    )
        for branch_schema, branch in node.branches:
            applies = branch_schema is True or self._validator.evolve(
                schema=branch_schema
            ).is_valid(value)
            if applies:
                self._collect(value, branch, pointer, path, out, depth=depth + 1)


def _segment(name: str) -> str:
    """What `format_path` appends for the key `name` (`.name` or `['odd name']`)."""
    return format_path((name,))[1:]


def _file_paths(node: _FileNode, prefix: JsonPointer = ()) -> tuple[str, ...]:
    """JSON paths (with `[*]` for items) where the schema declares files; for manifests."""
    found: list[str] = []
    if node.is_file:
        found.append(format_path(prefix))
    for name, sub in node.properties.items():
        found.extend(_file_paths(sub, (*prefix, name)))
    if node.items is not None:
        found.extend(p.replace("['*']", "[*]") for p in _file_paths(node.items, (*prefix, "*")))
    for sub in [n for _, n in node.patterns] + ([node.additional] if node.additional else []):
        found.extend(p.replace("['*']", ".*") for p in _file_paths(sub, (*prefix, "*")))
    for index, sub in enumerate(node.tuple_items):
        found.extend(_file_paths(sub, (*prefix, index)))
    for _, branch in node.branches:
        found.extend(_file_paths(branch, prefix))
    return tuple(dict.fromkeys(found))


def _check_file(path: str, value: Any, mode: FileMode) -> tuple[str | None, Problem | None]:
    """(normalised target, None) for a good reference, (None, problem) for a bad one."""
    if not isinstance(value, str):
        return None, Problem(path, f"a file reference must be a string, got {_short(value)}")
    try:
        return _target(value, mode), None
    except ValueError as err:
        return None, Problem(path, str(err))


def _target(value: str, mode: FileMode) -> str:
    if mode is FileMode.BX:
        try:
            return parse_bx_path(value, allow_dir=True)
        except BxPathError as err:
            raise ValueError(
                f"file reference {_short(value)} is not a valid bx:// path: {err.reason}"
            ) from None
    return output_relative_path(value)


def output_relative_path(value: str) -> str:
    """The path of a container output file relative to /batchx/output/ (refuses escapes).

    Doubled slashes, `.` and `..` that stay inside are normalised (real images write
    `/batchx/output//x`); the result must also be a valid bx:// relative path.
    """
    if not value.startswith("/"):
        raise ValueError(f"output file {_short(value)} must be an absolute path under {OUTPUT_DIR}")
    normalised = posixpath.normpath(value)
    if normalised.startswith("//"):
        normalised = "/" + normalised.lstrip("/")
    if not normalised.startswith(OUTPUT_DIR) or normalised == OUTPUT_DIR.rstrip("/"):
        raise ValueError(f"output file {_short(value)} is not under {OUTPUT_DIR}")
    relative = normalised[len(OUTPUT_DIR) :]
    try:
        return validate_relative_path(relative)
    except BxPathError as err:
        raise ValueError(f"output file {_short(value)}: {err.reason}") from None


# ------------------------------------------------------------------------------ schema checks


def _meta_problems(schema: Any) -> Iterator[Problem]:
    try:
        errors = list(_META_VALIDATOR.iter_errors(schema))
    except RecursionError:
        yield Problem("$", "schema nests too deeply")
        return
    for error in sorted(errors, key=lambda e: list(map(str, e.absolute_path)))[:MAX_PROBLEMS]:
        found = problem_from_error(error)
        yield Problem(found.path, f"not a valid JSON Schema: {found.message}")


def _iter_refs(schema: Any, path: JsonPointer) -> Iterator[tuple[JsonPointer, str]]:
    if isinstance(schema, Mapping):
        for key, value in schema.items():
            if key == "$ref" and isinstance(value, str):
                yield (*path, key), value
            elif key in ("properties", "patternProperties", "definitions", "$defs", "dependencies"):
                if isinstance(value, Mapping):
                    for name, sub in value.items():
                        yield from _iter_refs(sub, (*path, key, name))
            elif key not in ("enum", "const", "default", "examples"):
                yield from _iter_refs(value, (*path, key))
    elif isinstance(schema, list):
        for index, item in enumerate(schema):
            yield from _iter_refs(item, (*path, index))


def _ref_problems(schema: Any) -> Iterator[Problem]:
    for path, ref in _iter_refs(schema, ()):
        if not ref.startswith("#"):
            yield Problem(
                format_path(path), f"only local references (#/...) are allowed, got {_short(ref)}"
            )
        elif _resolve_local(schema, ref) is _UNRESOLVED:
            yield Problem(format_path(path), f"reference {_short(ref)} points at nothing")


_UNRESOLVED = object()


def _resolve_local(root: Any, ref: str) -> Any:
    if ref in ("#", ""):
        return root
    if not ref.startswith("#/"):
        return _UNRESOLVED
    node = root
    for raw in ref[2:].split("/"):
        part = unquote(raw).replace("~1", "/").replace("~0", "~")
        if isinstance(node, Mapping) and part in node:
            node = node[part]
        elif isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return _UNRESOLVED
    return node


# ------------------------------------------------------------------------------- documents


def check_document_limits(document: Any) -> tuple[Problem, ...]:
    """Problems with a document's shape before any schema: object, depth, size, JSON-ness."""
    return _document_limits(document, False)[0]


def _document_limits(document: Any, newlines_matter: bool) -> tuple[tuple[Problem, ...], bool]:
    """`check_document_limits`, and whether the fast check may be used on the document."""
    if not isinstance(document, dict):
        return (Problem("$", f"must be a JSON object, got {type(document).__name__}"),), False
    depth_problem, fast_ok = _scan(document, newlines_matter)
    if depth_problem is not None:
        return (depth_problem,), False
    try:
        size = len(
            json.dumps(
                document, separators=(",", ":"), ensure_ascii=False, allow_nan=False
            ).encode()
        )
    except (TypeError, ValueError) as err:
        return (Problem("$", f"is not plain JSON: {err}"),), False
    if size > MAX_DOCUMENT_BYTES:
        return (
            Problem("$", f"is {size} bytes of JSON, the limit is {MAX_DOCUMENT_BYTES} (256 KiB)"),
        ), False
    return (), fast_ok


def _scan(document: Any, newlines_matter: bool) -> tuple[Problem | None, bool]:
    """The depth or key problem, if any, and whether the fast check may see the document.

    Not for the fast check: tuples (arrays to fastjsonschema, not to jsonschema) and, when
    `newlines_matter`, keys or strings with a newline (see `has_dollar_pattern`).
    """
    # Iterative (a hostile document must not hit Python's recursion limit) and allocation-light:
    # this runs on every validation, so the path is only rebuilt for the offender.
    fast_ok = True
    stack: list[tuple[Any, int]] = [(document, 0)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children = value.values()
            for key in value:
                if not isinstance(key, str):
                    return Problem("$", f"has a non-string key {_short(key)}"), False
                if newlines_matter and "\n" in key:
                    fast_ok = False
        else:
            children = value
        for child in children:
            if isinstance(child, dict | list):
                if depth >= MAX_DOCUMENT_DEPTH:
                    return Problem("$", f"nests deeper than {MAX_DOCUMENT_DEPTH} levels"), False
                stack.append((child, depth + 1))
            elif isinstance(child, tuple) or (
                newlines_matter and isinstance(child, str) and "\n" in child
            ):
                fast_ok = False
    return None, fast_ok


def rewrite_files(
    document: Any, files: Sequence[FileRef], replace: Callable[[FileRef], Any]
) -> Any:
    """A copy of `document` where each file reference's value is `replace(ref)`.

    Used by the job runner: bx:// -> local staged path for /batchx/input/input.json, and
    /batchx/output/x -> bx://jobs/<job>/output/x for the job's output. The input is not mutated.
    """
    result = copy.deepcopy(document)
    for ref in files:
        if not ref.pointer:
            continue
        parent = result
        for part in ref.pointer[:-1]:
            parent = parent[part]
        parent[ref.pointer[-1]] = replace(ref)
    return result


# --------------------------------------------------------------------------------- caching


_CACHE: dict[str, DocumentSchema] = {}
_CACHE_MAX = 512


def compile_schema(schema: Any) -> DocumentSchema:
    """The compiled `DocumentSchema` for `schema`, shared by every caller with the same content.

    The cache key ignores key order; the compiled schema keeps the author's order (file fields
    are listed as written). Bounded: the oldest entry goes first.
    """
    try:
        canonical = json.dumps(
            schema, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
        )
    except (TypeError, ValueError, RecursionError):
        return DocumentSchema(schema)  # not JSON: compiled uncached, reports its own problems
    key = hashlib.sha256(canonical.encode()).hexdigest()
    compiled = _CACHE.get(key)
    if compiled is None:
        compiled = DocumentSchema(copy.deepcopy(schema))  # the caller may mutate its dict later
        if len(_CACHE) >= _CACHE_MAX:
            _CACHE.pop(next(iter(_CACHE)))
        _CACHE[key] = compiled
    return compiled
