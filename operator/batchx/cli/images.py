"""`bx images` and `bx import`: an environment's image repository from the command line.

`bx images` is BatchX's default listing (the latest version of each major of each base name);
`--all` shows every version, refused ones too, with the operator's reason. `bx import` reads an
image's manifest from inside the image (registry or OCI archive), validates it with the same
messages as `bx manifest check`, and creates the Image pinned by digest.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from batchx.cli.common import (
    EXIT_JOB_FAILED,
    EnvOption,
    Format,
    OutputOption,
    emit,
    fail,
    note,
    session,
    table,
)


def register(app: typer.Typer) -> None:
    app.command("images")(images)
    app.command("import")(import_image)


def images(
    all: Annotated[
        bool, typer.Option("--all", "-a", help="Every version, not only the latest per major.")
    ] = False,
    output: OutputOption = Format.TABLE,
    env: EnvOption = None,
) -> None:
    """List the environment's images.

    Example: bx images -e lab --all -o json | jq '.[].coordinates'
    """
    with session(env) as bx:
        found = bx.images(all=all)
    if output is not Format.TABLE:
        emit([i.to_json() for i in found], output)
        return
    rows = []
    for info in found:
        coordinates = str(info.coordinates) if info.coordinates else f"({info.name})"
        ready = "yes" if info.ready == "True" else f"no: {info.reason} {info.message}".strip()
        flags = ",".join(f for f, on in (("public", info.public), ("latest", info.latest)) if on)
        rows.append([coordinates, info.container, flags, ready])
    headers = ["COORDINATES", "CONTAINER IMAGE", "FLAGS", "READY"]
    table(headers if all else headers[:3], rows if all else [r[:3] for r in rows])


def import_image(
    reference: Annotated[
        str,
        typer.Argument(
            metavar="IMAGE-REF",
            help="Registry reference (batchx.local/examples/wordcount:1.0.0), "
            "oci-archive:PATH, or PATH.tar.",
        ),
    ],
    *,
    public: Annotated[
        bool, typer.Option("--public", help="Other environments may run it.")
    ] = False,
    manifest: Annotated[
        Path | None,
        typer.Option("--manifest", help="Use this manifest file instead of the image's own."),
    ] = None,
    registry_url: Annotated[
        str | None,
        typer.Option(
            "--registry-url",
            envvar="BATCHX_REGISTRY_URL",
            help="Base URL of the reference's registry (default: batchx.local is "
            "http://127.0.0.1:5000; others https://HOST).",
            show_default=False,
        ),
    ] = None,
    wait: Annotated[
        bool, typer.Option("--wait/--no-wait", help="Wait for the operator's verdict.")
    ] = True,
    output: OutputOption = Format.TABLE,
    env: EnvOption = None,
) -> None:
    """Import an image that carries its manifest (/batchx/manifest/manifest.json).

    Example: bx import -e lab batchx.local/examples/wordcount:1.0.0
    """
    override = _load_manifest(manifest) if manifest is not None else None
    with session(env) as bx:
        info, created = bx.import_image(
            reference, public=public, manifest=override, registry_url=registry_url, wait=wait
        )
    if output is not Format.TABLE:
        emit({**info.to_json(), "created": created}, output)
    else:
        verb = "imported" if created else "already imported"
        typer.echo(f"{verb} {info.coordinates or info.name} as {info.container}")
    if info.ready == "False":
        fail(
            f"the operator refused Image {info.name}: {info.reason}: {info.message}",
            EXIT_JOB_FAILED,
        )
    if info.ready != "True" and wait:
        note(f"Image {info.name} is not judged yet; bx images --all shows its state")


def _load_manifest(path: Path) -> object:
    from batchx.cli.manifest import load_document, unwrap  # noqa: PLC0415

    document, _ = unwrap(load_document(path))
    return document
