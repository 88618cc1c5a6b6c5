"""`bx run`, `bx submit`, `bx jobs`, `bx logs`, `bx cancel`: jobs from the command line.

`bx run` is the BatchX user's whole workflow in one command: it checks the job as the operator
would (bad input exits 2 and creates nothing), submits it, shows each state on stderr (QUEUED
with its reason, RUNNING with the time so far), streams the job's logs with `--logs`, prints the
output JSON on stdout (pipe it to `jq`) and exits with the job's verdict. Ctrl-C leaves the job
running and says how to follow or cancel it. All through `batchx.client`; exit codes in
`batchx.cli.common`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from batchx.cli.common import (
    EXIT_INTERRUPTED,
    EXIT_JOB_FAILED,
    EnvOption,
    Format,
    OutputOption,
    ago,
    console,
    duration,
    emit,
    fail,
    note,
    read_input,
    session,
    table,
)

if TYPE_CHECKING:
    from batchx.client import Client, JobRef, JobResult

_RUN_EXAMPLE = """

Example:

    bx run -e lab -m 64 examples/wordcount '{"text": "bx://texts/a.txt"}' | jq .words

INPUT is JSON text, @file.json, or - to read it from stdin."""

ImageArg = Annotated[
    str,
    typer.Argument(
        metavar="IMAGE", help="Image: name, name:1.2.3, name:^1.2, or env@name:version."
    ),
]
InputArg = Annotated[
    str, typer.Argument(metavar="INPUT", help="Job input: JSON text, @file.json, or - (stdin).")
]
Vcpus = Annotated[int | None, typer.Option("--vcpus", "-v", help="vCPUs.", show_default=False)]
Memory = Annotated[
    int | None, typer.Option("--memory", "-m", help="Memory in MB.", show_default=False)
]
Gpus = Annotated[int | None, typer.Option("--gpus", "-g", help="GPUs.", show_default=False)]
GpuType = Annotated[
    str | None, typer.Option("--gpu-type", help="GPU product, e.g. T4.", show_default=False)
]
Timeout = Annotated[
    int | None,
    typer.Option("--timeout", help="Most seconds the job may run.", show_default=False),
]
NoCache = Annotated[
    bool, typer.Option("--no-cache", help="Run even if an identical job's result exists.")
]
Upload = Annotated[
    bool,
    typer.Option(
        "--upload",
        help="Store local files given at the input's file fields first (as bx cp does).",
    ),
]
StoreOption = Annotated[
    str | None,
    typer.Option(
        "--store",
        envvar="BATCHX_STORE",
        help="Store URL for --upload (as bx cp).",
        show_default=False,
    ),
]
JobArg = Annotated[str, typer.Argument(metavar="JOB", help="Job name (as bx submit printed it).")]


def register(app: typer.Typer) -> None:
    app.command("run", help=(run.__doc__ or "") + _RUN_EXAMPLE)(run)
    app.command("submit")(submit)
    app.command("jobs")(jobs)
    app.command("logs")(logs)
    app.command("cancel")(cancel)


def run(
    image: ImageArg,
    input: InputArg,
    *,
    vcpus: Vcpus = None,
    memory: Memory = None,
    gpus: Gpus = None,
    gpu_type: GpuType = None,
    timeout: Timeout = None,
    no_cache: NoCache = False,
    upload: Upload = False,
    store: StoreOption = None,
    logs: Annotated[bool, typer.Option("--logs", help="Stream the job's logs to stderr.")] = False,
    cancel_on_interrupt: Annotated[
        bool, typer.Option("--cancel-on-interrupt", help="Ctrl-C cancels the job.")
    ] = False,
    wait_timeout: Annotated[
        float | None,
        typer.Option("--wait-timeout", help="Stop waiting after S seconds (exit 4).", min=0),
    ] = None,
    output: OutputOption = Format.JSON,
    env: EnvOption = None,
) -> None:
    """Run IMAGE on INPUT, wait, print the output JSON; exit 0 only for SUCCEEDED/WARNING."""
    requested = _Requested(vcpus, memory, gpus, gpu_type, timeout, cache=not no_cache)
    with session(env) as bx:
        ref = _submit(bx, image, read_input(input), requested, upload=upload, store=store)
        note(f"job {ref.name} submitted to environment {ref.namespace}")
        result = _follow(bx, ref, logs=logs, wait_timeout=wait_timeout, cancel=cancel_on_interrupt)
    _verdict(result, output)


@dataclass(frozen=True)
class _Requested:
    """What `bx run` and `bx submit` ask for besides the image and input (None: the default)."""

    vcpus: int | None
    memory: int | None
    gpus: int | None
    gpu_type: str | None
    timeout: int | None
    cache: bool


def _submit(
    bx: Client,
    image: str,
    document: dict[str, Any],
    requested: _Requested,
    *,
    upload: bool,
    store: str | None,
) -> JobRef:
    """Submit one job (its local files uploaded first with --upload)."""
    if upload:
        document = _upload(bx, image, document, store)
    return bx.submit(image, document, **asdict(requested))


def _upload(bx: Client, image: str, document: dict[str, Any], store: str | None) -> dict[str, Any]:
    """`document` with its local files stored and replaced by bx:// paths (see uploads.py)."""
    from batchx.cli.uploads import local_files, replaced, upload_path  # noqa: PLC0415
    from batchx.domain.manifest import compile_manifest  # noqa: PLC0415
    from batchx.store import LocalFile, StoreError, open_store  # noqa: PLC0415

    candidate = bx.resolve(image)
    if candidate is None:
        return document  # an unknown image: submitting refuses it with the operator's words
    found = local_files(compile_manifest(dict(candidate.manifest)), document)
    if not found:
        return document
    targets = {json_path: upload_path(local) for json_path, local in found}
    batch = {targets[json_path]: local for json_path, local in found}
    try:
        opened = open_store(store)
    except StoreError as err:
        fail(f"--upload: {err}")
    try:
        files = opened.env(bx.env)
        results = files.put_files([LocalFile(path, local) for path, local in batch.items()])
    finally:
        opened.close()
    for (path, local), result in zip(batch.items(), results, strict=True):
        if isinstance(result, (StoreError, OSError)):
            fail(f"--upload: {local} -> bx://{path}: {result}")
    shown = ", ".join(f"{local} -> bx://{path}" for path, local in batch.items())
    note(f"uploaded {len(batch)} file(s): {shown}")
    return replaced(document, targets)


