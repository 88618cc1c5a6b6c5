"""A pipeline job's life around its pod: its identity before, its children after.

- Before its pod: the job's ServiceAccount and RoleBinding (`batchx.planning.job_identity`),
  applied idempotently (server-side apply), so an operator killed in between applies them again.
- When it ends, or is being cancelled: its ServiceAccount is deleted, so its token stops working
  (the API server refuses a token whose ServiceAccount is gone, within the 10 s it caches a
  successful authentication), and each of its
  children that is still waiting or running is cancelled (``spec.cancel``: the children's own
  reconcile stops them and charges them as any cancelled job). Both happen *before* the
  parent's final status is written, so an operator killed between the two does them again on
  the next pass (each is idempotent); after the write the parent is finished and never looked
  at again. The RoleBinding goes with the Job (ownerReference): without its ServiceAccount it
  grants nothing.
- Whenever a child's state changes (`batchx.reconcile.job_status.write_status` notes its
  parent in the `Outcome`), the parent's ``status.children`` is recomputed from a fresh list of
  its children and written with the parent's resourceVersion (a concurrent write makes it read
  and count again), so the summary is never older than the last change it saw.
"""

from __future__ import annotations

import logging

from batchx.clients.kube import Conflict, NotFound
from batchx.planning import labels
from batchx.planning.job_identity import PIPELINE, JobOwner
from batchx.planning.job_pod import JobRef
from batchx.planning.pipeline import children_summary
from batchx.reconcile.context import JSON, Context, Outcome
from batchx.reconcile.job_status import PLURAL, JobRead

logger = logging.getLogger(__name__)

__all__ = ["finish", "prepare", "summarise", "with_identity"]

_ATTEMPTS = 3


def _owner(ref: JobRef) -> JobOwner:
    return JobOwner(ref.name, ref.namespace, ref.uid)


async def prepare(ctx: Context, ref: JobRef) -> None:
    """The pipeline's ServiceAccount and RoleBinding, before its pod (which names them)."""
    owner = _owner(ref)
    await ctx.kube.apply_service_account(PIPELINE.service_account(owner))
    await ctx.kube.apply_role_binding(PIPELINE.role_binding(owner))


def with_identity(pod: JSON, ref: JobRef, container: str) -> JSON:
    """The pipeline's pod running as its identity, the token in `container` only."""
    return PIPELINE.with_token(pod, _owner(ref), container)


async def finish(ctx: Context, ref: JobRef) -> int:
    """Revoke the pipeline's identity and cancel its unfinished children; how many."""
    await ctx.kube.delete_service_account(ref.namespace, PIPELINE.name(ref.name))
    children = await ctx.kube.list_objects(PLURAL, ref.namespace, f"{labels.PARENT}={ref.name}")
    cancelled = 0
    for body in children:
        child = JobRead(body)
        owned = any(o.get("uid") == ref.uid for o in child.meta.get("ownerReferences") or [])
        done = child.state is not None and child.state.is_terminal
        if not owned or done or child.model.spec.cancel or child.deleting:
            continue
        try:
            await ctx.kube.patch_spec(PLURAL, ref.namespace, child.name, {"cancel": True})
        except NotFound:
            continue
        cancelled += 1
    if cancelled:
        logger.info(
            "pipeline %s/%s ended: cancelled %d children", ref.namespace, ref.name, cancelled
        )
    return cancelled


async def summarise(ctx: Context, outcome: Outcome) -> None:
    """Bring ``status.children`` of each parent noted in `outcome` up to date."""
    while outcome.parents:
        namespace, name = outcome.parents.pop()
        for _ in range(_ATTEMPTS):
            try:
                await _summarise(ctx, namespace, name)
                break
            except Conflict:
                continue  # the parent changed since it was read: read and count again
            except NotFound:
                break


async def _summarise(ctx: Context, namespace: str, name: str) -> None:
    body = await ctx.kube.get_object(PLURAL, namespace, name)
    if body is None:
        return
    parent = JobRead(body)
    listed = await ctx.kube.list_objects(PLURAL, namespace, f"{labels.PARENT}={name}")
    mine = [
        JobRead(b).status
        for b in listed
        if any(o.get("uid") == parent.ref.uid for o in b["metadata"].get("ownerReferences") or [])
    ]
    summary = children_summary(mine)
    if parent.status.children == summary:
        return
    version = str(parent.meta.get("resourceVersion") or "")
    patch = {"children": summary.to_json()}  # this field only: the rest is the parent's own
    await ctx.kube.patch_status(PLURAL, namespace, name, patch, resource_version=version)
