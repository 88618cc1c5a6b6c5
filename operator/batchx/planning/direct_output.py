"""The direct path: a job whose output lists no file runs with no stage-out container.

Why: the stage-out sidecar (a Python container) costs a trivial job most of its overhead: the
kubelet creates and starts it before the job's container, and after the job exits runs its
``preStop`` hook, sends it SIGTERM and waits for its report (issue 14 measured a 3x slowdown
against a bare Pod). When the output schema can hold no file (`lists_files` false: no
``format: file`` anywhere in it) there is nothing to upload, only output.json to return, and the
kubelet can return it alone:

- the job's container gets ``terminationMessagePath: /batchx/output/output.json`` and
  ``terminationMessagePolicy: File``. The kubelet bind-mounts a file of its own (mode 0666,
  empty) at that path, over the ``output`` emptyDir (containerd mounts the deeper path last),
  and after the container exits it copies the file's content into the container's
  ``state.terminated.message``. Nothing runs inside the user's image and no credentials are
  added: the Pod references no Secret at all.
- the operator reads that message as output.json (`output_document`) and judges it exactly as
  it judges a stage-out report: the exit code decides first (errorCodes, warningCodes, OOM,
  timeout, cancel are the same code path), then the output schema (``INVALID_OUTPUT``).

The limit, and how the fallback is detected: the kubelet keeps at most **4096 bytes** of a
termination message (the file's last 4096, ``MaxContainerTerminationMessageLength``), and
the message does not say whether it was cut. So a message of 4096 bytes or more cannot be
trusted, and the job ends ``INVALID_OUTPUT`` with a message that names the limit and the
settings that route the image's jobs through the stage-out runner instead (which returns
outputs of any size through the store): ``directOutput: false`` turns the direct path off for
every job, ``directOutputExcept`` lists the base names (``env@name``) of images whose jobs
always get the runner. The job cannot be retried in the same pod (a job never gets a second
pod), so the fallback is the operator's setting for the next jobs, not a silent re-run.

What differs from the runner path, on purpose:

- an empty output.json is an empty output (``{}``, judged by the schema), as a missing one is:
  the kubelet's file exists from the start, so the two cannot be told apart;
- output.json must be written in place (the kubelet's file is a mount point: replacing it by
  ``rename`` fails with EBUSY, and so does deleting it);
- a failed job's message has no tail of its logs (``FallbackToLogsOnError`` would put the logs
  where the output is expected, and a job that wrote no output.json and exited with a warning
  code could then not be told from one whose output.json is broken): ``bx logs`` shows them.

Whether a Pod is on the direct path is read from the Pod itself (`is_direct`: the job
container's ``terminationMessagePath``), never from the operator's settings of the moment, so
a restarted operator with other settings judges each running pod by how it was made.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from batchx.runner.output import parse_output

__all__ = [
    "MAX_DIRECT_BYTES",
    "OUTPUT_FILE",
    "direct_container_fields",
    "is_direct",
    "output_document",
    "uses_direct_output",
]

OUTPUT_FILE = "/batchx/output/output.json"
# The kubelet's MaxContainerTerminationMessageLength: it reads at most this much of the file.
MAX_DIRECT_BYTES = 4096
_JOB_CONTAINER = "job"


def uses_direct_output(
    *, lists_files: bool, coordinates: str | None, enabled: bool, except_images: Collection[str]
) -> bool:
    """Whether a job's Pod gets no stage-out container: its output can hold no file, the
    operator's ``directOutput`` is on and the image's base name is not in ``directOutputExcept``.
    """
    if lists_files or not enabled:
        return False
    base = (coordinates or "").rsplit(":", 1)[0]
    return base not in except_images


def direct_container_fields() -> dict[str, str]:
    """What the job's container gets on the direct path: output.json is its termination message."""
    return {"terminationMessagePath": OUTPUT_FILE, "terminationMessagePolicy": "File"}


def is_direct(pod: Mapping[str, Any]) -> bool:
    """Whether `pod` was made for the direct path (its job container reports output.json)."""
    containers = (pod.get("spec") or {}).get("containers") or []
    job = next((c for c in containers if c.get("name") == _JOB_CONTAINER), None)
    return job is not None and job.get("terminationMessagePath") == OUTPUT_FILE


def output_document(message: str) -> dict[str, Any] | str:
    """The output in a direct job's termination message, or why it cannot be used."""
    size = len(message.encode())
    if size >= MAX_DIRECT_BYTES:
        return (
            f"{OUTPUT_FILE} is {MAX_DIRECT_BYTES} bytes or more (the kubelet returned "
            f"{size} bytes): a job whose output lists no file returns output.json through the "
            f"kubelet's termination message, which keeps at most {MAX_DIRECT_BYTES} bytes, so "
            "this output may be cut; the operator's directOutputExcept (the image's base name, "
            "env@name) or directOutput: false sends such jobs through the stage-out runner, "
            "which returns outputs of any size"
        )
    if not message.strip():
        return {}  # empty or never written (the kubelet's file is there from the start)
    return parse_output(message)
