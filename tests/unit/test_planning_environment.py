"""Environment planning: owned namespace, quota, RoleBindings, readiness and status."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import pytest

from batchx.models import ConditionStatus
from batchx.planning.environment import (
    Apply,
    Delete,
    EnvironmentObject,
    NamespaceVerdict,
    Observed,
    desired_namespace,
    desired_quota,
    desired_reader,
    desired_role_bindings,
    desired_store_secret,
    judge_namespace,
    plan_children,
    plan_status,
    quota_hard,
    readiness,
    ready_changed,
)
from batchx.planning.ledger import credit_totals
from tests.builders import make_environment

NOW = datetime(2026, 1, 1, tzinfo=UTC)
LAB = EnvironmentObject.from_body(make_environment("lab").build())


def ns(owner_uid: str | None = None, deleting: bool = False, kind: str = "Environment") -> dict:
    meta: dict = {"name": "lab"}
    if owner_uid:
        meta["ownerReferences"] = [
            {"apiVersion": "batchx.io/v1alpha1", "kind": kind, "name": "lab", "uid": owner_uid}
        ]
    if deleting:
        meta["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    return {"metadata": meta}


@pytest.mark.parametrize(
    ("observed", "verdict"),
    [
        (None, NamespaceVerdict.ABSENT),
        (ns("uid-lab"), NamespaceVerdict.OURS),
        (ns(), NamespaceVerdict.FOREIGN),
        (ns("someone-else", kind="Deployment"), NamespaceVerdict.FOREIGN),
        (ns("uid-lab", deleting=True), NamespaceVerdict.TERMINATING),
        (ns("uid-of-an-earlier-lab", deleting=True), NamespaceVerdict.TERMINATING),
        (ns("uid-of-an-earlier-lab"), NamespaceVerdict.FOREIGN),
        (ns(deleting=True), NamespaceVerdict.FOREIGN),
    ],
)
def test_judge_namespace(observed: dict | None, verdict: NamespaceVerdict) -> None:
    assert judge_namespace(observed, LAB) == verdict


def test_namespace_is_owned_and_labelled_for_pod_security() -> None:
    body = desired_namespace(LAB, "baseline")
    assert body["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "batchx.io/v1alpha1",
            "kind": "Environment",
            "name": "lab",
            "uid": "uid-lab",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    labels = body["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "baseline"
    assert labels["batchx.io/environment"] == "lab"


@pytest.mark.parametrize(
    ("quota", "hard"),
    [
        (None, {}),
        ({}, {}),
        (
            {"cpu": "4", "memory": "16Gi", "gpus": 1, "jobs": 3, "storage": "1Ti"},
            {
                "requests.cpu": "4",
                "requests.memory": "16Gi",
                "requests.nvidia.com/gpu": "1",
                "pods": "3",
            },
        ),
        ({"cpu": 2}, {"requests.cpu": "2"}),
        ({"jobs": 0}, {"pods": "0"}),
    ],
)
def test_quota_hard(quota: dict | None, hard: dict) -> None:
    builder = make_environment()
    if quota is not None:
        builder.quota(**quota)
    env = EnvironmentObject.from_body(builder.build())
    assert quota_hard(env.model.spec.quota) == hard
    assert (desired_quota(env) is None) == (not hard)


def test_role_bindings_one_per_role_in_use() -> None:
    env = EnvironmentObject.from_body(
        make_environment()
        .member("bob", "member")
        .member("ann", "member")
        .member("ops", "admin", kind="Group")
        .build()
    )
    bindings = {b["metadata"]["name"]: b for b in desired_role_bindings(env)}
    assert sorted(bindings) == ["batchx-admin", "batchx-member"]
    assert bindings["batchx-member"]["roleRef"] == {
        "apiGroup": "rbac.authorization.k8s.io",
        "kind": "ClusterRole",
        "name": "batchx-member",
    }
    assert [s["name"] for s in bindings["batchx-member"]["subjects"]] == ["ann", "bob"]
    assert bindings["batchx-admin"]["subjects"] == [
        {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "ops"}
    ]


def _reasons(actions: list) -> list[str]:
    return [a.reason for a in actions]


def test_first_reconcile_creates_everything() -> None:
    env = EnvironmentObject.from_body(
        make_environment("lab").quota(cpu="4").member("bob", "viewer").build()
    )
    actions = plan_children(env, Observed(namespace=None), "restricted")
    assert _reasons(actions) == [
        "NamespaceCreated",
        "QuotaApplied",
        "MembersApplied",
        "ReaderRoleApplied",
        "ReadersApplied",
    ]
    assert all(isinstance(a, Apply) for a in actions)


def test_members_may_read_their_environment_and_no_other() -> None:
    env = EnvironmentObject.from_body(
        make_environment("lab").member("bob", "viewer").member("al", "admin").build()
    )
    role, binding = desired_reader(env)
    assert role["metadata"]["name"] == binding["metadata"]["name"] == "batchx-env-lab"
    assert role["rules"] == [
        {
            "apiGroups": ["batchx.io"],
            "resources": ["environments"],
            "resourceNames": ["lab"],
            "verbs": ["get", "watch"],
        }
    ]
    assert [s["name"] for s in binding["subjects"]] == ["al", "bob"]
    assert role["metadata"]["ownerReferences"][0]["uid"] == "uid-lab"
    alone = EnvironmentObject.from_body(make_environment("lab").member("bob", "viewer").build())
    observed = Observed(
        namespace=desired_namespace(env, "restricted"),
        role_bindings=desired_role_bindings(env),
        reader_role=role,
        reader_binding=binding,
    )
    assert _reasons(plan_children(alone, observed, "restricted")) == [
        "MembersRemoved",
        "ReadersApplied",
    ]


def test_converged_state_plans_nothing() -> None:
    env = EnvironmentObject.from_body(
        make_environment("lab").quota(cpu="4").member("bob", "viewer").build()
    )
    observed = Observed(
        namespace=desired_namespace(env, "restricted"),
        quota=desired_quota(env),
        role_bindings=desired_role_bindings(env),
        reader_role=desired_reader(env)[0],
        reader_binding=desired_reader(env)[1],
    )
    assert plan_children(env, observed, "restricted") == []
    # ... but a different pod security level is drift to repair
    assert _reasons(plan_children(env, observed, "baseline")) == ["NamespaceUpdated"]


def test_spec_changes_update_and_remove_children() -> None:
    before = EnvironmentObject.from_body(
        make_environment("lab").quota(cpu="4").member("bob", "viewer").member("al", "admin").build()
    )
    after = EnvironmentObject.from_body(
        make_environment("lab").quota(cpu="8").member("bob", "member").build()
    )
    observed = Observed(
        namespace=desired_namespace(before, "restricted"),
        quota=desired_quota(before),
        role_bindings=desired_role_bindings(before),
        reader_role=desired_reader(before)[0],
        reader_binding=desired_reader(before)[1],
    )
    actions = plan_children(after, observed, "restricted")
    assert _reasons(actions) == [
        "QuotaApplied",
        "MembersApplied",
        "MembersRemoved",
        "MembersRemoved",
        "ReadersApplied",
    ]
    assert [a.name for a in actions if isinstance(a, Delete)] == ["batchx-admin", "batchx-viewer"]
    no_quota = EnvironmentObject.from_body(make_environment("lab").member("bob", "member").build())
    assert _reasons(plan_children(no_quota, observed, "restricted"))[0] == "QuotaRemoved"


def test_status_ready_with_credits() -> None:
    env = EnvironmentObject.from_body(make_environment("lab").credits(50).generation(3).build())
    status = plan_status(
        env, readiness(env, NamespaceVerdict.OURS), credit_totals(50, [], []), None, NOW
    )
    assert status.to_json() == {
        "namespace": "lab",
        "credits": {"granted": 50.0, "reserved": 0.0, "spent": 0.0, "balance": 50.0},
        "storage": {"usedBytes": 0, "files": 0},
        "conditions": [
            {
                "type": "Ready",
                "status": "True",
                "reason": "Reconciled",
                "message": "namespace lab is ready",
                "lastTransitionTime": "2026-01-01T00:00:00Z",
                "observedGeneration": 3,
            }
        ],
        "observedGeneration": 3,
    }


def test_conflict_is_not_ready_and_names_no_namespace() -> None:
    ready = readiness(LAB, NamespaceVerdict.FOREIGN)
    assert (ready.status, ready.reason) == (ConditionStatus.FALSE, "NamespaceConflict")
    status = plan_status(LAB, ready, None, None, NOW)
    assert status.namespace is None
    assert ready_changed(LAB, ready)


def test_transition_time_kept_while_status_unchanged() -> None:
    first = plan_status(LAB, readiness(LAB, NamespaceVerdict.OURS), None, None, NOW)
    body = make_environment("lab").build()
    body["status"] = first.to_json()
    env = EnvironmentObject.from_body(body)
    later = datetime(2026, 2, 1, tzinfo=UTC)
    again = plan_status(env, readiness(env, NamespaceVerdict.OURS), None, None, later)
    assert again.conditions[0].last_transition_time == NOW
    assert not ready_changed(env, readiness(env, NamespaceVerdict.OURS))
    flipped = plan_status(env, readiness(env, NamespaceVerdict.FOREIGN), None, None, later)
    assert flipped.conditions[0].last_transition_time == later


STORE = ("batchx-store", {"BATCHX_STORE": "s3://bx", "AWS_ACCESS_KEY_ID": "key"})


def test_store_secret_written_owned_and_kept_in_sync() -> None:
    env = EnvironmentObject.from_body(make_environment("lab").build())
    observed = Observed(
        namespace=desired_namespace(env, "restricted"),
        reader_role=desired_reader(env)[0],
        reader_binding=desired_reader(env)[1],
    )
    actions = plan_children(env, observed, "restricted", STORE)
    assert _reasons(actions) == ["StoreSecretApplied"]
    secret = actions[0].body  # type: ignore[union-attr]
    assert secret["metadata"]["ownerReferences"][0]["uid"] == "uid-lab"
    assert secret["data"] == {"AWS_ACCESS_KEY_ID": "a2V5", "BATCHX_STORE": "czM6Ly9ieA=="}
    # The Event names the keys, never the values.
    assert "key" not in actions[0].message.replace("AWS_ACCESS_KEY_ID", "")
    converged = replace(observed, store_secret=secret)
    assert plan_children(env, converged, "restricted", STORE) == []
    rotated = ("batchx-store", {**STORE[1], "AWS_ACCESS_KEY_ID": "new"})
    assert _reasons(plan_children(env, converged, "restricted", rotated)) == ["StoreSecretApplied"]
    unset = plan_children(env, converged, "restricted", ("batchx-store", {}))
    assert unset == [
        Delete("Secret", "lab", "batchx-store", "StoreSecretRemoved", "no store configured")
    ]
    assert desired_store_secret(env, "batchx-store", {}) is None
