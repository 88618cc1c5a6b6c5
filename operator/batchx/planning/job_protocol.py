"""The wire protocol between the operator and the runner: the staging plan, the report, the paths.

Both sides import this one module, so the plan is written and read by the same typed class
(`StagingPlan`) and the report likewise (`RunnerReport`), never as dicts parsed twice. It uses
the standard library only: the runner's stage-out sidecar imports it while idling, where
pydantic, the store or the Kubernetes client would cost memory and start-up time (an
import-linter contract holds it so). The design the plan and report serve is in
`batchx.planning.job_pod`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

__all__ = [
    "FILES_DIR",
    "INPUT_DIR",
    "INPUT_FILE",
    "JOB_CONTAINER",
    "MANIFEST_FILE",
    "OUTPUT_DIR",
    "PLAN_DIR",
    "PLAN_FILE",
    "RUNNER_COMMAND",
    "STAGE_IN",
    "STAGE_OUT",
    "Outcome",
    "PlanError",
    "RunnerReport",
    "StagingPlan",
    "parse_report",
]

JSON = dict[str, Any]

INPUT_DIR = "/batchx/input"
OUTPUT_DIR = "/batchx/output"
FILES_DIR = f"{INPUT_DIR}/files"
PLAN_DIR = "/var/run/batchx/plan"
PLAN_FILE = "plan.json"
INPUT_FILE = "input.json"
# The manifest the job was admitted with (batchx.planning.job_record): its output is judged by it.
MANIFEST_FILE = "manifest.json"
JOB_CONTAINER = "job"
STAGE_IN = "stage-in"
STAGE_OUT = "stage-out"
# The runner image's entrypoint (testbed.runner_image); exec hooks need the whole command.
RUNNER_COMMAND = ("python3", "-m", "batchx.runner")
PLAN_VERSION = 1


class PlanError(ValueError):
    """A staging plan this runner cannot read (another version, a missing field)."""


@dataclass(frozen=True)
class StagingPlan:
    """What the runner needs: the input, where each file goes, and how to read the output.

    Made by `batchx.planning.job_pod.staging_plan`, kept as ``plan.json`` in the job's plan
    ConfigMap, read by the runner with `load`.
    """

    job: str
    job_uid: str
    environment: str
    input: JSON
    files: tuple[tuple[str, str], ...]  # (bx:// path, container path), each file once
    input_files: tuple[tuple[tuple[str | int, ...], str], ...]  # (JSON pointer, container path)
    output_schema: JSON
    output_files: bool  # whether the output schema may hold a file (job_pod.lists_files)
    output_prefix: str
    result_path: str
    timeout: int

    @property
    def stages_in(self) -> bool:
        """Whether the job's input names files to download (else input.json is in the plan)."""
        return bool(self.files)

    def to_json(self) -> JSON:
        return {
            "version": PLAN_VERSION,
            "job": self.job,
            "jobUid": self.job_uid,
            "environment": self.environment,
            "input": self.input,
            "files": [{"bx": bx, "local": local} for bx, local in self.files],
            "inputFiles": [
                {"pointer": list(pointer), "local": local} for pointer, local in self.input_files
            ],
            "outputSchema": self.output_schema,
            "outputFiles": self.output_files,
            "outputPrefix": self.output_prefix,
            "resultPath": self.result_path,
            "timeout": self.timeout,
        }

    @classmethod
    def from_json(cls, data: Any) -> StagingPlan:
        """The plan in `data`; `PlanError` when it is not one this runner reads."""
        if not isinstance(data, dict) or data.get("version") != PLAN_VERSION:
            version = data.get("version") if isinstance(data, dict) else None
            raise PlanError(f"unsupported staging plan version {version!r}")
        try:
            return cls(
                job=str(data["job"]),
                job_uid=str(data.get("jobUid") or ""),
                environment=str(data["environment"]),
                input=dict(data["input"]),
                files=tuple((str(f["bx"]), str(f["local"])) for f in data["files"]),
                input_files=tuple(
                    (tuple(f["pointer"]), str(f["local"])) for f in data["inputFiles"]
                ),
                output_schema=dict(data["outputSchema"]),
                output_files=bool(data.get("outputFiles", True)),
                output_prefix=str(data["outputPrefix"]),
                result_path=str(data["resultPath"]),
                timeout=int(data.get("timeout") or 0),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise PlanError(f"the staging plan is incomplete: {type(err).__name__}: {err}") from err

    def dumps(self) -> str:
        """The plan as ``plan.json`` holds it."""
        return json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))

    @classmethod
    def load(cls, path: Path) -> StagingPlan:
        try:
            data = json.loads(path.read_text())
        except (OSError, ValueError) as err:
            raise PlanError(f"the staging plan cannot be read: {err}") from err
        return cls.from_json(data)


class Outcome(StrEnum):
    """What a runner container reports in its termination message."""

    STAGED = "staged"  # stage-in: every input is in place
    INPUT_FAILED = "input-failed"  # stage-in: a file could not be fetched
    UPLOADED = "uploaded"  # stage-out: output.json read, files uploaded, paths rewritten
    INVALID_OUTPUT = "invalid-output"  # stage-out: output.json unusable (not JSON, bad paths)
    UPLOAD_FAILED = "upload-failed"  # stage-out: the store refused or failed


@dataclass(frozen=True)
class RunnerReport:
    """A runner's termination message (at most 4 KiB; the kubelet truncates beyond that).

    ``output`` holds the rewritten output when it fits; otherwise ``result`` names the store path
    of the full report (`batchx.planning.job_pod.result_path`) and ``digest`` its sha256, which
    the reconciler fetches and passes to `batchx.planning.pod_status.plan_status`.
    """

    outcome: Outcome
    message: str = ""
    output: JSON | None = None
    result: str | None = None
    digest: str | None = None
    files: int = 0
    bytes: int = 0

    def to_json(self) -> str:
        data: JSON = {"v": 1, "outcome": self.outcome.value}
        for key in ("message", "output", "result", "digest"):
            value = getattr(self, key)
            if value:
                data[key] = value
        if self.files:
            data |= {"files": self.files, "bytes": self.bytes}
        return json.dumps(data, sort_keys=True, separators=(",", ":"))


def parse_report(text: str | None) -> RunnerReport | None:
    """The report in a termination message, or None when there is none or it is unreadable."""
    if not text:
        return None
    try:
        data = json.loads(text)
        outcome = Outcome(data["outcome"])
    except (ValueError, KeyError, TypeError):
        return None
    output = data.get("output")
    result = data.get("result") if isinstance(data.get("result"), str) else None
    if output is None and outcome is Outcome.UPLOADED and not result:
        output = {}  # `to_json` leaves an empty output out: no output.json is the output {}
    return RunnerReport(
        outcome=outcome,
        message=str(data.get("message") or ""),
        output=output if isinstance(output, dict) else None,
        result=result,
        digest=data.get("digest") if isinstance(data.get("digest"), str) else None,
        files=_count(data.get("files")),
        bytes=_count(data.get("bytes")),
    )


def _count(value: Any) -> int:
    # A count the report cannot hold ("many", [1], 1e400) reads as 0: it only feeds metrics.
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else 0
