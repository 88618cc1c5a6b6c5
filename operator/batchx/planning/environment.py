"""Environment planning: from an Environment and what exists, the objects it should own.

An Environment owns, in the Namespace of its own name:
- the Namespace itself (owner reference to the Environment, so deleting the Environment lets the
  garbage collector delete the namespace and everything in it), with Pod Security labels;
- the ResourceQuota ``batchx-quota`` from ``spec.quota``;
- one RoleBinding per role in use, ``batchx-<role>`` -> ClusterRole ``batchx-<role>``;
- the Secret ``batchx-store`` (``storeSecret``): the operator's store URL and credentials, read
  by the runner containers of job Pods only (never by the user's container).

A namespace of that name that the Environment does not own is never touched: the plan is then
only a ``Ready=False, NamespaceConflict`` status, re-evaluated on every resync.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from batchx import API_VERSION
from batchx.models import (
    ConditionStatus,
    Environment,
    EnvironmentQuota,
    EnvironmentStatus,
    EnvironmentStorage,
    Member,
    MemberRole,
)
from batchx.planning import labels
from batchx.planning.conditions import find_condition
from batchx.planning.kstatus import READY, Progress, Standing, standard_conditions
from batchx.planning.ledger import Totals

JSON = dict[str, Any]

QUOTA_NAME = "batchx-quota"
ROLE_PREFIX = "batchx-"
RBAC_GROUP = "rbac.authorization.k8s.io"


@dataclass(frozen=True)
class EnvironmentObject:
    """An Environment as read from the API: identity plus the parsed spec and status."""

    name: str
    uid: str
    generation: int
    model: Environment

    @classmethod
    def from_body(cls, body: JSON) -> EnvironmentObject:
        meta = body.get("metadata") or {}
        return cls(
            name=str(meta["name"]),
            uid=str(meta["uid"]),
            generation=int(meta.get("generation") or 0),
            model=Environment.model_validate(
                {"spec": body.get("spec") or {}, "status": body.get("status")}
            ),
        )

    @property
    def status(self) -> EnvironmentStatus:
        return self.model.status or EnvironmentStatus()


def owner_reference(env: EnvironmentObject) -> JSON:
    return {
        "apiVersion": API_VERSION,
        "kind": "Environment",
        "name": env.name,
        "uid": env.uid,
        "controller": True,
        "blockOwnerDeletion": True,
    }


class NamespaceVerdict(StrEnum):
    ABSENT = "Absent"
    OURS = "Ours"
    FOREIGN = "Foreign"
    TERMINATING = "Terminating"


def judge_namespace(observed: JSON | None, env: EnvironmentObject) -> NamespaceVerdict:
    """Whose is the namespace of the environment's name?"""
    if observed is None:
        return NamespaceVerdict.ABSENT
    meta = observed.get("metadata") or {}
    owners = meta.get("ownerReferences") or []
    ours = any(o.get("uid") == env.uid for o in owners)
    if meta.get("deletionTimestamp"):
        # Ours, or left by an earlier Environment of the same name: wait for it to go.
        earlier = any(
            o.get("kind") == "Environment" and o.get("apiVersion", "").startswith("batchx.io/")
            for o in owners
        )
        if ours or earlier:
            return NamespaceVerdict.TERMINATING
    return NamespaceVerdict.OURS if ours else NamespaceVerdict.FOREIGN


