"""Environment reconcile: namespace, quota, member RoleBindings, credits, status, Events."""

from __future__ import annotations

from contextlib import suppress
from datetime import UTC, datetime

from batchx import metrics
from batchx.clients.kube import Conflict, NamespaceTerminating, NotFound
from batchx.models import EnvironmentStorage
from batchx.planning import environment as plan
from batchx.planning.environment import (
    Action,
    Apply,
    EnvironmentObject,
    NamespaceVerdict,
    Observed,
)
from batchx.planning.events import involved
from batchx.planning.ledger import credit_totals
from batchx.reconcile import ledger
from batchx.reconcile.context import JSON, Context, Notice, Outcome
from batchx.reconcile.storage import sync_storage

PLURAL = "environments"
TERMINATING_RETRY_SECONDS = 5.0


class NamespaceRace(Exception):
    """The namespace appeared between our read and our create: decide again from scratch."""


async def reconcile_environment(ctx: Context, body: JSON) -> Outcome:
    """Bring one Environment's children and status to the desired state."""
    env = EnvironmentObject.from_body(body)
    async with ctx.locks.hold(f"environment/{env.name}"):
        with metrics.timed("environment"):
            return await _reconcile(ctx, env)


async def refresh_credits(ctx: Context, name: str) -> Outcome:
    """After one of its jobs changed: the Environment's credits and job counts, nothing else.

    A job's change moves a reservation or a charge, never the Environment's children
    (namespace, quota, role bindings, store Secret) nor, until its own resync, its storage
    figures: re-reading all of them on every job event cost eight API requests and a store
    scan per pass, which at thousands of jobs kept the operator busy with Environments. They
    stay with the Environment's own reconcile (create, update, resume, every resyncSeconds).
    An Environment whose namespace is not ready yet gets that full reconcile instead. The
    status is written only when the credits changed.
    """
    async with ctx.locks.hold(f"environment/{name}"):
        # Read under the lock: a full reconcile that just wrote a new grant is seen.
        body = await ctx.kube.get_cluster_object(PLURAL, name)
        if body is None or body.get("metadata", {}).get("deletionTimestamp"):
            return Outcome()
        env = EnvironmentObject.from_body(body)
        if env.status.namespace == env.name:
            jobs, records = await ledger.settle(ctx, env.name, label=True, fresh=False)
            metrics.count_jobs(env.name, await ledger.job_states(ctx, env.name, jobs))
            credits = credit_totals(env.model.spec.credits, jobs, records).to_model()
            for kind, value in credits.to_json().items():
                metrics.CREDITS.labels(env.name, kind).set(value)
            if credits == env.status.credits:
                return Outcome()
            with suppress(NotFound):  # deleted meanwhile: nothing left to report on
                await ctx.kube.patch_cluster_status(
                    PLURAL, env.name, {"credits": credits.to_json()}
                )
                if (last := ctx.written.get(_key(env))) is not None:  # what `_news` compares
                    ctx.written[_key(env)] = {**last, "credits": credits.to_json()}
            return Outcome()
    return await reconcile_environment(ctx, body)


