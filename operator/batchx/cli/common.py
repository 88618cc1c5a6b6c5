"""What every cluster verb of `bx` shares: options, exit codes, error reporting, `-o` output.

Start-up stays fast (`bx --help` well under 0.3 s) because nothing here, nor in the verb modules,
imports `kubernetes`, `rich`, `pydantic` or `yaml` at module level: they are imported inside the
functions that need them, once a command actually runs.

Exit codes (stable; documented in the README):

====  ========================================================================================
0     done; for `bx run`, the job ended SUCCEEDED or WARNING
1     the job ended otherwise (FAILED, OUT_OF_MEMORY, INVALID_OUTPUT, CANCELLED), or the
      operator refused an imported Image
2     bad input, refused before anything was created (usage, JSON, schema, unknown image,
      resources, manifest, no environment)
3     the cluster said no or could not be reached (forbidden, not found, conflict, network)
4     `--wait-timeout` passed before the job finished (it keeps running)
130   interrupted (Ctrl-C); the job keeps running unless `--cancel-on-interrupt`
====  ========================================================================================
"""

from __future__ import annotations

import enum
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console

    from batchx.client import Client

EXIT_OK = 0
EXIT_JOB_FAILED = 1
EXIT_REFUSED = 2
EXIT_API = 3
EXIT_TIMEOUT = 4
EXIT_INTERRUPTED = 130


class Format(enum.StrEnum):
    """`-o`: a human table (default) or a document a script parses."""

    TABLE = "table"
    JSON = "json"
    YAML = "yaml"


EnvOption = Annotated[
    str | None,
    typer.Option(
        "--env",
        "-e",
        envvar="BATCHX_ENV",
        help="Environment (default $BATCHX_ENV, else the kubeconfig context's namespace).",
        show_default=False,
    ),
]
OutputOption = Annotated[
    Format, typer.Option("--output", "-o", help="Output format.", case_sensitive=False)
]

_CONSOLES: dict[bool, Console] = {}


def console(stderr: bool = False) -> Console:
    """A rich console on stdout or stderr (colours only on a terminal, as rich decides)."""
    if stderr not in _CONSOLES:
        from rich.console import Console  # noqa: PLC0415  (start-up time: see the docstring)

        # soft_wrap: a long message stays one line (scripts grep it), whatever the width.
        _CONSOLES[stderr] = Console(stderr=stderr, highlight=False, soft_wrap=True)
    return _CONSOLES[stderr]


def fail(message: str, code: int = EXIT_REFUSED) -> NoReturn:
    console(stderr=True).print(f"[red]error:[/red] {_escape(message)}")
    raise typer.Exit(code)


def note(message: str) -> None:
    """A line for the human on stderr (stdout stays for what a script reads)."""
    console(stderr=True).print(_escape(message))


def _escape(text: str) -> str:
    from rich.markup import escape  # noqa: PLC0415

    return escape(text)


@contextmanager
def session(env: str | None) -> Iterator[Client]:
    """A `Client` for the command; `ClientError`s become a message and their exit code."""
    from batchx.client import (  # noqa: PLC0415
        ApiError,
        Client,
        InvalidManifest,
        Refused,
        WaitTimeout,
    )

    try:
        with Client(env=env) as bx:
            yield bx
    except InvalidManifest as err:
        for problem in err.problems:
            typer.echo(f"{err.source}: {problem}", err=True)
        fail(f"{len(err.problems)} problem(s) found; nothing was created", EXIT_REFUSED)
    except Refused as err:
        fail(f"{err}  [{err.reason}; nothing was created]", EXIT_REFUSED)
    except ApiError as err:
        code = EXIT_REFUSED if err.status == 422 else EXIT_API  # 422: the API server's schema
        fail(err.message, code)
    except WaitTimeout as err:
        fail(str(err), EXIT_TIMEOUT)


def emit(document: Any, fmt: Format) -> None:
    """A JSON or YAML document on stdout."""
    if fmt is Format.YAML:
        import yaml  # noqa: PLC0415

        typer.echo(yaml.safe_dump(document, sort_keys=False, allow_unicode=True), nl=False)
    else:
        typer.echo(json.dumps(document, indent=2, ensure_ascii=False))


def read_input(value: str) -> dict[str, Any]:
    """INPUT as given: JSON text, `@file.json`, or `-` for stdin; exit 2 unless an object."""
    where = "the input"
    if value == "-":
        text, where = sys.stdin.read(), "stdin"
    elif value.startswith("@"):
        path = Path(value[1:])
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            fail(f"cannot read {path}: {err.strerror or err}")
        where = str(path)
    else:
        text = value
    try:
        document = json.loads(text)
    except json.JSONDecodeError as err:
        fail(f"{where} is not valid JSON: line {err.lineno} column {err.colno}: {err.msg}")
    if not isinstance(document, dict):
        fail(f"{where} must be a JSON object, got {type(document).__name__}")
    return document


def table(headers: list[str], rows: list[list[str]]) -> None:
    """A plain table on stdout (no box: it copies and greps well)."""
    from rich.table import Table  # noqa: PLC0415

    grid = Table(box=None, pad_edge=False, header_style="bold")
    for header in headers:
        grid.add_column(header, overflow="fold")
    for row in rows:
        grid.add_row(*(_escape(cell) for cell in row))
    console().print(grid)


def ago(stamp: str | None) -> str:
    """`2026-01-01T12:00:00Z` -> `5m` (how long ago), or '' when absent."""
    if not stamp:
        return ""
    from datetime import UTC, datetime  # noqa: PLC0415

    try:
        then = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return duration((datetime.now(UTC) - then).total_seconds())


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    if seconds < 172800:
        return f"{seconds // 3600}h"
    return f"{seconds // 86400}d"
