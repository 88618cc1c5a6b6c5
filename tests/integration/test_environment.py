"""Environments on the real cluster: namespace, quota, RBAC, pod security, credits, deletion."""

from __future__ import annotations

import pytest
from kopf.testing import KopfRunner
from kubernetes.client.rest import ApiException

from tests.helpers import eventually
from tests.integration.bx import Bx, condition

pytestmark = pytest.mark.cluster

QUOTA = {"cpu": "4", "memory": "8Gi", "gpus": 1, "jobs": 3, "storage": "10Gi"}


def test_environment_gets_owned_namespace_quota_and_status(operator: KopfRunner, bx: Bx) -> None:
    name = bx.create_environment(quota=QUOTA, credits=100)
    env = bx.wait_ready(name, reason="Reconciled", generation=1)

    ns = bx.core.read_namespace(name)
    owner = ns.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Environment", name, env["metadata"]["uid"], True)
    assert ns.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns.metadata.labels["batchx.io/environment"] == name

    quota = bx.core.read_namespaced_resource_quota("batchx-quota", name)
    assert quota.spec.hard == {"requests.cpu": "4", "requests.memory": "8Gi",
                               "requests.nvidia.com/gpu": "1", "pods": "3"}
    status = env["status"]
    assert status["namespace"] == name
    assert status["credits"] == {"granted": 100, "reserved": 0, "spent": 0, "balance": 100}
    assert status["storage"] == {"usedBytes": 0, "files": 0}
    assert status["observedGeneration"] == 1
    bx.wait_event("default", name, "NamespaceCreated", "Normal")
    bx.wait_event("default", name, "Reconciled", "Normal")


def test_spec_change_updates_quota_credits_and_generation(operator: KopfRunner, bx: Bx) -> None:
    name = bx.create_environment(quota=QUOTA, credits=10)
    bx.wait_ready(name, generation=1)
    # merge patch: null removes a field, so the quota becomes exactly {cpu, jobs}
    bx.patch_environment(name, {"quota": {"cpu": "8", "jobs": 5, "memory": None, "gpus": None},
                                "credits": 25})
    env = bx.wait_ready(name, generation=2)
    assert env["status"]["credits"]["balance"] == 25
    eventually(lambda: bx.core.read_namespaced_resource_quota("batchx-quota", name).spec.hard
               == {"requests.cpu": "8", "pods": "5"}, timeout=30, what="quota updated")
    bx.wait_event("default", name, "QuotaApplied")


def test_deleted_quota_is_restored_by_resync(operator: KopfRunner, bx: Bx) -> None:
    name = bx.create_environment(quota={"jobs": 2})
    bx.wait_ready(name)
    bx.core.delete_namespaced_resource_quota("batchx-quota", name)
    eventually(lambda: bx.core.read_namespaced_resource_quota("batchx-quota", name),
               timeout=30, what="quota restored by the periodic resync")


def test_foreign_namespace_is_a_conflict_and_untouched(
    operator: KopfRunner, bx: Bx, namespace: str
) -> None:
    before = bx.core.read_namespace(namespace).metadata.labels
    bx.create_environment(namespace, quota=QUOTA)
    env = bx.wait_ready(namespace, status="False", reason="NamespaceConflict")
    assert "not owned" in condition(env, "Ready")["message"]  # type: ignore[index]
    assert "namespace" not in env["status"]
    ns = bx.core.read_namespace(namespace)
    assert ns.metadata.labels == before
    assert not ns.metadata.owner_references
    with pytest.raises(ApiException) as missing:
        bx.core.read_namespaced_resource_quota("batchx-quota", namespace)
    assert missing.value.status == 404
    bx.wait_event("default", namespace, "NamespaceConflict", "Warning")


def test_members_get_exactly_their_role(operator: KopfRunner, bx: Bx) -> None:
    members = [{"name": "alice", "role": "member"}, {"name": "vic", "role": "viewer"},
               {"name": "ada", "role": "admin"}, {"kind": "Group", "name": "ops", "role": "admin"}]
    env = bx.create_environment(members=members)
    other = bx.create_environment()
    bx.wait_ready(env)
    bx.wait_ready(other)

    # the aggregation controller fills the roles' rules asynchronously: wait on the answer
    eventually(lambda: bx.can("alice", "create", "jobs", env), timeout=60,
               what="alice may create jobs")
    expectations = [
        ("alice", "create", "jobs", env, True),
        ("alice", "get", "images", env, True),
        ("alice", "list", "images", env, True),
        ("alice", "create", "images", env, False),
        ("alice", "delete", "jobs", env, False),
        ("alice", "create", "jobs", other, False),
        ("alice", "get", "images", other, False),
        ("alice", "create", "jobs", None, False),  # cluster-wide
        ("vic", "list", "jobs", env, True),
        ("vic", "create", "jobs", env, False),
        ("ada", "create", "images", env, True),
        ("ada", "delete", "jobs", env, True),
        ("ada", "create", "images", other, False),
        ("nobody", "get", "images", env, False),
    ]
    got = [(u, v, r, ns, bx.can(u, v, r, ns)) for u, v, r, ns, _ in expectations]
    assert got == expectations
    assert bx.can("alice", "get", "configmaps", env, group="") is False  # not the ledger

    # a member removed from the spec loses access
    bx.patch_environment(env, {"members": [{"name": "ada", "role": "admin"}]})
    eventually(lambda: not bx.can("alice", "create", "jobs", env), timeout=30,
               what="alice's access revoked")
    bx.wait_event("default", env, "MembersRemoved")


def test_deleting_environment_deletes_namespace(operator: KopfRunner, bx: Bx) -> None:
    name = bx.create_environment(quota={"jobs": 1})
    bx.wait_ready(name)
    bx.delete_environment(name)

    def gone() -> bool:
        try:
            bx.core.read_namespace(name)
        except ApiException as exc:
            return exc.status == 404
        return False

    eventually(gone, timeout=120, what=f"namespace {name} garbage-collected")
