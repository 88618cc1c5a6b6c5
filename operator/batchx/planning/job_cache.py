"""Execution caching: what identifies a job's result, and which earlier job can serve it.

A job's result is a function of the container it runs and of the bytes it reads, nothing else
(BRIEF section 7), so the cache key is a digest of exactly those, taken at admission:

    sha256(canonical_json({
        "v": CACHE_KEY_VERSION,                # this scheme; raised if the key's shape changes
        "image": "sha256:<hex>",               # the digest of the pinned container (status.image)
        "manifest": "sha256:<hex>",            # sha256 of the Image's manifest, canonical JSON
        "cacheVersion": manifest.cacheVersion, # the author's knob (null when absent)
        "input": spec.input with each `format: file` value replaced by its content digest,
    }))

- A file is replaced by ``"sha256:<hex>"`` of its content, a folder (a value ending in ``/``) by
  ``"folder:sha256:<hex>"``, the sha256 of the canonical JSON list of ``[relative path, content
  digest, size]`` of the files under it, sorted by path. The digests come from the environment's
  index (the store hashed every blob when it was written), so no byte is read, a copy of the same
  data under another path gives the same key, and new data under the same path cannot happen
  (paths are immutable). Peers that key on a path, a URI or an mtime get both wrong.
- The image is its digest, never the reference string: a moved tag cannot serve a stale result.
  A job whose container is not digest-pinned (an admin allowed tags) has no key and never caches.
- The whole manifest is part of it (its output schema and warning codes decide the state and the
  output), and ``cacheVersion`` (an optional top-level manifest field, any JSON value) is the one
  an author bumps, in a new Image version, when results change for a reason the container digest
  does not show (a reference database fetched at run time).
- Resources (``vcpus``, ``memory``, ``gpus``, ``gpuType``, ``timeout``) are not part of it: they
  decide how fast and whether a job runs, not what a correct tool computes (BatchX serves a job
  from a run with other resources too). A tool whose output depends on ``BX_VCPUS`` is not
  reproducible; its users set ``cache: false``.

Canonical JSON: keys sorted, no whitespace, UTF-8 (``ensure_ascii=False``), numbers as Python's
``json`` writes the values the API server returned. `tests/unit/test_planning_job_cache.py` pins
the key of one job, so an accidental change of this definition fails there.

Which jobs serve (`entries`): finished ``SUCCEEDED`` or ``WARNING`` jobs of the same namespace
whose ``status.admission.cacheKey`` is the key, that computed their result themselves (a served
job is not an entry: the job that computed it is), and are not being deleted, newest first. They
are read from the list of the environment's jobs the admission pass reads anyway (no extra call,
no ConfigMap, no second record that an operator killed at the wrong line could lose): an entry
lives exactly as long as its Job.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from batchx.domain.validation import FileRef, rewrite_files
from batchx.models import (
    ConditionStatus,
    Job,
    JobAdmission,
    JobCredits,
    JobState,
    JobStatus,
)
from batchx.planning.conditions import set_condition
from batchx.planning.job_admission import SUCCEEDED_CONDITION, Request
from batchx.planning.job_pod import output_prefix

__all__ = [
    "CACHED_REASON",
    "CACHE_KEY_VERSION",
    "Candidate",
    "cache_key",
    "cached_status",
    "canonical_json",
    "entries",
    "folder_digest",
    "image_digest",
    "output_paths",
    "rewrite_output",
    "running_twin",
]

CACHE_KEY_VERSION = 1
CACHED_REASON = "Cached"
_DIGEST = re.compile(r"@(sha256:[0-9a-f]{64})$")
_SERVING = frozenset({JobState.SUCCEEDED, JobState.WARNING})


def canonical_json(value: Any) -> bytes:
    """The one serialisation keys are computed over (see the module docstring)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def image_digest(container: str | None) -> str | None:
    """``sha256:<hex>`` of a digest-pinned container reference, None for a tag."""
    match = _DIGEST.search(container or "")
    return match.group(1) if match else None


def folder_digest(files: Iterable[tuple[str, str, int]]) -> str:
    """The content digest of a folder: its files' (relative path, blob digest hex, size)."""
    listing = sorted([path, "sha256:" + digest, size] for path, digest, size in files)
    return "folder:" + _sha256(canonical_json(listing))


