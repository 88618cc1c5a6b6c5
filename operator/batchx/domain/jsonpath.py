"""JSON paths as BatchX prints and reads them: `$`, `$.a.b`, `$.files[0]`, `$['odd key']`.

Every problem the domain reports names its location with `format_path`; manifests refer to
input fields with paths such as `$.sampleNames` (pipeline.readInputFiles, userFiles), which
`parse_path` reads (`[*]` and `[]` mean "every item").
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable

__all__ = ["WILDCARD", "JsonPathError", "format_path", "parse_path"]

_IDENT = re.compile(r"^[A-Za-z_$][A-Za-z0-9_$-]*$")
WILDCARD = "*"


class JsonPathError(ValueError):
    """A JSON path BatchX cannot read."""


def format_path(parts: Iterable[str | int]) -> str:
    """`$` followed by `.key`, `['odd key']` or `[index]` for each part."""
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _IDENT.match(part):
            out.append(f".{part}")
        else:
            out.append("[" + _quote(part) + "]")
    return "".join(out)


def _quote(key: str) -> str:
    # JSON string escaping, with single quotes as JSONPath writes them.
    body = json.dumps(key, ensure_ascii=False)[1:-1].replace('\\"', '"').replace("'", "\\'")
    return f"'{body}'"


_TOKEN = re.compile(
    r"""\.(?P<ident>[A-Za-z_$][A-Za-z0-9_$-]*)
      | \[(?P<index>[0-9]+)\]
      | \[(?P<star>\*?)\]
      | \.(?P<dotstar>\*)
      | \[(?P<quote>['"])(?P<key>(?:\\.|(?!(?P=quote)).)*)(?P=quote)\]""",
    re.VERBOSE,
)


def parse_path(text: str) -> tuple[str | int, ...]:
    """Parse `$.a.b[0]`, `$['a b']`, `$.list[*]` into parts (`WILDCARD` for `[*]`/`[]`)."""
    if not isinstance(text, str) or not text.startswith("$"):
        raise JsonPathError(f"JSON path {text!r} must start with '$' (e.g. $.reads)")
    parts: list[str | int] = []
    pos = 1
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None:
            raise JsonPathError(f"JSON path {text!r}: cannot read {text[pos:]!r}")
        if match.group("ident") is not None:
            parts.append(match.group("ident"))
        elif match.group("index") is not None:
            parts.append(int(match.group("index")))
        elif match.group("key") is not None:
            parts.append(re.sub(r"\\(.)", r"\1", match.group("key")))
        else:
            parts.append(WILDCARD)
        pos = match.end()
    return tuple(parts)
