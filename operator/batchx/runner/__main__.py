"""``python -m batchx.runner stage-in|stage-out PLAN``: one runner step in a job's Pod.

stage-in
    downloads the inputs, writes /batchx/input/input.json, reports; exits 1 on failure so the
    Pod fails before the job's container starts.
stage-out
    a native sidecar: idles until SIGTERM (the kubelet sends it once the job's container has
    exited), then uploads the outputs and reports; always exits 0 (the report says what
    happened, and a sidecar's exit code does not decide the Pod's phase).

nudge
    the stage-out sidecar's ``preStop`` hook: waits until the sidecar (PID 1 of its container)
    catches SIGTERM, then sends it (see `_nudge`).

The report is the termination message (``$BATCHX_TERMINATION_LOG``, default
/dev/termination-log); the store is ``$BATCHX_STORE`` with credentials from the environment.

What the idle sidecar holds depends on the plan's ``outputFiles``:

- false (the output schema has no ``format: file``): only the standard library is ever imported;
  at SIGTERM it reads output.json and reports it (`batchx.runner.output`). The store is opened
  only for an output too big for a termination message.
- true: a background thread imports the steps, the store and boto3 and opens the store as soon
  as the sidecar starts, while the job runs, so the upload starts the moment SIGTERM arrives
  (before: a second or more of imports and client set-up after the job had ended, longer under
  the runner's CPU limit). The cost is memory held while idle: measured in a pod of the runner
  image (VmRSS of the sidecar's process), about 12 MiB idle without the preload and about
  60 MiB with it; the runner containers request no memory and are limited to 512 MiB.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any

USAGE = "usage: python -m batchx.runner stage-in|stage-out PLAN | nudge"
NUDGE_WAIT_SECONDS = 60.0  # a loaded node may take long to start the sidecar


def _report(text: str) -> None:
    path = Path(os.environ.get("BATCHX_TERMINATION_LOG", "/dev/termination-log"))
    try:
        path.write_text(text)
    except OSError as err:  # not in a container: the log line below still says it
        print(f"runner: cannot write {path}: {err}", file=sys.stderr)
    print(f"runner: {text}", file=sys.stderr)


def _output_dir() -> Path:
    return Path(os.environ.get("BATCHX_OUTPUT_DIR", "/batchx/output"))


class _Preload:
    """The store (and every import the upload needs), opened in a background thread."""

    def __init__(self, environment: str) -> None:
        self.files: Any = None
        self.store: Any = None
        self._environment = environment
        self._thread = threading.Thread(target=self._load, name="preload", daemon=True)
        self._thread.start()

    def _load(self) -> None:
        try:
            import batchx.runner.stage  # noqa: F401, PLC0415
            from batchx.store import open_store  # noqa: PLC0415

            self.store = open_store()
            self.files = self.store.env(self._environment)
        except Exception as err:
            print(f"runner: preload failed, retrying at upload: {err}", file=sys.stderr)

    def result(self) -> Any:
        self._thread.join()
        return self.files


def _run(step: str, plan_path: Path, files: Any = None) -> int:
    from batchx.planning.job_protocol import (  # noqa: PLC0415
        Outcome,
        PlanError,
        RunnerReport,
        StagingPlan,
    )
    from batchx.runner.stage import Dirs, StageError, stage_in, stage_out  # noqa: PLC0415
    from batchx.store import open_store  # noqa: PLC0415

    failed = Outcome.INPUT_FAILED if step == "stage-in" else Outcome.UPLOAD_FAILED
    try:
        plan = StagingPlan.load(plan_path)
        dirs = Dirs(
            input=Path(os.environ.get("BATCHX_INPUT_DIR", "/batchx/input")), output=_output_dir()
        )
        step_fn = stage_in if step == "stage-in" else stage_out
        if files is not None:
            report = step_fn(plan, files, dirs)
        else:
            with open_store() as store:
                report = step_fn(plan, store.env(plan.environment), dirs)
    except (StageError, PlanError) as err:
        report = RunnerReport(failed, message=str(err)[:2048])
    except Exception as err:  # anything else still gets a report, never a silent death
        report = RunnerReport(failed, message=f"{type(err).__name__}: {err}"[:2048])
    _report(report.to_json())
    return 0 if report.outcome in (Outcome.STAGED, Outcome.UPLOADED, Outcome.INVALID_OUTPUT) else 1


def _without_store() -> bool:
    """Stage-out of an output that lists no file: report it; False when the store is needed."""
    from batchx.runner.output import (  # noqa: PLC0415 - stdlib only
        MAX_MESSAGE_BYTES,
        invalid_report,
        read_output,
        uploaded_report,
    )

    document = read_output(_output_dir() / "output.json")
    if isinstance(document, str):
        _report(invalid_report(document))
        return True
    text = uploaded_report(document)
    if len(text.encode()) > MAX_MESSAGE_BYTES:
        return False  # the full report goes to the store
    _report(text)
    return True


def _stage_out(plan_path: Path) -> int:
    # The handler first, before the plan is read and before the preload thread competes for the
    # GIL: until it is installed, a SIGTERM to PID 1 is dropped (the preStop nudge waits for it).
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    from batchx.planning.job_protocol import PlanError, StagingPlan  # noqa: PLC0415 - stdlib only

    try:
        plan = StagingPlan.load(plan_path)
        lists_files, environment = plan.output_files, plan.environment
    except PlanError:
        lists_files, environment = True, ""  # the step itself reports the broken plan
    preload = _Preload(environment) if lists_files and environment else None
    _say("stage-out waiting for the job to end (SIGTERM)")
    # Short timeouts: a signal that lands on the preload thread runs its Python handler only when
    # the main thread wakes up.
    while not stop.wait(1):
        pass
    ended = time.monotonic()
    _say("stage-out: SIGTERM: the job ended")
    if not lists_files and _without_store():
        return 0
    files = preload.result() if preload else None
    _say(f"stage-out: store ready {time.monotonic() - ended:.1f} s after SIGTERM; uploading")
    _run("stage-out", plan_path, files)
    _say(f"stage-out: reported {time.monotonic() - ended:.1f} s after SIGTERM")
    if preload is not None and preload.store is not None:
        preload.store.close()
    return 0  # the report decides; a sidecar's exit code is ignored anyway


def _say(line: str) -> None:
    """A progress line in the runner's log (what `kubectl logs -c stage-out` shows)."""
    print(f"runner: {line}", file=sys.stderr, flush=True)


