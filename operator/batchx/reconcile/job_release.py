"""A deleted Job's release (its finalizer): its pod stopped, then its files removed.

Why a module of its own: a deletion is the end of a job's life, not a step of its reconcile
(`batchx.reconcile.job`), and it acts only for the Job of one uid, whatever else runs under
the name now; it shares only the job's lock key and the pod's stop grace with the reconcile.
"""

from __future__ import annotations

from batchx.planning.job_pod import JobRef, job_files, owned_by, pod_name
from batchx.planning.pod_view import pod_finished
from batchx.reconcile.context import Context, Outcome
from batchx.reconcile.job import STOP_GRACE_SECONDS, STORE_RETRY_SECONDS, grace_left, job_key
from batchx.reconcile.job_status import PLURAL
from batchx.reconcile.storage import remove_files


async def release_job(ctx: Context, namespace: str, name: str, uid: str) -> Outcome:
    """A deleted Job's last step: its pod stopped, then its files removed (`job_files`).

    Held by the Job's finalizer, so the name is free for a new Job only once the old outputs
    are gone: a Job re-created under a finished Job's name (a GitOps replace) writes its own
    outputs to the same stable paths instead of failing on immutable ones. A user who wants to
    keep an output copies it first (``bx cp``: an alias, no bytes copied, no quota). A running
    pod is stopped first, because it could still upload into the folder being emptied.

    Only for the Job of `uid`: a deletion event of an old Job can be delivered again after its
    finalizer is gone (a watch's late or replayed event) while a new Job of the same name runs.
    The old Job's release was then done already, and the pod and files under its name are the
    new Job's (CI once saw such a replay delete a new job's pod after its exit 0: PodLost).
    """
    outcome = Outcome()
    async with ctx.locks.hold(job_key(namespace, name)):
        current = await ctx.kube.get_object(PLURAL, namespace, name)
        if current is None or (current.get("metadata") or {}).get("uid") != uid:
            return outcome  # released before its finalizer went (or bypassed: see _create_pod)
        ctx.wakeups.cancel(job_key(namespace, name))
        ctx.plans.drop(uid)
        pod = await ctx.kube.get_pod(namespace, pod_name(name))
        if pod is not None and not owned_by(pod, JobRef(name, namespace, uid)):
            pod = None  # an older namesake's, left to the garbage collector
        # A finished pod uploads nothing more (the garbage collector removes it with the Job).
        if pod is not None and grace_left(pod) > STOP_GRACE_SECONDS:
            # Deleted now rather than by the garbage collector after the Job: a new Job of
            # the same name then rarely finds it (`owned_by` guards when it does).
            await ctx.kube.delete_pod(namespace, pod_name(name), STOP_GRACE_SECONDS)
        if pod is not None and not pod_finished(pod):
            outcome.retry_after, outcome.retry_reason = 1.0, f"waiting for pod {pod_name(name)}"
            return outcome
        try:
            await remove_files(ctx, namespace, job_files(name))
        except Exception as exc:  # any store failure: keep the finalizer, try again
            if not await _namespace_terminating(ctx, namespace):
                outcome.retry_after = STORE_RETRY_SECONDS
                outcome.retry_reason = f"the files of job {name} could not be removed: {exc}"
    return outcome


async def _namespace_terminating(ctx: Context, namespace: str) -> bool:
    """Whether `namespace` is being deleted (its Environment with it: nothing to hold for)."""
    ns = await ctx.kube.get_namespace(namespace)
    return ns is None or bool((ns.get("metadata") or {}).get("deletionTimestamp"))


__all__ = ["release_job"]
