"""The runner's two steps: stage a job's inputs in, and its outputs out (design: planning.job_pod;
the plan and report: planning.job_protocol).

Both work on local directories and an environment's file system (`EnvFiles`), so they are tested
without a cluster; `batchx.runner.__main__` binds them to the Pod's paths, the plan file, the
store from ``$BATCHX_STORE`` and the termination message.

The plan speaks in container paths (``/batchx/input/files/...``); `Dirs` maps them to wherever
the directories really are, so a test can use temporary directories.

Outputs are read from a directory the user's program controls, so stage-out trusts nothing in it:
symbolic links are never followed (one pointing at ``/proc/self/environ`` would otherwise upload
the runner's own store credentials), and only regular files and directories are uploaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from batchx.domain.paths import BX_SCHEME, BxPathError, parse_bx_path
from batchx.domain.validation import FileMode, FileRef, compile_schema, rewrite_files
from batchx.planning.job_protocol import (
    INPUT_DIR,
    OUTPUT_DIR,
    Outcome,
    RunnerReport,
    StagingPlan,
)
from batchx.runner.output import MAX_MESSAGE_BYTES, read_output
from batchx.store import EnvFiles, StoreError

__all__ = ["MAX_MESSAGE_BYTES", "Dirs", "StageError", "stage_in", "stage_out"]

_WORKERS = 8


class StageError(Exception):
    """A step failed in a way the report explains (message for the job's status)."""


@dataclass(frozen=True)
class Dirs:
    """Where the Pod's ``/batchx/input`` and ``/batchx/output`` really are."""

    input: Path = Path(INPUT_DIR)
    output: Path = Path(OUTPUT_DIR)

    def local_input(self, container_path: str) -> Path:
        relative = PurePosixPath(container_path).relative_to(INPUT_DIR)
        if ".." in relative.parts:
            raise StageError(f"plan path {container_path!r} leaves {INPUT_DIR}")
        return self.input.joinpath(*relative.parts)


# ---------------------------------------------------------------------------------- stage-in


def stage_in(plan: StagingPlan, files: EnvFiles, dirs: Dirs) -> RunnerReport:
    """Download every input file and folder, then write input.json with local paths.

    input.json is written last (atomically), so its presence means every file is in place.
    Raises `StageError` with the missing or unreadable paths.
    """
    jobs: list[tuple[str, Path]] = []
    for bx, container_path in plan.files:
        relative = _bx_relative(bx)
        local = dirs.local_input(container_path)
        if relative.endswith("/"):
            found = [p for p in files.find(relative) if not p.endswith("/")]
            if not found:
                raise StageError(f"{bx}: the folder is empty or does not exist")
            jobs.extend((p, local / p[len(relative) :]) for p in found)
        else:
            jobs.append((relative, local))
    total = 0
    failures: list[str] = []
    with ThreadPoolExecutor(_WORKERS) as pool:
        for relative, result in zip(
            (r for r, _ in jobs), pool.map(lambda job: _download(files, *job), jobs), strict=True
        ):
            if isinstance(result, str):
                failures.append(f"{BX_SCHEME}{relative}: {result}")
            else:
                total += result
    if failures:
        more = f" (and {len(failures) - 5} more)" if len(failures) > 5 else ""
        raise StageError("; ".join(failures[:5]) + more)
    local_input = rewrite_files(plan.input, _pointer_refs(plan), lambda ref: ref.target)
    target = dirs.input / "input.json"
    partial = target.with_suffix(".json.partial")
    partial.write_text(json.dumps(local_input, ensure_ascii=False, separators=(",", ":")))
    partial.replace(target)
    return RunnerReport(Outcome.STAGED, files=len(jobs), bytes=total)


def _bx_relative(bx: str) -> str:
    try:
        return parse_bx_path(bx, allow_dir=True)
    except BxPathError as err:
        raise StageError(f"{bx}: {err.reason}") from None


def _download(files: EnvFiles, relative: str, dest: Path) -> int | str:
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        return files.get_file(relative, dest).size
    except (StoreError, OSError) as err:
        return str(err)


def _pointer_refs(plan: StagingPlan) -> list[FileRef]:
    return [FileRef("", pointer, "", local) for pointer, local in plan.input_files]


# --------------------------------------------------------------------------------- stage-out


def stage_out(plan: StagingPlan, files: EnvFiles, dirs: Dirs) -> RunnerReport:
    """Upload the files output.json lists and report the output with bx:// paths.

    No output.json is an empty output (the operator validates it against the schema). A file
    value that is not a usable path under /batchx/output is left as written: the operator's
    validation reports it with its JSON path. Store failures raise `StageError`.
    """
    document = _read_output(dirs.output / "output.json")
    if isinstance(document, RunnerReport):
        return document
    checked = compile_schema(plan.output_schema).validate(document, FileMode.CONTAINER_OUTPUT)
    uploads: list[tuple[str, Path]] = []
    rewritten_refs: list[FileRef] = []
    for ref in checked.files:
        local = _safe_local(dirs.output, ref.target)
        if isinstance(local, str):
            return RunnerReport(Outcome.INVALID_OUTPUT, message=f"{ref.path}: {local}")
        if local.is_dir():
            found = list(_walk(local))
            uploads.extend((f"{ref.target.rstrip('/')}/{rel}", path) for rel, path in found)
            target = plan.output_prefix + ref.target.rstrip("/") + "/"
        else:
            uploads.append((ref.target, local))
            target = plan.output_prefix + ref.target
        rewritten_refs.append(FileRef(ref.path, ref.pointer, ref.value, BX_SCHEME + target))
    rewritten = {ref.pointer for ref in rewritten_refs}
    for ref in compile_schema(plan.output_schema).validate(document, FileMode.BX).files:
        if ref.pointer not in rewritten:  # a bx:// path the image wrote: no file of its own
            return RunnerReport(
                Outcome.INVALID_OUTPUT,
                message=f"{ref.path}: output file {ref.value[:200]!r} is not under {OUTPUT_DIR}/ "
                "(a bx:// path names a file the job did not write)",
            )
    unique = dict(uploads)  # the same file listed twice is uploaded once
    total = 0
    with ThreadPoolExecutor(_WORKERS) as pool:
        for size in pool.map(lambda item: _upload(files, plan, *item), unique.items()):
            total += size
    output = rewrite_files(document, rewritten_refs, lambda ref: ref.target)
    report = RunnerReport(Outcome.UPLOADED, output=output, files=len(unique), bytes=total)
    if len(report.to_json().encode()) <= MAX_MESSAGE_BYTES:
        return report
    # Too big for a termination message: the full report goes to the store, a pointer here.
    full = report.to_json().encode()
    files.put_bytes(plan.result_path, full, job=plan.job)
    return RunnerReport(
        Outcome.UPLOADED,
        result=plan.result_path,
        digest="sha256:" + hashlib.sha256(full).hexdigest(),
        files=len(unique),
        bytes=total,
    )


def _read_output(path: Path) -> dict[str, Any] | RunnerReport:
    document = read_output(path)
    if isinstance(document, str):
        return RunnerReport(Outcome.INVALID_OUTPUT, message=document)
    return document


def _safe_local(root: Path, relative: str) -> Path | str:
    """The local path of an output, or why it cannot be uploaded (missing, link, special)."""
    path = root
    shown = OUTPUT_DIR
    for part in PurePosixPath(relative).parts:
        path = path / part
        shown = f"{shown}/{part}"
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return f"output file {shown} does not exist"
        if stat.S_ISLNK(mode):
            return f"output {shown} is a symbolic link; only regular files and folders upload"
    if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
        return f"output {shown} is neither a regular file nor a folder"
    return path


def _walk(folder: Path) -> Iterator[tuple[str, Path]]:
    """Regular files under `folder` (relative path, path), links and special files skipped."""
    for current, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(current)
        dirnames.sort()
        for name in sorted(filenames):
            path = base / name
            if stat.S_ISREG(os.lstat(path).st_mode):
                yield path.relative_to(folder).as_posix(), path


def _upload(files: EnvFiles, plan: StagingPlan, relative: str, local: Path) -> int:
    path = plan.output_prefix + relative
    try:
        # Opened without following links: the file could have been swapped for one since.
        fd = os.open(local, os.O_RDONLY | os.O_NOFOLLOW)
        with os.fdopen(fd, "rb", buffering=0) as source:
            report = files.put_stream(path, source, job=plan.job)
    except (StoreError, OSError) as err:
        raise StageError(f"{BX_SCHEME}{path}: {err}") from err
    return report.entry.size