def _catches_sigterm(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    for line in status.splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signal.SIGTERM - 1) & 1)
    return False


def _nudge(pid: int = 1, wait: float = NUDGE_WAIT_SECONDS) -> int:
    """The stage-out sidecar's preStop hook: SIGTERM it once it can catch SIGTERM.

    The kubelet runs this hook and then sends SIGTERM itself. The sidecar is PID 1 of its
    container, and the kernel drops a signal that PID 1 has no handler for: a trivial job can
    end before the sidecar's interpreter has installed its handler, and that SIGTERM would be
    lost (the sidecar would idle until SIGKILL at the end of the grace period and report
    nothing). So this waits until the sidecar catches SIGTERM (``SigCgt`` in /proc) and sends
    it; the kubelet's own SIGTERM that follows is then a harmless repeat.
    """
    deadline = time.monotonic() + wait
    while not _catches_sigterm(pid):
        if time.monotonic() > deadline:
            print(f"runner: pid {pid} does not catch SIGTERM", file=sys.stderr)
            return 1
        time.sleep(0.01)  # polling /proc: there is nothing to wait on
    os.kill(pid, signal.SIGTERM)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["nudge"]:
        return _nudge()
    if len(args) != 2 or args[0] not in ("stage-in", "stage-out"):
        print(USAGE, file=sys.stderr)
        return 2
    step, plan_path = args[0], Path(args[1])
    if step == "stage-out":
        return _stage_out(plan_path)
    return _run(step, plan_path)


if __name__ == "__main__":
    sys.exit(main())
