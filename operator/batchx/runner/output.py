"""Reading ``output.json`` and writing a runner report with the standard library only.

The stage-out sidecar of a job whose output schema lists no file uses nothing else: it reads
the output, reports it, and never imports the store, boto3 or pydantic (`batchx.runner.__main__`).
The report's format is `batchx.planning.job_protocol.RunnerReport.to_json`'s (a unit test holds them
together). `parse_output` is shared with the operator: a job on the direct path (no stage-out
container, `batchx.planning.direct_output`) has its output.json judged by the same words.
"""

from __future__ import annotations

import errno
import json
import math
import os
import stat
from pathlib import Path
from typing import Any

__all__ = [
    "MAX_MESSAGE_BYTES",
    "MAX_OUTPUT_BYTES",
    "invalid_report",
    "parse_output",
    "read_output",
    "uploaded_report",
]

# The kubelet keeps at most 4096 bytes of a termination message; leave room for the envelope.
MAX_MESSAGE_BYTES = 3584
MAX_OUTPUT_BYTES = 4 * 1024 * 1024
_SHOWN = "/batchx/output/output.json"


def read_output(path: Path) -> dict[str, Any] | str:
    """The output document (``{}`` when there is none), or why it is unusable.

    Never follows a symbolic link and never waits on a named pipe (opened non-blocking): the
    directory belongs to the user's program. Refuses what the job's status could not hold or
    would hold ambiguously: NaN and Infinity, a key twice in one object.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return {}
    except OSError as err:
        if err.errno == errno.ELOOP:
            return f"{_SHOWN} is a symbolic link; write a regular file"
        return f"{_SHOWN}: {err.strerror}"
    if not stat.S_ISREG(os.fstat(fd).st_mode):  # a folder, a pipe, a device
        os.close(fd)
        return f"{_SHOWN} is not a regular file"
    with os.fdopen(fd, "rb") as source:
        raw = source.read(MAX_OUTPUT_BYTES + 1)
    if len(raw) > MAX_OUTPUT_BYTES:
        return f"{_SHOWN} is larger than 4 MiB"
    return parse_output(raw)


def parse_output(raw: bytes | str) -> dict[str, Any] | str:
    """The output document in `raw` (output.json's content), or why it is unusable."""
    try:
        document = json.loads(
            raw, parse_constant=_no_constant, parse_float=_finite, object_pairs_hook=_unique_keys
        )
    except _Refused as err:
        return f"{_SHOWN} is not usable JSON: {err}"
    except ValueError as err:  # also bytes that are not UTF-8 (UnicodeDecodeError)
        return f"{_SHOWN} is not JSON: {err}"
    except RecursionError:
        return f"{_SHOWN} is nested too deeply to read"
    if not isinstance(document, dict):
        return f"{_SHOWN} must hold a JSON object, got {type(document).__name__}"
    return document


class _Refused(ValueError):
    """Valid to Python's parser, but not a document the job's status can hold."""


def _no_constant(name: str) -> Any:
    # Python reads NaN and Infinity; JSON, the API server and the status cannot hold them.
    raise _Refused(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400 reads as Infinity
        raise _Refused(f"{text[:64]} is too large for a JSON number")
    return value


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    # Parsers disagree on which of two equal keys wins (Python: the last): refuse the ambiguity.
    document: dict[str, Any] = {}
    for key, value in pairs:
        if key in document:
            raise _Refused(f"the key {key[:64]!r} appears twice in one object")
        document[key] = value
    return document


def uploaded_report(output: dict[str, Any]) -> str:
    """The report of an output that lists no file (nothing uploaded), as a termination message."""
    data: dict[str, Any] = {"v": 1, "outcome": "uploaded"}
    if output:
        data["output"] = output
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def invalid_report(message: str) -> str:
    """The report of an unusable output.json."""
    return json.dumps(
        {"v": 1, "outcome": "invalid-output", "message": message[:2048]},
        sort_keys=True,
        separators=(",", ":"),
    )