def desired_namespace(env: EnvironmentObject, pod_security_level: str) -> JSON:
    """The fields of the Namespace the operator manages (server-side apply body)."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": env.name,
            "labels": {
                labels.MANAGED_BY: labels.MANAGED_BY_VALUE,
                labels.ENVIRONMENT: env.name,
                "pod-security.kubernetes.io/enforce": pod_security_level,
                "pod-security.kubernetes.io/enforce-version": "latest",
                "pod-security.kubernetes.io/audit": pod_security_level,
                "pod-security.kubernetes.io/warn": pod_security_level,
            },
            "ownerReferences": [owner_reference(env)],
        },
    }


def quota_hard(quota: EnvironmentQuota | None) -> dict[str, str]:
    """ResourceQuota `hard` from spec.quota; absent fields are unlimited (no key).

    ``jobs`` limits pods: a ResourceQuota counts only non-terminal pods, i.e. running jobs.
    ``storage`` is the file system's, enforced by the content store, not by Kubernetes.
    """
    if quota is None:
        return {}
    hard: dict[str, str] = {}
    if quota.cpu is not None:
        hard["requests.cpu"] = str(quota.cpu)
    if quota.memory is not None:
        hard["requests.memory"] = str(quota.memory)
    if quota.gpus is not None:
        hard["requests.nvidia.com/gpu"] = str(quota.gpus)
    if quota.jobs is not None:
        hard["pods"] = str(quota.jobs)
    return hard


def desired_quota(env: EnvironmentObject) -> JSON | None:
    hard = quota_hard(env.model.spec.quota)
    if not hard:
        return None
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": {
            "name": QUOTA_NAME,
            "namespace": env.name,
            "labels": _child_labels(env),
            "ownerReferences": [owner_reference(env)],
        },
        "spec": {"hard": hard},
    }


def _child_labels(env: EnvironmentObject) -> dict[str, str]:
    return {labels.MANAGED_BY: labels.MANAGED_BY_VALUE, labels.ENVIRONMENT: env.name}


def child_selector(env_name: str) -> str:
    """Selects the RoleBindings (and quota) the operator made for an environment."""
    return f"{labels.MANAGED_BY}={labels.MANAGED_BY_VALUE},{labels.ENVIRONMENT}={env_name}"


def cluster_role(role: MemberRole) -> str:
    return ROLE_PREFIX + role.value


def _subject(member: Member) -> JSON:
    return {"kind": member.kind.value, "apiGroup": RBAC_GROUP, "name": member.name}


def desired_role_bindings(env: EnvironmentObject) -> list[JSON]:
    """One RoleBinding per role that has members, subjects sorted for a stable comparison."""
    bindings = []
    for role in MemberRole:
        members = [m for m in env.model.spec.members if m.role == role]
        if not members:
            continue
        subjects = sorted((_subject(m) for m in members), key=lambda s: (s["kind"], s["name"]))
        bindings.append(
            {
                "apiVersion": f"{RBAC_GROUP}/v1",
                "kind": "RoleBinding",
                "metadata": {
                    "name": cluster_role(role),
                    "namespace": env.name,
                    "labels": _child_labels(env),
                    "ownerReferences": [owner_reference(env)],
                },
                "roleRef": {
                    "apiGroup": RBAC_GROUP,
                    "kind": "ClusterRole",
                    "name": cluster_role(role),
                },
                "subjects": subjects,
            }
        )
    return bindings


def reader_name(env_name: str) -> str:
    """The ClusterRole and ClusterRoleBinding letting an environment's members read it."""
    return f"{ROLE_PREFIX}env-{env_name}"


def desired_reader(env: EnvironmentObject) -> tuple[JSON, JSON]:
    """Every member may `get` (and watch) their own Environment, and no other.

    An Environment is cluster-scoped, so a namespace's RoleBindings cannot grant it: one
    ClusterRole limited by `resourceNames` to this Environment, bound to all its members, and
    owned by the Environment (garbage-collected with it). `bx env` reads credits and quota here.
    """
    name = reader_name(env.name)
    meta = {"name": name, "labels": _child_labels(env), "ownerReferences": [owner_reference(env)]}
    role = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRole",
        "metadata": meta,
        "rules": [
            {
                "apiGroups": ["batchx.io"],
                "resources": ["environments"],
                "resourceNames": [env.name],
                "verbs": ["get", "watch"],
            }
        ],
    }
    subjects = sorted(
        {(m.kind.value, m.name): _subject(m) for m in env.model.spec.members}.values(),
        key=lambda s: (s["kind"], s["name"]),
    )
    binding = {
        "apiVersion": f"{RBAC_GROUP}/v1",
        "kind": "ClusterRoleBinding",
        "metadata": meta,
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": name},
        "subjects": subjects,
    }
    return role, binding


