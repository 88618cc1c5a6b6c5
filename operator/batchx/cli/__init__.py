"""`bx`: the BatchX command line. Each verb group lives in its own module and is wired in app.py."""

from batchx.cli.app import app


def main() -> None:
    app()
