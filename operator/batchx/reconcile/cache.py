"""Execution caching in the admission pass: serve a job from an identical one, or hold it.

Before the pass asks `admit_fifo` what starts, each valid request gets its cache key
(`batchx.planning.job_cache`; the input files' digests read from the store's index, no byte
read). Then, oldest first:

- a job with ``cache: true`` whose key an entry holds (a finished SUCCEEDED/WARNING job that
  computed it, found by its ``batchx.io/cache-key`` label: `batchx.planning.finished`) is
  served: the entry's output files are named again under ``bx://jobs/<job>/output/`` (index
  entries for the same blobs: no byte copied, no quota, as ``bx cp`` within an environment),
  then one status write finishes it (`cached_status`). No pod, no reservation, no quota or
  credit needed. The entry is used only when every blob its
  output names is still stored with its size (Kubeflow serves results whose artifacts are gone);
  otherwise the next entry is tried, and with none left the job runs.
- a job with ``cache: true`` whose key an admitted, unfinished job computes (or an older request
  of this same pass) waits ``QUEUED`` with ``WaitingForIdenticalJob`` naming it, holding nothing
  and blocking nobody. When that job ends, its end re-runs admission: served if it succeeded,
  run itself if it did not (Flyte's ``cache_serialize``, without a lock object to leak).
- ``cache: false`` always runs; its key is recorded all the same, so its result is an entry.

Every step is safe to repeat: an operator killed after naming the aliases and before the status
write finds the same paths naming the same blobs (unchanged, free) on the next pass. A store that
cannot be read leaves jobs without keys: they run, as they would without caching.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

from batchx.planning.finished import entry_selector
from batchx.planning.job_admission import Reason, Request, Wait, admission_status
from batchx.planning.job_cache import (
    Candidate,
    cache_key,
    cached_status,
    entries,
    output_paths,
    running_twin,
)
from batchx.planning.job_pod import JobRef, output_prefix
from batchx.planning.provenance import served_record
from batchx.reconcile.context import Context, Outcome
from batchx.reconcile.job_status import PLURAL, JobRead, same_wait, write_or_retry
from batchx.reconcile.storage import content_digests
from batchx.store.errors import StoreError
from batchx.store.fs import EnvFiles, NewPath

logger = logging.getLogger(__name__)

__all__ = ["serve_or_hold"]


@dataclass(frozen=True)
class _Step:
    """Where one pass's cache decisions are written and reported."""

    ctx: Context
    namespace: str
    outcome: Outcome
    now: datetime


async def serve_or_hold(
    ctx: Context,
    jobs: list[JobRead],
    requests: dict[str, tuple[JobRead, Request]],
    *,
    namespace: str,
    outcome: Outcome,
    now: datetime,
) -> None:
    """Key every request; serve the hits and hold the twins (both leave `requests`)."""
    step = _Step(ctx, namespace, outcome, now)
    keys = await _keys(ctx, namespace, requests)
    # Grouped once by the keys asked for: a pass over N jobs costs O(N) reads of a body field,
    # and only the jobs with one of those keys get a typed view.
    wanted = {k for k in keys.values() if k is not None}
    known: dict[str, list[Candidate]] = defaultdict(list)
    seen: set[str] = set()
    for j in [*jobs, *await _entries(ctx, namespace, wanted)]:
        if (key := j.cache_key) in wanted and j.ref.uid not in seen:
            seen.add(j.ref.uid)
            known[key].append(Candidate.of(j.name, j.status, deleting=j.deleting))
    leaders: dict[str, str] = {}
    ordered = sorted(requests.values(), key=lambda jr: (jr[1].created, jr[1].name))
    for job, judged in ordered:
        key = keys.get(judged.name)
        if key is None or judged.manifest.manifest.is_pipeline:
            # A pipeline always runs: its children are cached (each by its own key), and its
            # output may name its children's files, which no cache entry of its own would keep.
            continue
        request = dataclasses.replace(judged, cache_key=key)
        requests[request.name] = (job, request)
        if job.model.spec.cache:
            if await _serve_from_any(step, job, request, entries(key, known[key])):
                del requests[request.name]
                continue
            twin = running_twin(key, known[key]) or leaders.get(key)
            if twin is not None:
                del requests[request.name]
                await _hold(step, job, request, twin)
                continue
        leaders.setdefault(key, request.name)