def desired_store_secret(
    env: EnvironmentObject, name: str, credentials: Mapping[str, str]
) -> JSON | None:
    """The Secret job Pods' runner containers load (``envFrom``); None without a store."""
    if not credentials:
        return None
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {
            "name": name,
            "namespace": env.name,
            "labels": _child_labels(env),
            "ownerReferences": [owner_reference(env)],
        },
        "type": "Opaque",
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in sorted(credentials.items())},
    }


# -- actions ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Apply:
    """Create or update `body` (server-side apply; Namespace creation is a plain create)."""

    body: JSON
    reason: str
    message: str


@dataclass(frozen=True)
class Delete:
    kind: str
    namespace: str
    name: str
    reason: str
    message: str


Action = Apply | Delete


@dataclass(frozen=True)
class Observed:
    """What the reconciler read before planning."""

    namespace: JSON | None
    quota: JSON | None = None
    role_bindings: list[JSON] = field(default_factory=list)
    store_secret: JSON | None = None
    reader_role: JSON | None = None
    reader_binding: JSON | None = None


def _subset_differs(desired: JSON, observed: JSON | None, keys: tuple[str, ...]) -> bool:
    if observed is None:
        return True
    return any(desired.get(k) != observed.get(k) for k in keys)


def _namespace_drifted(desired: JSON, observed: JSON) -> bool:
    meta = observed.get("metadata") or {}
    have = meta.get("labels") or {}
    want = desired["metadata"]["labels"]
    if any(have.get(k) != v for k, v in want.items()):
        return True
    owners = meta.get("ownerReferences") or []
    return desired["metadata"]["ownerReferences"][0] not in owners


def plan_children(
    env: EnvironmentObject,
    observed: Observed,
    pod_security_level: str,
    store_secret: tuple[str, Mapping[str, str]] | None = None,
) -> list[Action]:
    """The writes that bring the environment's children to the desired state (none if there)."""
    actions: list[Action] = []
    ns = desired_namespace(env, pod_security_level)
    if observed.namespace is None:
        actions.append(Apply(ns, "NamespaceCreated", f"created namespace {env.name}"))
    elif _namespace_drifted(ns, observed.namespace):
        actions.append(
            Apply(ns, "NamespaceUpdated", f"set labels and owner of namespace {env.name}")
        )

    quota = desired_quota(env)
    if quota is not None:
        if _subset_differs(quota["spec"], (observed.quota or {}).get("spec"), ("hard",)):
            hard = ", ".join(f"{k}={v}" for k, v in sorted(quota["spec"]["hard"].items()))
            actions.append(Apply(quota, "QuotaApplied", f"resource quota set to {hard}"))
    elif observed.quota is not None:
        actions.append(
            Delete("ResourceQuota", env.name, QUOTA_NAME, "QuotaRemoved", "no quota: unlimited")
        )

    wanted = {b["metadata"]["name"]: b for b in desired_role_bindings(env)}
    have = {b["metadata"]["name"]: b for b in observed.role_bindings}
    for name, binding in wanted.items():
        if _subset_differs(binding, have.get(name), ("subjects", "roleRef")):
            who = ", ".join(f"{s['kind']} {s['name']}" for s in binding["subjects"])
            actions.append(Apply(binding, "MembersApplied", f"{name}: {who}"))
    for name in sorted(have.keys() - wanted.keys()):
        actions.append(
            Delete("RoleBinding", env.name, name, "MembersRemoved", f"{name}: no members left")
        )
    role, binding = desired_reader(env)
    if _subset_differs(role, observed.reader_role, ("rules",)):
        actions.append(Apply(role, "ReaderRoleApplied", f"members may read Environment {env.name}"))
    if _subset_differs(binding, observed.reader_binding, ("subjects", "roleRef")):
        count = len(binding["subjects"])
        actions.append(
            Apply(binding, "ReadersApplied", f"{count} member(s) may read Environment {env.name}")
        )
    if store_secret is not None:
        secret_name, credentials = store_secret
        secret = desired_store_secret(env, secret_name, credentials)
        if secret is not None:
            if _subset_differs(secret, observed.store_secret, ("data",)):
                # The message names the keys only: Events are readable by every member.
                keys = ", ".join(sorted(credentials))
                actions.append(
                    Apply(secret, "StoreSecretApplied", f"{secret_name}: store access ({keys})")
                )
        elif observed.store_secret is not None:
            actions.append(
                Delete("Secret", env.name, secret_name, "StoreSecretRemoved", "no store configured")
            )
    return actions