def _follow(
    bx: Client, ref: JobRef, *, logs: bool, wait_timeout: float | None, cancel: bool
) -> JobResult:
    """Wait for the job, showing its states (and logs); Ctrl-C handled as documented."""
    show = _States(ref.name)
    streamer: threading.Thread | None = None

    def changed(result: JobResult) -> None:
        nonlocal streamer
        show(result)
        if logs and streamer is None and (result.has_logs or result.done):
            streamer = threading.Thread(target=_stream_logs, args=(bx, ref), daemon=True)
            streamer.start()

    try:
        result = bx.wait(ref, wait_timeout, on_change=changed)
    except KeyboardInterrupt:
        show.stop()
        if cancel:
            bx.cancel(ref)
            note(f"\ncancelled job {ref.name} (bx jobs -e {ref.namespace} shows it)")
        else:
            note(
                f"\njob {ref.name} keeps running. Follow it: bx logs -f -e {ref.namespace} "
                f"{ref.name}; cancel it: bx cancel -e {ref.namespace} {ref.name}"
            )
        raise typer.Exit(EXIT_INTERRUPTED) from None
    finally:
        show.stop()
    if streamer is not None:
        streamer.join(timeout=30)  # the container has exited: its log ends by itself
    return result


def _stream_logs(bx: Client, ref: JobRef) -> None:
    from batchx.client import ClientError  # noqa: PLC0415

    err = console(stderr=True)
    try:
        for line in bx.logs(ref, follow=True):
            err.out(line, highlight=False)
    except ClientError as exc:
        err.print(f"[dim](logs: {exc})[/dim]")


