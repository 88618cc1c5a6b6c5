"""The `bx` Typer application; verb modules register themselves here (one line each).

Verb modules import only typer at module level (heavy libraries inside their commands), so
`bx --help` stays fast: see `batchx.cli.common`.
"""

import typer

app = typer.Typer(
    name="bx",
    help="BatchX on Kubernetes: run versioned tool images on your data. Exit codes: 0 done, "
    "1 job failed, 2 bad input (nothing created), 3 cluster error, 4 wait timeout, "
    "130 interrupted.",
    no_args_is_help=True,
    add_completion=False,
)


@app.callback()
def _root() -> None:
    """BatchX on Kubernetes: run versioned tool images on your data."""


from batchx.cli import environments as _environments  # noqa: E402  (verbs register after the app)
from batchx.cli import files as _files  # noqa: E402
from batchx.cli import images as _images  # noqa: E402
from batchx.cli import jobs as _jobs  # noqa: E402
from batchx.cli import manifest as _manifest  # noqa: E402
from batchx.cli import provenance as _provenance  # noqa: E402

_jobs.register(app)
_images.register(app)
_environments.register(app)
_files.register(app)
_provenance.register(app)
app.add_typer(_manifest.app)
