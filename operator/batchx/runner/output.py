"""Reading ``output.json`` and writing a runner report with the standard library only.

The stage-out sidecar of a job whose output schema lists no file uses nothing else: it reads
the output, reports it, and never imports the store, boto3 or pydantic (`batchx.runner.__main__`).
The report's format is `batchx.planning.job_protocol.RunnerReport.to_json`'s (a unit test holds them
together). `parse_output` is shared with the operator: a job on the direct path (no stage-out
container, `batchx.planning.direct_output`) has its output.json judged by the same words.
"""

from __future__ import annotations

import json
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

    Never follows a symbolic link: the directory belongs to the user's program.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except FileNotFoundError:
        return {}
    except OSError as err:
        return f"{_SHOWN}: {err}"
    with os.fdopen(fd, "rb") as source:
        if not stat.S_ISREG(os.fstat(source.fileno()).st_mode):
            return f"{_SHOWN} is not a regular file"
        raw = source.read(MAX_OUTPUT_BYTES + 1)
    if len(raw) > MAX_OUTPUT_BYTES:
        return f"{_SHOWN} is larger than 4 MiB"
    return parse_output(raw)


def parse_output(raw: bytes | str) -> dict[str, Any] | str:
    """The output document in `raw` (output.json's content), or why it is unusable."""
    try:
        document = json.loads(raw)
    except ValueError as err:
        return f"{_SHOWN} is not JSON: {err}"
    if not isinstance(document, dict):
        return f"{_SHOWN} must hold a JSON object, got {type(document).__name__}"
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