class _States:
    """Each state on stderr as it changes: a spinner with the time so far on a terminal, one
    line per change otherwise."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = time.monotonic()
        self.err = console(stderr=True)
        self.live = None
        if self.err.is_terminal:
            from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn  # noqa: PLC0415

            self.live = Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                TimeElapsedColumn(),
                console=self.err,
                transient=True,
            )
            self.task = self.live.add_task("SUBMITTED", total=None)
            self.live.start()

    def __call__(self, result: JobResult) -> None:
        state = result.state.value if result.state else "SUBMITTED"
        waiting = state in ("QUEUED", "STARTING") and result.message
        detail = f" ({result.reason}: {result.message})" if waiting else ""
        line = f"[{duration(time.monotonic() - self.started):>4}] {state}{detail}"
        if self.live is not None:
            self.live.update(self.task, description=f"{self.name} {state}")
            self.live.console.print(line, highlight=False, markup=False)
        else:
            self.err.print(line, highlight=False, markup=False)

    def stop(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None


def _verdict(result: JobResult, output: Format) -> None:
    """Print the outcome (stderr) and output (stdout); exit 1 unless SUCCEEDED/WARNING."""
    state = result.state.value if result.state else "UNKNOWN"
    cached = f" <cached> from {result.status.cached_from}" if result.status.cached else ""
    charged = result.status.credits.charged if result.status.credits else 0
    summary = f"{result.ref.name} {state}{cached}; {charged:g} credits charged"
    if result.message and state != "SUCCEEDED":
        summary += f": {result.message}"
    if not result.ok:
        reason = f" ({result.reason})" if result.reason else ""
        code = f", exit code {result.exit_code}" if result.exit_code is not None else ""
        fail(
            f"job {result.ref.name} ended {state}{reason}{code}: {result.message or ''}",
            EXIT_JOB_FAILED,
        )
    note(summary)
    emit(result.output or {}, Format.YAML if output is Format.YAML else Format.JSON)


def submit(
    image: ImageArg,
    input: InputArg,
    *,
    vcpus: Vcpus = None,
    memory: Memory = None,
    gpus: Gpus = None,
    gpu_type: GpuType = None,
    timeout: Timeout = None,
    no_cache: NoCache = False,
    upload: Upload = False,
    store: StoreOption = None,
    env: EnvOption = None,
) -> None:
    """Submit IMAGE on INPUT and print the job's name (stdout); does not wait.

    Example: NAME=$(bx submit -e lab examples/sleeper '{}'); bx logs -f "$NAME"
    """
    requested = _Requested(vcpus, memory, gpus, gpu_type, timeout, cache=not no_cache)
    with session(env) as bx:
        ref = _submit(bx, image, read_input(input), requested, upload=upload, store=store)
    typer.echo(ref.name)


def jobs(
    state: Annotated[
        str | None, typer.Option("--state", "-s", help="Only jobs in this state, e.g. RUNNING.")
    ] = None,
    watch: Annotated[bool, typer.Option("--watch", "-w", help="Keep printing changes.")] = False,
    output: OutputOption = Format.TABLE,
    env: EnvOption = None,
) -> None:
    """List the environment's jobs, oldest first.

    Example: bx jobs -e lab --state FAILED -o json | jq '.[].message'
    """
    wanted = state.upper() if state else None
    with session(env) as bx:
        if watch:
            try:
                for result in bx.watch_jobs():
                    if wanted is None or result.state == wanted:
                        _job_line(result, output)
            except KeyboardInterrupt:
                raise typer.Exit(0) from None
            return
        found = bx.jobs(wanted)
    if output is not Format.TABLE:
        emit([r.to_json() for r in found], output)
        return
    table(["NAME", "IMAGE", "STATE", "AGE", "MESSAGE"], [_row(r) for r in found])


def _row(result: JobResult) -> list[str]:
    state = result.state.value if result.state else "SUBMITTED"
    if result.status.cached:
        state += " <cached>"
    message = (result.message or "").splitlines()[0][:80] if result.message else ""
    return [result.ref.name, result.image, state, ago(result.created), message]


def _job_line(result: JobResult, output: Format) -> None:
    if output is Format.TABLE:
        typer.echo("  ".join(_row(result)))
    else:
        import json  # noqa: PLC0415

        typer.echo(json.dumps(result.to_json()))  # one JSON document per line


def logs(
    job: JobArg,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Stream until it ends.")] = False,
    env: EnvOption = None,
) -> None:
    """Print a job's logs (its container's stdout and stderr).

    Example: bx logs -f -e lab wordcount-k3x9a0qz
    """
    with session(env) as bx:
        try:
            for line in bx.logs(job, follow=follow):
                typer.echo(line)
        except KeyboardInterrupt:
            raise typer.Exit(EXIT_INTERRUPTED) from None


def cancel(job: JobArg, env: EnvOption = None) -> None:
    """Cancel a job (it ends CANCELLED; charged for the time it ran).

    Example: bx cancel -e lab sleeper-0a1b2c3d
    """
    with session(env) as bx:
        before = bx.get(job)
        if before.done:
            note(f"job {job} already ended {before.state}; nothing to cancel")
            return
        bx.cancel(job)
    note(f"cancelling job {job} (was {before.state or 'SUBMITTED'})")
