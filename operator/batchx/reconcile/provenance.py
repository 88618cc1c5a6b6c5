"""Provenance records, bound to the store: made when a job's plan is made, and for aliases.

The record (`batchx.planning.provenance`) names the input files' content digests, read from the
index when the plan is made: the plan ConfigMap is immutable, so the record the runner writes
with each output is the one made here. A store that cannot be read now gives no record and the
pod is not created yet (it could not stage its inputs either): the job's reconcile retries.
"""

from __future__ import annotations

import asyncio
import logging

from batchx.planning.job_admission import Request
from batchx.planning.job_pod import JobRef
from batchx.planning.provenance import job_record
from batchx.reconcile.context import JSON, Context
from batchx.reconcile.storage import content_digests

logger = logging.getLogger(__name__)

__all__ = ["plan_record"]


async def plan_record(ctx: Context, job: JobRef, request: Request) -> JSON | None:
    """The record `job`'s outputs carry; None when the store cannot be read now."""
    targets = {ref.target for ref in request.files}
    store = ctx.store
    inputs: dict[str, str] = {}
    if targets and store is not None:
        try:
            inputs = await asyncio.to_thread(content_digests, store.env(job.namespace), targets)
        except Exception:  # any store failure: no record now, the reconcile retries
            logger.warning("provenance of %s not made: the store failed", job.name)
            return None
    return job_record(job, request.image, inputs)