def cache_key(
    *,
    container: str | None,
    manifest: Mapping[str, Any],
    input: Mapping[str, Any],
    files: Sequence[FileRef],
    digests: Mapping[str, str],
) -> str | None:
    """The key of a job (module docstring); None when it has none.

    `digests` maps each file reference's target (the bx:// relative path, a folder ending in
    ``/``) to ``sha256:<hex>`` or a `folder_digest`. A target without one (not in the index,
    or the store could not be read) leaves the job without a key: it runs, uncached.
    """
    image = image_digest(container)
    if image is None or any(ref.target not in digests for ref in files):
        return None
    document = {
        "v": CACHE_KEY_VERSION,
        "image": image,
        "manifest": _sha256(canonical_json(manifest)),
        "cacheVersion": manifest.get("cacheVersion"),
        "input": rewrite_files(dict(input), files, lambda ref: digests[ref.target]),
    }
    return _sha256(canonical_json(document))


# ------------------------------------------------------------------------------ entries


@dataclass(frozen=True)
class Candidate:
    """What the cache reads of one Job of the environment."""

    name: str
    state: JobState | None
    key: str | None
    cached: bool
    deleting: bool
    finished: datetime | None
    status: JobStatus

    @classmethod
    def of(cls, name: str, status: JobStatus, *, deleting: bool) -> Candidate:
        admission = status.admission
        return cls(
            name,
            status.state,
            admission.cache_key if admission else None,
            bool(status.cached),
            deleting,
            status.finished_at,
            status,
        )


def entries(key: str, jobs: Iterable[Candidate]) -> list[Candidate]:
    """The jobs that may serve `key`, newest result first (see the module docstring)."""
    found = [
        j for j in jobs if j.key == key and j.state in _SERVING and not j.cached and not j.deleting
    ]
    return sorted(found, key=lambda j: (j.finished is not None, j.finished, j.name), reverse=True)


def running_twin(key: str, jobs: Iterable[Candidate]) -> str | None:
    """An admitted, unfinished job computing `key` (the oldest by name if several), or None."""
    twins = sorted(
        j.name
        for j in jobs
        if j.key == key
        and j.state is not None
        and j.state not in (JobState.SUBMITTED, JobState.QUEUED)
        and not j.state.is_terminal
        and not j.deleting
    )
    return twins[0] if twins else None


# ------------------------------------------------------------------------------- serving


def output_paths(output: Any, original: str) -> list[str]:
    """The bx:// relative paths under the original's output folder that `output` names."""
    prefix = "bx://" + output_prefix(original)
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, str) and value.startswith(prefix):
            found.append(value[len("bx://") :])
        elif isinstance(value, Mapping):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(output)
    return found


def rewrite_output(output: Any, original: str, job: str) -> Any:
    """`output` with the original's output paths moved to `job`'s (the aliases' paths)."""
    old, new = "bx://" + output_prefix(original), "bx://" + output_prefix(job)
    if isinstance(output, str):
        return new + output[len(old) :] if output.startswith(old) else output
    if isinstance(output, Mapping):
        return {k: rewrite_output(v, original, job) for k, v in output.items()}
    if isinstance(output, list):
        return [rewrite_output(v, original, job) for v in output]
    return output


def cached_status(
    job: Job,
    request: Request,
    original: Candidate,
    *,
    key: str,
    name: str,
    generation: int,
    now: datetime,
) -> JobStatus:
    """The final status of a job served from `original`: its state, output (paths moved to
    this job's aliases), exit code and message; ``cached``, ``cachedFrom``, nothing reserved or
    charged, no pod. The admission record keeps the key and what the job would have held."""
    previous = job.status or JobStatus()
    served = original.status
    state = served.state or JobState.SUCCEEDED
    finished = served.finished_at.isoformat() if served.finished_at else "earlier"
    message = f"served from the result of job {original.name} (finished {finished}): no pod ran"
    return JobStatus(
        state=state,
        image=request.image,
        admission=JobAdmission(
            resources=request.resources.to_model(),
            rate=float(request.rate),
            cache_key=key,
            admitted_at=now,
        ),
        output=rewrite_output(served.output, original.name, name),
        exit_code=served.exit_code,
        message=served.message,
        cached=True,
        cached_from=original.name,
        credits=JobCredits(reserved=0, charged=0),
        finished_at=now,
        conditions=set_condition(
            previous.conditions,
            type=SUCCEEDED_CONDITION,
            status=ConditionStatus.TRUE,
            reason=CACHED_REASON,
            message=message,
            generation=generation,
            now=now,
        ),
        observed_generation=generation,
    )
