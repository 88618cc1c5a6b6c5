"""The runner against local directories and a local store: inputs in, outputs out, safely."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from batchx.planning.job_pod import JobRef, staging_plan
from batchx.planning.job_protocol import Outcome, RunnerReport, StagingPlan, parse_report
from batchx.runner.__main__ import _nudge, main
from batchx.runner.output import invalid_report, read_output, uploaded_report
from batchx.runner.stage import Dirs, StageError, stage_in, stage_out
from batchx.store import EnvFiles
from tests.job_builders import FILE_INPUT_SCHEMA, candidate, make_bx_job, request_for

REF = JobRef("align", "lab", "uid-1")
OUTPUT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "report": {"type": "string", "format": "file"},
        "parts": {"type": "array", "items": {"type": "string", "format": "file"}},
        "folder": {"type": "string", "format": "file"},
        "note": {"type": "string"},
    },
}


@pytest.fixture
def dirs(tmp_path: Path) -> Dirs:
    (tmp_path / "in").mkdir()
    (tmp_path / "out").mkdir()
    return Dirs(input=tmp_path / "in", output=tmp_path / "out")


def plan_for(**input_values: Any) -> StagingPlan:
    image = candidate(schema={"input": FILE_INPUT_SCHEMA, "output": OUTPUT_SCHEMA})
    job = make_bx_job("tutorial/hello:1.0.0").input(**input_values).model()
    request = request_for(job, image, name="align")
    # Through JSON, as the runner gets it from the ConfigMap.
    return StagingPlan.from_json(json.loads(staging_plan(REF, request, job.spec.input).dumps()))


def tree(root: Path) -> dict[str, str]:
    return {
        p.relative_to(root).as_posix(): p.read_text()
        for p in sorted(root.rglob("*"))
        if p.is_file() and not p.is_symlink()
    }


# ---------------------------------------------------------------------------------- stage-in


def test_stage_in_downloads_files_and_folders_and_rewrites_the_input(
    files: EnvFiles, dirs: Dirs
) -> None:
    files.put_bytes("data/r1.fq", b"ACGT\n")
    files.put_bytes("refs/genome.fa", b">chr1\n")
    files.put_bytes("refs/index/genome.idx", b"idx")
    plan = plan_for(reads="bx://data/r1.fq", more=["bx://data/r1.fq", "bx://refs/"], threads=2)
    report = stage_in(plan, files, dirs)
    assert report == RunnerReport(Outcome.STAGED, files=3, bytes=14)
    assert json.loads((dirs.input / "input.json").read_text()) == {
        "reads": "/batchx/input/files/data/r1.fq",
        "more": ["/batchx/input/files/data/r1.fq", "/batchx/input/files/refs/"],
        "threads": 2,
    }
    assert tree(dirs.input) == {
        "files/data/r1.fq": "ACGT\n",
        "files/refs/genome.fa": ">chr1\n",
        "files/refs/index/genome.idx": "idx",
        "input.json": (dirs.input / "input.json").read_text(),
    }


def test_stage_in_names_every_missing_input_and_writes_no_input_json(
    files: EnvFiles, dirs: Dirs
) -> None:
    plan = plan_for(reads="bx://data/missing.fq", more=["bx://empty/"])
    with pytest.raises(StageError, match=r"bx://empty/: the folder is empty or does not exist"):
        stage_in(plan, files, dirs)
    plan = plan_for(reads="bx://data/missing.fq")
    with pytest.raises(StageError, match=r"bx://data/missing\.fq: .*not found"):
        stage_in(plan, files, dirs)
    assert not (dirs.input / "input.json").exists()


# --------------------------------------------------------------------------------- stage-out


def write_output(dirs: Dirs, document: Any) -> None:
    (dirs.output / "output.json").write_text(json.dumps(document))


def test_stage_out_uploads_listed_files_and_folders_and_rewrites_paths(
    files: EnvFiles, dirs: Dirs
) -> None:
    (dirs.output / "report.txt").write_text("done")
    (dirs.output / "parts").mkdir()
    (dirs.output / "parts" / "a.txt").write_text("A")
    (dirs.output / "tables" / "deep").mkdir(parents=True)
    (dirs.output / "tables" / "deep" / "t.csv").write_text("x,y")
    write_output(
        dirs,
        {
            "report": "/batchx/output/report.txt",
            "parts": ["/batchx/output/parts/a.txt", "/batchx/output//report.txt"],
            "folder": "/batchx/output/tables/",
            "note": "/batchx/output/not-a-file-field",
        },
    )
    report = stage_out(plan_for(reads="bx://r"), files, dirs)
    assert report == RunnerReport(
        Outcome.UPLOADED,
        output={
            "report": "bx://jobs/align/output/report.txt",
            "parts": ["bx://jobs/align/output/parts/a.txt", "bx://jobs/align/output/report.txt"],
            "folder": "bx://jobs/align/output/tables/",
            "note": "/batchx/output/not-a-file-field",
        },
        files=3,
        bytes=8,
    )
    stored = {p: files.read_bytes(p) for p in files.find("jobs/")}
    assert stored == {
        "jobs/align/output/parts/a.txt": b"A",
        "jobs/align/output/report.txt": b"done",
        "jobs/align/output/tables/deep/t.csv": b"x,y",
    }


def test_no_output_json_is_an_empty_output(files: EnvFiles, dirs: Dirs) -> None:
    assert stage_out(plan_for(reads="bx://r"), files, dirs) == RunnerReport(
        Outcome.UPLOADED, output={}
    )


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "/batchx/output/output.json is not JSON: Expecting property name"),
        ("[1, 2]", "/batchx/output/output.json must hold a JSON object, got list"),
        (
            '{"report": "/batchx/output/missing.txt"}',
            "$.report: output file /batchx/output/missing.txt does not exist",
        ),
    ],
)
def test_unusable_outputs_are_reported_invalid(
    files: EnvFiles, dirs: Dirs, content: str, message: str
) -> None:
    (dirs.output / "output.json").write_text(content)
    report = stage_out(plan_for(reads="bx://r"), files, dirs)
    assert report.outcome is Outcome.INVALID_OUTPUT
    assert report.message.startswith(message)
    assert list(files.find("jobs/")) == []


def test_symbolic_links_are_never_followed(files: EnvFiles, dirs: Dirs, tmp_path: Path) -> None:
    secret = tmp_path / "credentials"
    secret.write_text("AWS_SECRET_ACCESS_KEY=hunter2")
    (dirs.output / "leak.txt").symlink_to(secret)
    write_output(dirs, {"report": "/batchx/output/leak.txt"})
    report = stage_out(plan_for(reads="bx://r"), files, dirs)
    assert report == RunnerReport(
        Outcome.INVALID_OUTPUT,
        message="$.report: output /batchx/output/leak.txt is a symbolic link; only regular "
        "files and folders upload",
    )
    # Inside a listed folder, links (to files or folders) are skipped, real files upload.
    (dirs.output / "leak.txt").unlink()
    (dirs.output / "tables").mkdir()
    (dirs.output / "tables" / "real.csv").write_text("1")
    (dirs.output / "tables" / "leak.csv").symlink_to(secret)
    (dirs.output / "tables" / "up").symlink_to(tmp_path)
    write_output(dirs, {"folder": "/batchx/output/tables"})
    assert stage_out(plan_for(reads="bx://r"), files, dirs).files == 1
    assert list(files.find("jobs/")) == ["jobs/align/output/tables/real.csv"]


def test_a_symlinked_output_json_is_refused(files: EnvFiles, dirs: Dirs, tmp_path: Path) -> None:
    (tmp_path / "elsewhere.json").write_text("{}")
    (dirs.output / "output.json").symlink_to(tmp_path / "elsewhere.json")
    report = stage_out(plan_for(reads="bx://r"), files, dirs)
    assert report.outcome is Outcome.INVALID_OUTPUT


def test_a_large_report_goes_to_the_store_with_a_pointer(files: EnvFiles, dirs: Dirs) -> None:
    note = "n" * 5000
    write_output(dirs, {"note": note})
    report = stage_out(plan_for(reads="bx://r"), files, dirs)
    assert (report.outcome, report.result, report.output) == (
        Outcome.UPLOADED,
        "jobs/align/result.json",
        None,
    )
    assert report.digest is not None
    assert len(report.to_json()) < 4096
    full = parse_report(files.read_bytes("jobs/align/result.json").decode())
    assert full == RunnerReport(Outcome.UPLOADED, output={"note": note})


# ------------------------------------------------------------------------------ command line


def runner_env(tmp_path: Path, dirs: Dirs) -> dict[str, str]:
    return {
        **os.environ,
        "BATCHX_STORE": f"file://{tmp_path / 'store'}",
        "BATCHX_TERMINATION_LOG": str(tmp_path / "termination-log"),
        "BATCHX_INPUT_DIR": str(dirs.input),
        "BATCHX_OUTPUT_DIR": str(dirs.output),
    }


def write_plan(tmp_path: Path, plan_json: dict[str, Any]) -> Path:
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(plan_json))
    return path


def plan_json(**input_values: Any) -> dict[str, Any]:
    image = candidate(schema={"input": FILE_INPUT_SCHEMA, "output": OUTPUT_SCHEMA})
    job = make_bx_job("tutorial/hello:1.0.0").input(**input_values).model()
    return staging_plan(REF, request_for(job, image, name="align"), job.spec.input).to_json()


def test_stage_in_command_reports_and_fails_the_container_on_missing_input(
    tmp_path: Path, dirs: Dirs, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in runner_env(tmp_path, dirs).items():
        monkeypatch.setenv(key, value)
    plan = write_plan(tmp_path, plan_json(reads="bx://data/missing.fq"))
    assert main(["stage-in", str(plan)]) == 1
    report = parse_report((tmp_path / "termination-log").read_text())
    assert report is not None
    assert report.outcome is Outcome.INPUT_FAILED
    assert "bx://data/missing.fq" in report.message
    assert main(["bogus"]) == 2


def test_stage_out_command_waits_for_sigterm_then_uploads(tmp_path: Path, dirs: Dirs) -> None:
    (dirs.output / "report.txt").write_text("done")
    write_output(dirs, {"report": "/batchx/output/report.txt"})
    plan = write_plan(tmp_path, plan_json(reads="bx://r"))
    log = tmp_path / "termination-log"
    process = subprocess.Popen(
        [sys.executable, "-m", "batchx.runner", "stage-out", str(plan)],
        env=runner_env(tmp_path, dirs),
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stderr is not None
    # It says so once its handler is installed: from then on SIGTERM means "upload now".
    assert "waiting for the job to end" in process.stderr.readline()
    assert not log.exists()
    process.send_signal(signal.SIGTERM)
    process.communicate(timeout=60)
    assert process.returncode == 0
    assert parse_report(log.read_text()) == RunnerReport(
        Outcome.UPLOADED, output={"report": "bx://jobs/align/output/report.txt"}, files=1, bytes=4
    )


LATE_HANDLER = """
import signal, sys, time
time.sleep(float(sys.argv[1]))  # an interpreter still starting: no handler yet
signal.signal(signal.SIGTERM, lambda *_: sys.exit(42))
time.sleep(60)
"""


@pytest.mark.parametrize("delay", [0.0, 0.5])
def test_nudge_sends_sigterm_only_once_it_is_caught(delay: float) -> None:
    """Sent before the handler, a SIGTERM would end (or, as PID 1, be lost on) the target; the
    nudge waits for the handler, so the target always exits through it."""
    target = subprocess.Popen([sys.executable, "-c", LATE_HANDLER, str(delay)])
    try:
        assert _nudge(target.pid, wait=30) == 0
        assert target.wait(timeout=30) == 42
    finally:
        target.kill()
        target.wait()


def test_nudge_gives_up_on_a_target_that_never_catches_sigterm() -> None:
    target = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert _nudge(target.pid, wait=0.3) == 1
        assert target.poll() is None  # not signalled: the kubelet's own SIGTERM comes next
    finally:
        target.kill()
        target.wait()


def test_stage_out_of_an_output_without_files_never_imports_the_store(
    tmp_path: Path, dirs: Dirs
) -> None:
    write_output(dirs, {"note": "hi", "n": 2})
    data = plan_json(reads="bx://r")
    data["outputFiles"] = False
    plan = write_plan(tmp_path, data)
    env = runner_env(tmp_path, dirs) | {"BATCHX_STORE": "unusable://nowhere"}
    probe = (
        "import sys, runpy\n"
        "sys.argv = ['batchx.runner', 'stage-out', sys.argv[1]]\n"
        "try:\n"
        "    runpy.run_module('batchx.runner', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        # The protocol module is the standard library's only: the one planning module it uses.
        "heavy = sorted(m for m in sys.modules if m.startswith(('batchx.store', 'boto', "
        "'pydantic', 'batchx.models', 'batchx.domain', 'batchx.planning.')) "
        "and m != 'batchx.planning.job_protocol')\n"
        "print('HEAVY', heavy, file=sys.stderr)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", probe, str(plan)], env=env, stderr=subprocess.PIPE, text=True
    )
    assert process.stderr is not None
    assert "waiting for the job to end" in process.stderr.readline()
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=60)
    assert "HEAVY []" in err
    assert parse_report((tmp_path / "termination-log").read_text()) == RunnerReport(
        Outcome.UPLOADED, output={"note": "hi", "n": 2}
    )


@pytest.mark.parametrize(
    ("output", "expected"),
    [
        (None, RunnerReport(Outcome.UPLOADED, output={})),  # no output.json: the output {}
        ("not json", None),
        ("[1]", None),
    ],
)
def test_the_storeless_reports_read_like_the_full_ones(
    dirs: Dirs, output: str | None, expected: RunnerReport | None
) -> None:
    path = dirs.output / "output.json"
    if output is not None:
        path.write_text(output)
    document = read_output(path)
    text = invalid_report(document) if isinstance(document, str) else uploaded_report(document)
    report = parse_report(text)
    assert report is not None
    if expected is not None:
        assert report == expected
    else:
        assert report.outcome is Outcome.INVALID_OUTPUT
        assert report.message.startswith("/batchx/output/output.json")
