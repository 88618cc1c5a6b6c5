"""A fast yes/no check of a document against a normalised draft-07 schema (fastjsonschema).

`validation.DocumentSchema` asks this check first; a "yes" is final, a "no" (or any surprise)
hands the document to jsonschema, which writes the problems. So the one thing that matters here
is that the fast check never accepts a document jsonschema (Draft 7, formats as annotations,
BatchX keyword tweaks that only move error locations) would refuse. Where fastjsonschema's
generated code is known to read a schema differently, `fast_blocker` says so and the schema is
validated by jsonschema alone:

- `multipleOf`: fastjsonschema divides floats as decimals (0.3 is a multiple of 0.1 there, not
  in jsonschema) and floats by integers differently;
- `$id`/`id`: they change how `$ref`s resolve, and fastjsonschema would fetch unknown URIs;
- `$ref`s with `%`-escapes (resolved in a different order), or two `$ref` targets whose
  generated function names coincide (`a-b`/`a_b`/`A_B`), which would silently share code;
- sibling property names that fastjsonschema turns into the same variable (`a-b`/`ab`);
- values that are not plain JSON (NaN and infinities are written into the code as names).

Also, `pattern` values with `$` become `\\Z` in fastjsonschema: identical except on strings with
a newline, so `has_dollar_pattern` tells the caller to skip the fast check for such documents.
Tuples are arrays to fastjsonschema but not to jsonschema: the caller skips those too.
Formats are off (annotations in draft-07, and `format: file` is checked separately) and
defaults are never injected (`use_default=False`: the document is not mutated).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable, Iterator, Mapping
from typing import Any, NoReturn

import fastjsonschema
from fastjsonschema.ref_resolver import RefResolver

__all__ = ["FastCheck", "fast_blocker", "fast_check", "has_dollar_pattern"]

FastCheck = Callable[[Any], Any]
"""Returns when the document is valid, raises (any exception) when it is not or may not be."""

_DRAFT_07 = "http://json-schema.org/draft-07/schema#"
_VARIABLE_CHARS = re.compile(r"[^a-zA-Z0-9]")  # what fastjsonschema strips from property names


class _NoRemote(Mapping[str, Callable[[str], Any]]):
    """fastjsonschema's URI handlers: every scheme is 'handled' by refusing (never fetch)."""

    def __getitem__(self, scheme: str) -> Callable[[str], Any]:
        return _refuse

    def __contains__(self, scheme: object) -> bool:
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(())

    def __len__(self) -> int:
        return 0


def _refuse(uri: str) -> NoReturn:
    raise ValueError(f"remote reference {uri!r} is not fetched")


def _nodes(schema: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object anywhere in `schema` (schemas, but also enum values: conservative)."""
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            yield node
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)


def _ref_function_name(ref: str) -> tuple[str, str] | None:
    """(uri, generated function name) of a local `$ref`, as fastjsonschema computes them."""
    try:
        resolver = RefResolver("", {}, store={})
        with resolver.in_scope(ref):
            return resolver.get_uri(), resolver.get_scope_name()
    except Exception:
        return None


def fast_blocker(schema: Any) -> str | None:
    """Why the fast check cannot be trusted on this normalised schema, or None when it can."""
    if not isinstance(schema, dict):
        return "the schema is a boolean"
    try:
        json.dumps(schema, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return "the schema is not plain JSON"
    functions: dict[str, set[str]] = {"validate": {""}}  # the root function
    for node in _nodes(schema):
        if "multipleOf" in node:
            return "multipleOf"
        for key in ("$id", "id"):
            if isinstance(node.get(key), str):
                return key
        ref = node.get("$ref")
        if isinstance(ref, str):
            named = _ref_function_name(ref) if "%" not in ref else None
            if named is None:
                return f"$ref {ref!r}"
            functions.setdefault(named[1], set()).add(named[0])
        props = node.get("properties")
        if isinstance(props, dict):
            variables = [_VARIABLE_CHARS.sub("", name) for name in props]
            if len(set(variables)) != len(variables):
                return "property names that differ only in punctuation"
    if any(len(uris) > 1 for uris in functions.values()):
        return "$ref targets whose generated names collide"
    return None


def has_dollar_pattern(schema: Any) -> bool:
    """Whether some `pattern` keyword contains `$` (see the module docstring)."""
    return any(
        isinstance(node.get("pattern"), str) and "$" in node["pattern"] for node in _nodes(schema)
    )


def fast_check(schema: Any) -> FastCheck | None:
    """The compiled fast check for a normalised draft-07 schema, or None where not trusted."""
    if fast_blocker(schema) is not None:
        return None
    # A copy: fastjsonschema rewrites `$ref`s in place. `$schema` picks its draft-07 rules (the
    # normaliser removed the author's; without one fastjsonschema would use 2019-09).
    definition = {**copy.deepcopy(schema), "$schema": _DRAFT_07}
    try:
        check: FastCheck = fastjsonschema.compile(
            definition,
            handlers=_NoRemote(),
            use_default=False,
            use_formats=False,
            detailed_exceptions=False,
        )
    except Exception:  # a schema fastjsonschema cannot compile is simply not fast-tracked
        return None
    return check