async def _entries(ctx: Context, namespace: str, keys: set[str]) -> list[JobRead]:
    """The finished Jobs labelled with one of `keys` (the API server's label index: one list
    per `_KEYS_PER_LIST` keys, whatever the number of finished jobs). Unfinished jobs, and
    final ones not labelled yet, are in the pass's own listing."""
    ordered = sorted(keys)
    chunks = [ordered[i : i + _KEYS_PER_LIST] for i in range(0, len(ordered), _KEYS_PER_LIST)]
    selectors = [s for c in chunks if (s := entry_selector(c)) is not None]
    listed = await asyncio.gather(
        *(ctx.kube.list_objects(PLURAL, namespace, selector=s) for s in selectors)
    )
    return [JobRead(b) for bodies in listed for b in bodies]


# Keys per label selector (the selector's length stays well under a URL's limits).
_KEYS_PER_LIST = 50


async def _serve_from_any(
    step: _Step, job: JobRead, request: Request, found: list[Candidate]
) -> bool:
    for entry in found:
        if await _serve(step, job, request, entry):
            return True
    return False


async def _hold(step: _Step, job: JobRead, request: Request, twin: str) -> None:
    message = (
        f"waiting for identical job {twin} (same image digest and input content): served from "
        "its result when it succeeds, run if it does not"
    )
    wait = Wait(request, Reason.WAITING_FOR_IDENTICAL_JOB, message, blocking=False)
    status = admission_status(job.model, wait, generation=job.ref.generation, now=step.now)
    if not same_wait(job.status, status):
        await write_or_retry(step.ctx, job, status, step.outcome)


async def _keys(
    ctx: Context, namespace: str, requests: dict[str, tuple[JobRead, Request]]
) -> dict[str, str | None]:
    """Each request's cache key; None where an input file's digest cannot be read now."""
    targets = {t.target for _, r in requests.values() for t in r.files}
    digests: dict[str, str] = {}
    store = ctx.store
    if targets and store is not None:
        try:
            digests = await asyncio.to_thread(content_digests, store.env(namespace), targets)
        except Exception:  # any store failure: no keys for jobs with files; they run
            logger.warning("cache keys of %s not computed: the store failed", namespace)
    return {
        name: cache_key(
            container=r.image.container,
            manifest=r.manifest_document,
            input=job.model.spec.input,
            files=r.files,
            digests=digests,
        )
        for name, (job, r) in requests.items()
    }


async def _serve(step: _Step, job: JobRead, request: Request, entry: Candidate) -> bool:
    """Finish `job` from `entry` if its output files are all still there; False: they are not."""
    needed = output_paths(entry.status.output, entry.name)
    store = step.ctx.store
    if store is not None:
        try:
            aliased = await asyncio.to_thread(
                _alias, store.env(step.namespace), entry.name, job.ref, needed
            )
        except Exception:  # any store failure: do not serve from what cannot be checked
            logger.warning("job %s not served from %s: the store failed", job.name, entry.name)
            return False
        if not aliased:
            return False
    elif needed:
        return False
    status = cached_status(
        job.model,
        request,
        entry,
        key=str(request.cache_key),
        name=job.name,
        generation=job.ref.generation,
        now=step.now,
    )
    await write_or_retry(step.ctx, job, status, step.outcome)
    return True


def _alias(files: EnvFiles, original: str, job: JobRef, needed: list[str]) -> bool:
    """Name the original's output files under `job`'s output folder, each with a record that
    names both jobs (`served_record`); False (nothing named) when a file its output names is
    not in the index, or a blob is gone or of another size."""
    source, target = output_prefix(original), output_prefix(job.name)
    found = list(files.entries(list(files.find(source))))
    paths = {e.path for e in found}
    for path in needed:
        folder = path if path.endswith("/") else path + "/"
        if path not in paths and not any(p.startswith(folder) for p in paths):
            return False
    backend = files.backend
    sizes = files.store.pool.map(lambda e: backend.blob_size(e.digest), found)
    if any(size != e.size for size, e in zip(sizes, found, strict=True)):
        return False
    items = [
        NewPath(
            target + e.path[len(source) :],
            e.digest,
            e.size,
            original,
            served_record(e.provenance, original, job),
        )
        for e in found
    ]
    results = files.add(items) if items else []
    failed = [r for r in results if isinstance(r, StoreError)]
    if failed:  # e.g. a deleted namesake's files at those paths: the job runs (and clears them)
        logger.warning("outputs of %s not aliased for %s: %s", original, job.name, failed[0])
        return False
    return True
