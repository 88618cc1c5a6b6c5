"""`bx provenance bx://PATH`: the chain of jobs that made a file, back to the uploaded files.

Each file a job wrote carries the job's record in its index entry (`batchx.planning.provenance`):
the job (name, uid), its image (coordinates, container, digest) and the content digests of the
inputs it read. This verb follows those inputs, through as many jobs as made them, and prints a
tree (``-o json``/``yaml``: the same tree as a document). It reads the file system only (with a
kubeconfig the files API, whose listings carry the records; or the embedded `--store`), no Job:
a deleted job's outputs, while they exist, still say where they came from.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from batchx.cli.common import Format, OutputOption, console, emit
from batchx.cli.files import EnvOption, StoreOption, open_env, refuse
from batchx.domain.paths import BX_SCHEME

if TYPE_CHECKING:
    from rich.tree import Tree

    from batchx.planning.provenance import Node, Record


def register(app: typer.Typer) -> None:
    app.command("provenance")(provenance)


def provenance(
    path: Annotated[str, typer.Argument(help="bx:// path of a file.")],
    env: EnvOption = None,
    store: StoreOption = None,
    output: OutputOption = Format.TABLE,
) -> None:
    """Show which jobs made a file, and from which inputs, back to the uploaded files."""
    from batchx.planning.provenance import trace  # noqa: PLC0415
    from batchx.store import StoreError  # noqa: PLC0415

    if not path.startswith(BX_SCHEME) or path.endswith("/"):
        refuse(f"expected the bx:// path of a file, got {path!r}")
    with open_env(env, store) as files:
        try:
            node = trace(
                path[len(BX_SCHEME) :], files.stat, lambda f: files.entries(list(files.find(f)))
            )
        except StoreError as exc:
            refuse(str(exc))
    if node.note and node.size is None and node.record is None:
        refuse(f"{path} not found")
    if output is Format.TABLE:
        console().print(render(node), highlight=False)
    else:
        emit(node.to_json(), output)


def render(node: Node) -> Tree:
    """The chain as a rich tree: each file, the job that made it, and that job's inputs."""
    from rich.tree import Tree  # noqa: PLC0415

    tree = Tree(_label(node))
    for child in node.inputs:
        tree.add(render(child))
    return tree


def _label(node: Node) -> str:
    digest = (node.digest or "?").removeprefix("folder:")[:19]
    head = f"[bold]{node.path}[/bold] [dim]{digest}[/dim]"
    if node.note:
        return f"{head} [yellow]({node.note})[/yellow]"
    if node.record is None:
        return f"{head} [green]uploaded[/green]" if not node.path.endswith("/") else head
    return f"{head}\n{job_line(node.record)}"


def job_line(record: Record) -> str:
    """One line naming the job that computed a file (and the one it was served to)."""
    uid = f" [dim]uid {record.job_uid}[/dim]" if record.job_uid else ""
    image = record.coordinates or record.container or "?"
    digest = f" [dim]{record.digest[:19]}[/dim]" if record.digest else ""
    line = f"made by job [cyan]{record.job or '?'}[/cyan]{uid} with {image}{digest}"
    if record.served_to:
        line += f"; served from the cache to job [cyan]{record.served_to}[/cyan]"
    return line
