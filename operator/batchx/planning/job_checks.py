"""Admission's checks against the world around a job: the environment, the store, the nodes.

`batchx.planning.job_admission` judges a job by its spec and its image alone; these verdicts
need what the reconciler reads besides (pure functions of it, no I/O here):

- the namespace is no ready Environment's: the job waits ``SUBMITTED`` and is told why;
- an input file or folder is not in the environment's store index: refused, with the JSON path
  of each missing value, before any Pod or reservation;
- ``spec.gpuType`` is a GPU product no node offers: refused, naming those offered (the rule is
  in `batchx.planning.job_admission`'s resource rules).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from batchx.domain.validation import FileRef, Problem
from batchx.models import ConditionStatus, Job, JobCredits, JobState, JobStatus
from batchx.planning import labels
from batchx.planning.conditions import set_condition
from batchx.planning.job_admission import SUCCEEDED_CONDITION, Reason, Refusal, Request

__all__ = [
    "missing_files_refusal",
    "no_environment_status",
    "offered_gpu_types",
    "unoffered_gpu_type",
]


def offered_gpu_types(
    nodes: Iterable[Mapping[str, Any]], configured: Iterable[str]
) -> frozenset[str]:
    """The GPU products jobs can ask for: nodes' ``nvidia.com/gpu.product`` plus `configured`."""
    offered = {
        str(label)
        for node in nodes
        if (label := ((node.get("metadata") or {}).get("labels") or {}).get(labels.GPU_PRODUCT))
    }
    return frozenset(offered | set(configured))


def unoffered_gpu_type(request: Request, offered: frozenset[str]) -> Refusal | None:
    """The refusal of a request for a GPU product no node offers (None: fine, or no GPU type)."""
    wanted = request.resources.gpu_type
    if wanted is None or wanted in offered:
        return None
    listed = ", ".join(sorted(offered)[:20])
    return Refusal(
        Reason.INVALID_RESOURCES,
        "$.spec.gpuType",
        f"no node offers gpuType {wanted!r} (nodes labelled {labels.GPU_PRODUCT}={wanted}); the "
        f"GPU types offered are: {listed}",
    )


def missing_files_refusal(environment: str, missing: Sequence[FileRef]) -> Refusal:
    """The refusal of a job whose input names files its environment does not have.

    Its path is the JSON path of the first missing file's value in the Job; every missing file
    is listed (up to ten) with its own, so one fix covers them all.
    """
    problems = [
        Problem(
            ref.path,
            f"{'folder' if ref.target.endswith('/') else 'file'} bx://{ref.target} does not "
            f"exist in environment {environment}",
        ).under("$.spec.input")
        for ref in missing
    ]
    first, rest = problems[0], problems[1:]
    extra = "".join(f"; {p}" for p in rest[:9])
    more = f"; and {len(rest) - 9} more" if len(rest) > 9 else ""
    return Refusal(Reason.INPUT_FILE_NOT_FOUND, first.path, first.message + extra + more)


def no_environment_status(job: Job, namespace: str, *, generation: int, now: datetime) -> JobStatus:
    """SUBMITTED with the reason a job in a namespace no ready Environment owns is not admitted.

    It waits rather than fails: GitOps tools apply a Job and its Environment in any order, and
    the Environment's creation runs admission again. Nothing is resolved, reserved or charged.
    """
    previous = job.status or JobStatus()
    message = (
        f"namespace {namespace} is not the namespace of a ready Environment, so nothing can run "
        f"here: the job waits until the Environment {namespace} exists and is ready (jobs run in "
        "the namespace of the Environment of the same name)"
    )
    return JobStatus(
        state=JobState.SUBMITTED,
        credits=JobCredits(reserved=0, charged=0),
        conditions=set_condition(
            previous.conditions,
            type=SUCCEEDED_CONDITION,
            status=ConditionStatus.UNKNOWN,
            reason=Reason.ENVIRONMENT_NOT_FOUND.value,
            message=message,
            generation=generation,
            now=now,
        ),
        observed_generation=generation,
    )
