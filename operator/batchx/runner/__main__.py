"""``python -m batchx.runner stage-in|stage-out PLAN``: one runner step in a job's Pod.

stage-in
    downloads the inputs, writes /batchx/input/input.json, reports; exits 1 on failure so the
    Pod fails before the job's container starts.
stage-out
    a native sidecar: idles until SIGTERM (the kubelet sends it once the job's container has
    exited), then uploads the outputs and reports; always exits 0 (the report says what
    happened, and a sidecar's exit code does not decide the Pod's phase).

The report is the termination message (``$BATCHX_TERMINATION_LOG``, default
/dev/termination-log); the store is ``$BATCHX_STORE`` with credentials from the environment.
Heavy imports (pydantic, the store, boto3) happen only once there is work, so the idle sidecar
holds a bare interpreter.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
from pathlib import Path

USAGE = "usage: python -m batchx.runner stage-in|stage-out PLAN"


def _report(text: str) -> None:
    path = Path(os.environ.get("BATCHX_TERMINATION_LOG", "/dev/termination-log"))
    try:
        path.write_text(text)
    except OSError as err:  # not in a container: the log line below still says it
        print(f"runner: cannot write {path}: {err}", file=sys.stderr)
    print(f"runner: {text}", file=sys.stderr)


def _run(step: str, plan_path: Path) -> int:
    from batchx.planning.job_pod import Outcome, RunnerReport  # noqa: PLC0415
    from batchx.runner.stage import Dirs, Plan, StageError, stage_in, stage_out  # noqa: PLC0415
    from batchx.store import open_store  # noqa: PLC0415

    failed = Outcome.INPUT_FAILED if step == "stage-in" else Outcome.UPLOAD_FAILED
    try:
        plan = Plan.load(plan_path)
        dirs = Dirs(
            input=Path(os.environ.get("BATCHX_INPUT_DIR", "/batchx/input")),
            output=Path(os.environ.get("BATCHX_OUTPUT_DIR", "/batchx/output")),
        )
        with open_store() as store:
            files = store.env(plan.environment)
            report = (stage_in if step == "stage-in" else stage_out)(plan, files, dirs)
    except StageError as err:
        report = RunnerReport(failed, message=str(err)[:2048])
    except Exception as err:  # anything else still gets a report, never a silent death
        report = RunnerReport(failed, message=f"{type(err).__name__}: {err}"[:2048])
    _report(report.to_json())
    return 0 if report.outcome in (Outcome.STAGED, Outcome.UPLOADED, Outcome.INVALID_OUTPUT) else 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2 or args[0] not in ("stage-in", "stage-out"):
        print(USAGE, file=sys.stderr)
        return 2
    step, plan_path = args[0], Path(args[1])
    if step == "stage-out":
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        print("runner: stage-out waiting for the job to end (SIGTERM)", file=sys.stderr, flush=True)
        while not stop.wait(60):  # a timeout keeps the wait interruptible everywhere
            pass
        _run(step, plan_path)
        return 0  # the report decides; a sidecar's exit code is ignored anyway
    return _run(step, plan_path)


if __name__ == "__main__":
    sys.exit(main())