async def _reconcile(ctx: Context, env: EnvironmentObject) -> Outcome:
    outcome = Outcome()
    kube = ctx.kube
    namespace = await kube.get_namespace(env.name)
    verdict = plan.judge_namespace(namespace, env)
    totals = credit_totals(env.model.spec.credits, [], [])
    storage: EnvironmentStorage | None = None
    if verdict in (NamespaceVerdict.ABSENT, NamespaceVerdict.OURS):
        if plan.is_new(env):
            try:  # a new Environment: say it is being set up before doing it
                status = plan.setting_up_status(env, datetime.now(UTC))
                await kube.patch_cluster_status(PLURAL, env.name, status.to_json())
            except NotFound:
                return Outcome()
        observed = Observed(
            namespace=namespace,
            quota=await kube.get_resource_quota(env.name, plan.QUOTA_NAME) if namespace else None,
            role_bindings=(
                await kube.list_role_bindings(env.name, plan.child_selector(env.name))
                if namespace
                else []
            ),
            store_secret=(
                await kube.get_secret(env.name, ctx.settings.store_secret) if namespace else None
            ),
            reader_role=await kube.get_cluster_role(plan.reader_name(env.name)),
            reader_binding=await kube.get_cluster_role_binding(plan.reader_name(env.name)),
        )
        secret = (ctx.settings.store_secret, ctx.store_credentials)
        try:
            for action in plan.plan_children(
                env, observed, ctx.settings.pod_security_level, secret
            ):
                await _execute(ctx, action)
                outcome.notices.append(Notice(_ref(env), "Normal", action.reason, action.message))
        except NamespaceTerminating:
            # The namespace began terminating since we read it (the Environment is being
            # deleted, or someone deleted the namespace): judged again on the next pass.
            verdict = NamespaceVerdict.TERMINATING
        else:
            verdict = NamespaceVerdict.OURS  # made (or kept) ours above
    if verdict is NamespaceVerdict.OURS:
        jobs, records = await ledger.settle(ctx, env.name, label=True)
        metrics.count_jobs(env.name, await ledger.job_states(ctx, env.name, jobs))
        totals = credit_totals(env.model.spec.credits, jobs, records)
        quota = env.model.spec.quota
        storage = await sync_storage(ctx, env.name, quota.storage if quota else None)
    if verdict is NamespaceVerdict.TERMINATING:
        outcome.retry_after = TERMINATING_RETRY_SECONDS
        outcome.retry_reason = f"namespace {env.name} is terminating"

    ready = plan.readiness(env, verdict)
    status = plan.plan_status(env, ready, totals, storage, datetime.now(UTC))
    patch = status.to_json()
    if _news(ctx, env, patch):
        written = dict(patch)
        patch.setdefault("namespace", None)  # merge patch: an absent key would keep a stale value
        try:
            await kube.patch_cluster_status(PLURAL, env.name, patch)
        except NotFound:
            return Outcome()  # deleted meanwhile: nothing left to report on
        ctx.written[_key(env)] = written
    for kind, value in patch.get("credits", {}).items():
        metrics.CREDITS.labels(env.name, kind).set(value)
    if storage is not None:
        metrics.STORAGE_BYTES.labels(env.name).set(storage.used_bytes)
    if plan.ready_changed(env, ready):
        kind = "Normal" if ready.status.value == "True" else "Warning"
        outcome.notices.append(Notice(_ref(env), kind, ready.reason, ready.message))
    return outcome


async def _execute(ctx: Context, action: Action) -> None:
    kube = ctx.kube
    if isinstance(action, Apply):
        kind = action.body["kind"]
        if kind == "Namespace" and action.reason == "NamespaceCreated":
            try:
                # A plain create, never an apply: apply would adopt a namespace someone else
                # created since we looked, and a foreign namespace must stay untouched.
                await kube.create_namespace(action.body)
            except Conflict as exc:
                raise NamespaceRace(
                    f"namespace {action.body['metadata']['name']} appeared"
                ) from exc
        elif kind == "Namespace":
            await kube.apply_namespace(action.body)
        elif kind == "ResourceQuota":
            await kube.apply_resource_quota(action.body)
        elif kind == "RoleBinding":
            await kube.apply_role_binding(action.body)
        elif kind == "Secret":
            await kube.apply_secret(action.body)
        elif kind == "ClusterRole":
            await kube.apply_cluster_role(action.body)
        elif kind == "ClusterRoleBinding":
            await kube.apply_cluster_role_binding(action.body)
        else:  # pragma: no cover - the planner only plans the kinds above
            raise ValueError(f"cannot apply {kind}")
    elif action.kind == "ResourceQuota":
        await kube.delete_resource_quota(action.namespace, action.name)
    elif action.kind == "Secret":
        await kube.delete_secret(action.namespace, action.name)
    else:
        await kube.delete_role_binding(action.namespace, action.name)


def _news(ctx: Context, env: EnvironmentObject, status: JSON) -> bool:
    """Whether `status` differs from the Environment's: an unchanged one is not written again
    (every job event refreshes its Environment, and a restart brings one event per job).

    The body read may predate this process's last write (a handler's body waits for the lock):
    it is trusted only when it shows what was last written, or nothing was written since start.
    """
    observed = env.model.status.to_json() if env.model.status is not None else None
    last = ctx.written.get(_key(env))
    return status != observed or (last is not None and last != status)


def _key(env: EnvironmentObject) -> str:
    return f"environment/{env.name}/{env.uid}"


def _ref(env: EnvironmentObject) -> JSON:
    return involved("Environment", env.name, env.uid)