# -- status ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Readiness:
    status: ConditionStatus
    reason: str
    message: str
    progress: Progress  # a conflict needs someone to act (Stalled), a terminating namespace not

    @property
    def standing(self) -> Standing:
        return Standing(self.progress, self.reason, self.message)


def readiness(env: EnvironmentObject, verdict: NamespaceVerdict) -> Readiness:
    if verdict is NamespaceVerdict.FOREIGN:
        return Readiness(
            ConditionStatus.FALSE,
            "NamespaceConflict",
            f"namespace {env.name} already exists and is not owned by this Environment; "
            "nothing was changed (delete or rename it, or rename the Environment)",
            Progress.STALLED,
        )
    if verdict is NamespaceVerdict.TERMINATING:
        return Readiness(
            ConditionStatus.FALSE,
            "NamespaceTerminating",
            f"namespace {env.name} is being deleted; waiting for it to go",
            Progress.RECONCILING,
        )
    return Readiness(
        ConditionStatus.TRUE, "Reconciled", f"namespace {env.name} is ready", Progress.CURRENT
    )


def plan_status(
    env: EnvironmentObject,
    ready: Readiness,
    totals: Totals | None,
    storage: EnvironmentStorage | None,
    now: datetime,
) -> EnvironmentStatus:
    """The whole status: Ready, namespace, credits and storage (kept when not observed)."""
    previous = env.status
    owned = ready.status is ConditionStatus.TRUE
    return EnvironmentStatus(
        namespace=env.name if owned else None,
        credits=totals.to_model() if totals is not None else previous.credits,
        storage=storage or previous.storage or EnvironmentStorage(),
        conditions=standard_conditions(
            previous.conditions, ready.standing, generation=env.generation, now=now
        ),
        observed_generation=env.generation,
    )


def is_new(env: EnvironmentObject) -> bool:
    """Whether the Environment was never reconciled (it has no Ready condition yet)."""
    return find_condition(env.status.conditions, READY) is None


def setting_up_status(env: EnvironmentObject, now: datetime) -> EnvironmentStatus:
    """What a new Environment shows while its namespace and children are created: without it
    the Environment would have no status until it is ready, and kstatus reads an object with no
    conditions as Current."""
    previous = env.status
    message = f"creating namespace {env.name}, its quota and role bindings"
    return previous.model_copy(
        update={
            "conditions": standard_conditions(
                previous.conditions,
                Standing(Progress.RECONCILING, "SettingUp", message),
                generation=env.generation,
                now=now,
            ),
            "observed_generation": env.generation,
        }
    )


def ready_changed(env: EnvironmentObject, ready: Readiness) -> bool:
    """Whether this readiness is news (an Event is posted only for news, not every resync)."""
    current = find_condition(env.status.conditions, READY)
    return current is None or (current.status, current.reason) != (ready.status, ready.reason)
