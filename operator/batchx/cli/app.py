"""The `bx` Typer application; verb modules register themselves here (one line each)."""

import typer

app = typer.Typer(
    name="bx",
    help="BatchX on Kubernetes: run versioned tool images on your data.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """BatchX on Kubernetes: run versioned tool images on your data."""


from batchx.cli import manifest as _manifest  # noqa: E402  (verbs register after the app exists)

app.add_typer(_manifest.app)
from batchx.cli import files as _files  # noqa: E402

_files.register(app)
