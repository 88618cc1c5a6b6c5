"""A corpus of bad ``output.json`` (issue 16: bad input), from the image's files to the job's state.

Each case writes what a careless or hostile image could leave in /batchx/output (real files,
links, pipes and folders in a temporary directory), runs the stage-out step the sidecar runs
(with a local store), hands its report to the status planner as the kubelet would (the
termination message of a Pod whose job exited 0) and checks the job's end state and message.
Nothing may crash, hang or upload a file from outside /batchx/output. The cases that are about
the JSON alone also go through the sidecar's storeless path (`batchx.runner.output`), which
must read them the same way.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from batchx.models import JobState, JobStatus
from batchx.planning.job_pod import JobRef, staging_plan
from batchx.planning.job_protocol import Outcome, RunnerReport, StagingPlan, parse_report
from batchx.planning.pod_status import StatusInputs, plan_status
from batchx.runner.output import MAX_OUTPUT_BYTES, invalid_report, read_output, uploaded_report
from batchx.runner.stage import Dirs, StageError, stage_out
from batchx.store import EnvFiles
from tests.job_builders import T0, PodBuilder, candidate, make_bx_job, request_for, seconds

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
JOB = make_bx_job("tutorial/hello:1.0.0").model()
REQUEST = request_for(
    JOB, candidate(schema={"input": {"type": "object"}, "output": OUTPUT_SCHEMA}), name="align"
)
PLAN = StagingPlan.from_json(json.loads(staging_plan(REF, REQUEST, {}).dumps()))
HANG_SECONDS = 10


def text(content: str | bytes) -> Callable[[Path, Path], None]:
    """output.json with this content."""

    def write(out: Path, _: Path) -> None:
        data = content.encode() if isinstance(content, str) else content
        (out / "output.json").write_bytes(data)

    return write


def doc(document: Any, **files: str) -> Callable[[Path, Path], None]:
    """output.json with this document, and these files (relative path: content) beside it."""

    def write(out: Path, _: Path) -> None:
        for name, content in files.items():
            (out / name).parent.mkdir(parents=True, exist_ok=True)
            (out / name).write_text(content)
        (out / "output.json").write_text(json.dumps(document))

    return write


def nested(depth: int) -> str:
    return '{"note": "x", "deep": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


def huge(out: Path, _: Path) -> None:
    with (out / "output.json").open("wb") as f:  # 100 MB, sparse: cheap to make
        f.write(b'{"note": "')
        f.truncate(100 * 1024 * 1024)


def just_too_big(out: Path, _: Path) -> None:
    body = json.dumps({"note": "n" * MAX_OUTPUT_BYTES})
    (out / "output.json").write_text(body)


def link_out(out: Path, outside: Path) -> None:
    (outside / "credentials").write_text("AWS_SECRET_ACCESS_KEY=hunter2")
    (out / "leak.txt").symlink_to(outside / "credentials")
    (out / "output.json").write_text(json.dumps({"report": "/batchx/output/leak.txt"}))


def link_folder_out(out: Path, outside: Path) -> None:
    (outside / "etc").mkdir()
    (outside / "etc" / "passwd").write_text("root:x:0:0")
    (out / "d").symlink_to(outside / "etc")
    (out / "output.json").write_text(json.dumps({"report": "/batchx/output/d/passwd"}))


def links_in_folder(out: Path, outside: Path) -> None:
    (outside / "secret").write_text("s")
    (out / "tables").mkdir()
    (out / "tables" / "leak.csv").symlink_to(outside / "secret")
    (out / "tables" / "up").symlink_to(outside)
    (out / "output.json").write_text(json.dumps({"folder": "/batchx/output/tables/"}))


def output_json_link(out: Path, outside: Path) -> None:
    (outside / "elsewhere.json").write_text("{}")
    (out / "output.json").symlink_to(outside / "elsewhere.json")


def output_json_dangling(out: Path, outside: Path) -> None:
    (out / "output.json").symlink_to(outside / "nothing-here.json")


def output_json_folder(out: Path, _: Path) -> None:
    (out / "output.json").mkdir()


def output_json_pipe(out: Path, _: Path) -> None:
    os.mkfifo(out / "output.json")  # nobody writes it: reading must not wait for a writer


def listed_pipe(out: Path, _: Path) -> None:
    os.mkfifo(out / "report.txt")
    (out / "output.json").write_text(json.dumps({"report": "/batchx/output/report.txt"}))


def vanished(out: Path, _: Path) -> None:
    (out / "report.txt").write_text("gone soon")
    (out / "output.json").write_text(json.dumps({"report": "/batchx/output/report.txt"}))
    (out / "report.txt").unlink()


@dataclass(frozen=True)
class Case:
    name: str
    setup: Callable[[Path, Path], None]
    state: JobState
    message: str  # a fragment of status.message ("" for a success)
    json_only: bool = False  # about the JSON alone: the storeless path must agree


INVALID = JobState.INVALID_OUTPUT
OK = JobState.SUCCEEDED
NOT_JSON = "/batchx/output/output.json is not JSON"
UNUSABLE = "/batchx/output/output.json is not usable JSON"

CORPUS = [
    # -- not JSON, or not an object
    Case("prose", text("all done!"), INVALID, NOT_JSON, True),
    Case("empty", text(""), INVALID, NOT_JSON, True),
    Case("truncated", text('{"note": "x"'), INVALID, NOT_JSON, True),
    Case("trailing-garbage", text('{"note": "x"} {}'), INVALID, NOT_JSON, True),
    Case("single-quotes", text("{'note': 'x'}"), INVALID, NOT_JSON, True),
    Case("list", text("[1, 2]"), INVALID, "must hold a JSON object, got list", True),
    Case("string", text('"done"'), INVALID, "must hold a JSON object, got str", True),
    Case("number", text("42"), INVALID, "must hold a JSON object, got int", True),
    Case("null", text("null"), INVALID, "must hold a JSON object, got NoneType", True),
    # -- numbers JSON cannot hold
    Case("nan", text('{"note": NaN}'), INVALID, f"{UNUSABLE}: NaN is not a JSON number", True),
    Case("infinity", text('{"note": Infinity}'), INVALID, "Infinity is not a JSON number", True),
    Case(
        "minus-infinity", text('{"n": -Infinity}'), INVALID, "-Infinity is not a JSON number", True
    ),
    Case("overflowing-float", text('{"n": 1e400}'), INVALID, "1e400 is too large", True),
    Case("5000-digit-int", text('{"n": ' + "9" * 5000 + "}"), INVALID, NOT_JSON, True),
    # -- ambiguous objects
    Case(
        "duplicate-key", text('{"note": "a", "note": "b"}'), INVALID, "'note' appears twice", True
    ),
    Case(
        "duplicate-nested-key",
        text('{"x": {"k": 1, "k": 2}}'),
        INVALID,
        "the key 'k' appears twice",
        True,
    ),
    # -- encodings
    Case("latin-1", text(b'{"note": "caf\xe9"}'), INVALID, "'utf-8' codec can't decode", True),
    Case("binary", text(b"\x00\xff\xfe\x00garbage"), INVALID, NOT_JSON, True),
    Case("utf-8-bom", text(b'\xef\xbb\xbf{"note": "x"}'), OK, "", True),  # read as UTF-8
    Case("utf-16", text('{"note": "é"}'.encode("utf-16")), OK, "", True),  # RFC 8259 8.1
    Case("unicode-and-controls", doc({"note": "\u202e\x07\u00e9\U0001f600", "\x01k": 1}), OK, ""),
    # -- size and depth
    Case("100-MB", huge, INVALID, "/batchx/output/output.json is larger than 4 MiB", True),
    Case("4-MiB-and-a-bit", just_too_big, INVALID, "is larger than 4 MiB", True),
    Case("deep-100", text(nested(100)), INVALID, "nests deeper than 64 levels", True),
    Case("deep-100000", text("[" * 100_000), INVALID, "is nested too deeply to read", True),
    # -- against the schema
    Case("wrong-type", doc({"note": 5}), INVALID, "$.note: 5 is not of type 'string'"),
    Case("file-not-a-string", doc({"report": 5}), INVALID, "$.report: 5 is not of type 'string'"),
    # -- paths outside /batchx/output
    Case("absolute-elsewhere", doc({"report": "/etc/passwd"}), INVALID, "$.report: file reference"),
    Case(
        "dot-dot",
        doc({"report": "/batchx/output/../../etc/passwd"}),
        INVALID,
        "$.report: file reference '/batchx/output/../../etc/passwd'",
    ),
    Case("relative", doc({"report": "report.txt"}), INVALID, "$.report: file reference"),
    Case("proc-environ", doc({"parts": ["/proc/self/environ"]}), INVALID, "$.parts[0]"),
    Case("the-folder-itself", doc({"folder": "/batchx/output/"}), INVALID, "$.folder"),
    # -- bx:// paths written by the image: files it did not write (was SUCCEEDED, claiming them)
    Case(
        "bx-path-of-an-input",
        doc({"report": "bx://data/reads.fq"}),
        INVALID,
        "$.report: output file 'bx://data/reads.fq' is not under /batchx/output/ (a bx:// path "
        "names a file the job did not write)",
    ),
    Case(
        "bx-path-of-another-job",
        doc({"parts": ["bx://jobs/other/output/x.txt"]}),
        INVALID,
        "$.parts[0]: output file 'bx://jobs/other/output/x.txt' is not under",
    ),
    Case(
        "bx-path-under-its-own-prefix",
        doc({"report": "bx://jobs/align/output/never-uploaded.txt"}),
        INVALID,
        "$.report: output file 'bx://jobs/align/output/never-uploaded.txt' is not under",
    ),
    # -- links, pipes, vanished files
    Case("linked-file", link_out, INVALID, "output /batchx/output/leak.txt is a symbolic link"),
    Case("linked-folder", link_folder_out, INVALID, "output /batchx/output/d is a symbolic link"),
    Case("links-inside-a-folder", links_in_folder, OK, ""),  # skipped: nothing uploaded
    Case("output-json-link", output_json_link, INVALID, "output.json is a symbolic link"),
    Case("output-json-dangling", output_json_dangling, INVALID, "output.json is a symbolic link"),
    Case("output-json-folder", output_json_folder, INVALID, "output.json is not a regular file"),
    Case("output-json-pipe", output_json_pipe, INVALID, "output.json is not a regular file"),
    Case("listed-pipe", listed_pipe, INVALID, "is neither a regular file nor a folder"),
    Case("vanished", vanished, INVALID, "$.report: output file /batchx/output/report.txt does"),
    # -- what is fine
    Case("no-output-json", lambda out, _: None, OK, ""),
    Case("empty-object", text("{}"), OK, "", True),
]


def _stage_out(files: EnvFiles, dirs: Dirs) -> RunnerReport:
    try:
        return stage_out(PLAN, files, dirs)
    except StageError as err:  # what `python -m batchx.runner` reports then
        return RunnerReport(Outcome.UPLOAD_FAILED, message=str(err))


def _storeless(dirs: Dirs) -> RunnerReport | None:
    document = read_output(dirs.output / "output.json")
    text = invalid_report(document) if isinstance(document, str) else uploaded_report(document)
    return parse_report(text)


def _job_status(report: RunnerReport) -> JobStatus:
    pod = (
        PodBuilder.of(REF, REQUEST)
        .started(T0)
        .job_exited(0, end=T0 + seconds(10))
        .uploaded(report, at=T0 + seconds(11))
        .finished()
    )
    inputs = StatusInputs(
        resources=REQUEST.resources,
        rate=REQUEST.rate,
        manifest=REQUEST.manifest,
        image=REQUEST.image,
        now=T0 + seconds(12),
        reserved=REQUEST.reservation,
    )
    return plan_status(JOB, REF, pod.build(), inputs)


def _within(seconds_: float, fn: Callable[[], RunnerReport | None]) -> RunnerReport | None:
    """`fn()`, failing the test rather than hanging it."""
    pool = ThreadPoolExecutor(1)
    try:
        return pool.submit(fn).result(timeout=seconds_)
    finally:
        pool.shutdown(wait=False)


@pytest.mark.parametrize("case", CORPUS, ids=[c.name for c in CORPUS])
def test_a_bad_output_ends_the_job_in_its_state_with_a_message(
    case: Case, files: EnvFiles, tmp_path: Path
) -> None:
    dirs = Dirs(input=tmp_path / "in", output=tmp_path / "out")
    outside = tmp_path / "outside"
    for folder in (dirs.input, dirs.output, outside):
        folder.mkdir()
    case.setup(dirs.output, outside)

    report = _within(HANG_SECONDS, lambda: _stage_out(files, dirs))
    assert report is not None
    status = _job_status(report)
    assert status.state is case.state, (status.message, report)
    assert case.message in (status.message or ""), status.message
    if case.state is INVALID:
        assert status.conditions[-1].reason == "InvalidOutput"
        assert status.exit_code == 0
    # Nothing from outside /batchx/output reached the store, whatever the outcome.
    for path in files.find("jobs/"):
        assert "hunter2" not in files.read_bytes(path).decode(errors="replace")
        assert "root:x" not in files.read_bytes(path).decode(errors="replace")
    if case.json_only:
        storeless = _within(HANG_SECONDS, lambda: _storeless(dirs))
        assert storeless is not None
        assert _job_status(storeless).state is case.state
        assert storeless.message == report.message


@pytest.mark.parametrize("claimed", ["bx://data/reads.fq", "bx://jobs/other/output/x.txt"])
def test_the_operator_refuses_an_uploaded_output_naming_files_the_job_did_not_write(
    claimed: str,
) -> None:
    """The operator's own check, whatever the runner says (an older runner took them)."""
    report = RunnerReport(Outcome.UPLOADED, output={"report": claimed, "note": "n"}, files=1)
    status = _job_status(report)
    assert status.state is INVALID
    assert status.message == (
        "the output names files the job did not write (output files are paths under "
        f"/batchx/output): $.report: {claimed}"
    )
    uploaded = {"report": "bx://jobs/align/output/r.txt"}
    assert _job_status(RunnerReport(Outcome.UPLOADED, output=uploaded)).state is OK


def test_the_corpus_size_and_outcomes() -> None:
    """Recorded for the issue's report: how many cases, and how each ends."""
    outcomes = Counter(c.state.value for c in CORPUS)
    print(f"\noutput.json corpus: {len(CORPUS)} cases: {dict(sorted(outcomes.items()))}")
    assert len(CORPUS) >= 30
    assert outcomes[INVALID.value] > outcomes[OK.value]
