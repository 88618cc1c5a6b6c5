"""`bx manifest check FILE [--input INPUT.json]`: validate a manifest before publishing it.

FILE is the manifest JSON itself, or a JSON/YAML document that wraps it: `{"manifest": {...}}`,
or an Image custom resource (`spec.manifest`), so the YAML you `kubectl apply` can be checked
as is. With `--input`, the input JSON is also validated against the manifest's input schema
(file references must be bx:// paths). Exit 0 with a one-line summary, 1 listing every problem
with its JSON path, 2 when a file cannot be read.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

app = typer.Typer(
    name="manifest", help="Check BatchX manifests (io.batchx.manifest-10).", no_args_is_help=True
)


def load_document(path: Path) -> Any:
    """A JSON (or, for .yaml/.yml, YAML) document; exit 2 with the reason if it cannot be read."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        typer.echo(f"error: cannot read {path}: {err.strerror or err}", err=True)
        raise typer.Exit(2) from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as json_error:
        if path.suffix.lower() not in (".yaml", ".yml"):
            typer.echo(
                f"error: {path} is not valid JSON: line {json_error.lineno} column "
                f"{json_error.colno}: {json_error.msg}",
                err=True,
            )
            raise typer.Exit(2) from None
    import yaml  # noqa: PLC0415  (start-up time: see batchx.cli.common)

    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as err:
        typer.echo(f"error: {path} is not valid YAML: {err}", err=True)
        raise typer.Exit(2) from None


def unwrap(document: Any) -> tuple[Any, str]:
    """The manifest inside `document` and the JSON path prefix of where it was found."""
    if isinstance(document, dict):
        if document.get("kind") == "Image" and isinstance(document.get("spec"), dict):
            return document["spec"].get("manifest"), "$.spec.manifest"
        if set(document) == {"manifest"}:
            return document["manifest"], "$.manifest"
    return document, "$"


@app.command("check")
def check(
    file: Annotated[
        Path, typer.Argument(help='manifest JSON (or {"manifest": ...}, or an Image YAML)')
    ],
    input_file: Annotated[
        Path | None, typer.Option("--input", "-i", help="job input JSON to validate too")
    ] = None,
) -> None:
    """Validate a manifest (and optionally a job input); list every problem with its JSON path."""
    from batchx.domain.manifest import check_manifest, compile_manifest  # noqa: PLC0415

    manifest, prefix = unwrap(load_document(file))
    problems = [p.under(prefix) if prefix != "$" else p for p in check_manifest(manifest)]
    input_problems: list[str] = []
    files = 0
    if not problems and input_file is not None:
        compiled = compile_manifest(manifest)
        result = compiled.input.validate(load_document(input_file))
        input_problems = [f"{input_file}: {p}" for p in result.problems]
        files = len(result.files)
    if problems or input_problems:
        for problem in problems:
            typer.echo(f"{file}: {problem}")
        for line in input_problems:
            typer.echo(line)
        typer.echo(f"{len(problems) + len(input_problems)} problem(s) found", err=True)
        raise typer.Exit(1)
    compiled = compile_manifest(manifest)
    m = compiled.manifest
    summary = (
        f"OK {m.name}:{m.version}: minMem {m.min_mem} MB, {m.default_vcpus} vCPU(s)"
        f"{', GPUs ' + m.gpus if m.gpus else ''}"
        f", {len(compiled.input.file_paths)} input file field(s)"
        f"{', pipeline of ' + str(len(m.pipeline.steps)) + ' step(s)' if m.pipeline else ''}"
    )
    if input_file is not None:
        summary += f"; input valid ({files} file reference(s))"
    typer.echo(summary)
