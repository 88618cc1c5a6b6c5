"""`bx run/submit --upload`: local files given where the input schema says `format: file`.

A BatchX input names files as `bx://` paths. With `--upload`, a value at a file field that is
instead an existing local file is stored first and replaced by its path, so
`bx run --upload examples/wordcount '{"text": "notes.txt"}'` just works. The path is
content-addressed (`bx://uploads/<first 16 hex of the sha256>/<file name>`): uploading the same
content again writes nothing and reuses the path, as `bx cp` deduplicates, and paths stay
immutable. Which values are file fields comes from the image's manifest (the same validation
the operator runs); anything else in the input is left alone.

Uploads go to the store as `bx cp` reaches it (`--store`/`BATCHX_STORE` and its credentials).
"""

from __future__ import annotations

import copy
import hashlib
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from batchx.domain.jsonpath import JsonPathError, parse_path
from batchx.domain.manifest import CompiledManifest
from batchx.domain.paths import BX_SCHEME
from batchx.domain.validation import FileMode

UPLOAD_PREFIX = "uploads"
_CHUNK = 1 << 20


def local_files(compiled: CompiledManifest, document: Mapping[str, Any]) -> list[tuple[str, Path]]:
    """(JSON path, local file) of each file field whose value is an existing local file."""
    fields = set(compiled.input.file_paths)  # `$.reads`, `$.more[*]`
    found = []
    for problem in compiled.input.validate(document, FileMode.BX).problems:
        if re.sub(r"\[[0-9]+\]", "[*]", problem.path) not in fields:
            continue  # not a file field (a string where a number belongs, say)
        value = _at(document, problem.path)
        if isinstance(value, str) and not value.startswith(BX_SCHEME) and Path(value).is_file():
            found.append((problem.path, Path(value)))
    return sorted(found)


def upload_path(local: Path) -> str:
    """`uploads/<16 hex of the content's sha256>/<name>`: the same content, the same path."""
    digest = hashlib.sha256()
    with local.open("rb") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return f"{UPLOAD_PREFIX}/{digest.hexdigest()[:16]}/{local.name}"


def replaced(document: Mapping[str, Any], paths: Mapping[str, str]) -> dict[str, Any]:
    """A copy of `document` with the value at each JSON path replaced by `bx://<path>`."""
    out: dict[str, Any] = copy.deepcopy(dict(document))
    for json_path, bx_path in paths.items():
        *parents, last = parse_path(json_path)
        node: Any = out
        for part in parents:
            node = node[part]
        node[last] = BX_SCHEME + bx_path
    return out


def _at(document: Any, json_path: str) -> Any:
    try:
        parts = parse_path(json_path)
    except JsonPathError:
        return None
    node = document
    for part in parts:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return None
    return node
