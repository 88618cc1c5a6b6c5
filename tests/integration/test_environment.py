"""Environments on the real cluster: namespace, quota, RBAC, pod security, credits, deletion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes.client.rest import ApiException

from batchx.store.config import open_store
from batchx.store.errors import QuotaExceededError
from tests.builders import PINNED, manifest
from tests.fixtures_operator import OperatorProcess, StartOperator
from tests.helpers import eventually, eventually_equal
from tests.integration.bx import Bx, condition

pytestmark = pytest.mark.cluster

QUOTA = {"cpu": "4", "memory": "8Gi", "gpus": 1, "jobs": 3, "storage": "10Gi"}


def test_environment_gets_owned_namespace_quota_and_status(operator: KopfRunner, bx: Bx) -> None:
    name = bx.create_environment(quota=QUOTA, credits=100)
    env = bx.wait_ready(name, reason="Reconciled", generation=1)

    ns = bx.core.read_namespace(name)
    owner = ns.metadata.owner_references[0]
    assert (owner.kind, owner.name, owner.uid, owner.controller) == (
        "Environment",
        name,
        env["metadata"]["uid"],
        True,
    )
    assert ns.metadata.labels["pod-security.kubernetes.io/enforce"] == "restricted"
    assert ns.metadata.labels["batchx.io/environment"] == name

    quota = bx.core.read_namespaced_resource_quota("batchx-quota", name)
    assert quota.spec.hard == {
        "requests.cpu": "4",
        "requests.memory": "8Gi",
        "requests.nvidia.com/gpu": "1",
        "pods": "3",
    }
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
    bx.patch_environment(
        name, {"quota": {"cpu": "8", "jobs": 5, "memory": None, "gpus": None}, "credits": 25}
    )
    env = bx.wait_ready(name, generation=2)
    assert env["status"]["credits"]["balance"] == 25
    eventually(
        lambda: (
            bx.core.read_namespaced_resource_quota("batchx-quota", name).spec.hard
            == {"requests.cpu": "8", "pods": "5"}
        ),
        timeout=30,
        what="quota updated",
    )
    bx.wait_event("default", name, "QuotaApplied")


def test_deleted_quota_is_restored_by_resync(operator: KopfRunner, bx: Bx) -> None:
    name = bx.create_environment(quota={"jobs": 2})
    bx.wait_ready(name)
    bx.core.delete_namespaced_resource_quota("batchx-quota", name)
    eventually(
        lambda: bx.core.read_namespaced_resource_quota("batchx-quota", name),
        timeout=30,
        what="quota restored by the periodic resync",
    )


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
    members = [
        {"name": "alice", "role": "member"},
        {"name": "vic", "role": "viewer"},
        {"name": "ada", "role": "admin"},
        {"kind": "Group", "name": "ops", "role": "admin"},
    ]
    env = bx.create_environment(members=members)
    other = bx.create_environment()
    bx.wait_ready(env)
    bx.wait_ready(other)

    # the aggregation controller fills the roles' rules asynchronously: wait on the answer
    eventually(
        lambda: bx.can("alice", "create", "jobs", env), timeout=60, what="alice may create jobs"
    )
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
    # Every member reads their own Environment (credits, quota: `bx env`), and no other.
    eventually(
        lambda: bx.can("vic", "get", "environments", None, name=env),
        timeout=30,
        what="members may read their Environment",
    )
    readers = [
        (user, name, verb, bx.can(user, verb, "environments", None, name=name))
        for user in ("alice", "vic", "ada", "nobody")
        for name, verb in ((env, "get"), (other, "get"), (None, "list"))
    ]
    assert [r for r in readers if r[3]] == [
        ("alice", env, "get", True),
        ("vic", env, "get", True),
        ("ada", env, "get", True),
    ]

    # a member removed from the spec loses access
    bx.patch_environment(env, {"members": [{"name": "ada", "role": "admin"}]})
    eventually(
        lambda: not bx.can("alice", "create", "jobs", env),
        timeout=30,
        what="alice's access revoked",
    )
    bx.wait_event("default", env, "MembersRemoved")


def test_deleting_environment_deletes_namespace(operator: KopfRunner, bx: Bx) -> None:
    name = bx.create_environment(quota={"jobs": 1})
    bx.wait_ready(name)
    bx.delete_environment(name)

    eventually(
        lambda: not bx.namespace_exists(name),
        timeout=120,
        what=f"namespace {name} garbage-collected",
    )


# -- the credit ledger ----------------------------------------------------------------------

FINALIZER = "batchx.io/finalizer"


def _credits(bx: Bx, env: str) -> dict[str, float]:
    return dict((bx.environment(env).get("status") or {}).get("credits") or {})


def _records(bx: Bx, env: str) -> dict[str, str]:
    maps = bx.core.list_namespaced_config_map(env, label_selector="batchx.io/ledger=charge").items
    return {m.data["job"]: m.data["charged"] for m in maps}


def test_ledger_counts_each_charge_once_under_a_killed_operator(
    operator_process: OperatorProcess, bx: Bx, tmp_path: Path
) -> None:
    """The operator is a real `python -m batchx` process, SIGKILLed at different points of its
    work. Its job controller admits the jobs (their image exists), but their Pods never start
    (the runner image it is given is in no registry): the test plays the pods' part by writing
    the states and charges a job's end would write, so every kill point is chosen, not left to
    timing."""
    op = operator_process
    op.env["BATCHX_RUNNER_IMAGE"] = f"batchx.local/batchx-runner@sha256:{'0' * 64}"
    op.env["BATCHX_STORE"] = f"file://{tmp_path / 'store'}"
    op.start()
    env = bx.create_environment(credits=1000)
    bx.wait_ready(env, timeout=90)
    bx.create_image(env, "hello", {"image": PINNED, "manifest": manifest()})
    bx.wait_image(env, "hello", "True", "Accepted")
    names = [f"job-{i}" for i in range(6)]
    for name in names:
        bx.create_job(env, name)

    # Admitted, and the ledger's finalizer on every job before any is charged: none can vanish
    # unrecorded.
    def admitted(jobs: list[dict[str, Any]]) -> bool:
        return len(jobs) == len(names) and all(
            FINALIZER in (j["metadata"].get("finalizers") or [])
            and (j.get("status") or {}).get("state") == "STARTING"
            for j in jobs
        )

    eventually(
        lambda: admitted(bx.jobs(env)), timeout=60, what="every job admitted with the finalizer"
    )
    for name in names:
        bx.set_job_status(env, name, {"state": "RUNNING", "credits": {"reserved": 10}})
    eventually(lambda: _credits(bx, env).get("reserved") == 60, timeout=60, what="60 reserved")

    amounts = {"job-0": 1.25, "job-1": 2.5, "job-2": 0.1, "job-3": 3.0}
    for index, (name, amount) in enumerate(amounts.items()):
        bx.set_job_status(
            env, name, {"state": "SUCCEEDED", "credits": {"reserved": 10, "charged": amount}}
        )
        if index == 1:  # die after the record exists, maybe before the totals are written
            eventually(lambda n=name: n in _records(bx, env), timeout=60, what="record")
        elif index == 2:  # die after the totals are written
            eventually(
                lambda a=amount: _credits(bx, env).get("spent", 0) >= a,
                timeout=60,
                what="spent updated",
            )
        op.kill()  # index 0 and 3: die right away, most likely before the charge is seen
        if index == 3:
            # deleted while no operator runs: the finalizer holds it until it is recorded
            bx.custom.delete_namespaced_custom_object("batchx.io", "v1alpha1", env, "jobs", name)
        op.start()

    spent = sum(amounts.values())
    expected = {"granted": 1000, "reserved": 20, "spent": spent, "balance": 1000 - 20 - spent}
    eventually_equal(lambda: _credits(bx, env), expected, timeout=90, what="credits")
    assert {k: float(v) for k, v in _records(bx, env).items()} == amounts
    eventually(
        lambda: "job-3" not in [j["metadata"]["name"] for j in bx.jobs(env)],
        timeout=60,
        what="job-3 deleted once recorded",
    )

    # Totals are rebuilt from API state at start-up: wipe them while the operator is down.
    op.kill()
    bx.custom.patch_cluster_custom_object_status(
        "batchx.io",
        "v1alpha1",
        "environments",
        env,
        {"status": {"credits": {"granted": 0, "reserved": 0, "spent": 0, "balance": 0}}},
    )
    # A deleted job's charge stays spent, and charged jobs deleted now stay counted too.
    bx.custom.delete_namespaced_custom_object("batchx.io", "v1alpha1", env, "jobs", "job-0")
    op.start()
    eventually_equal(lambda: _credits(bx, env), expected, timeout=90, what="credits rebuilt")
    assert len(_records(bx, env)) == 4

    # Deleting the Environment with a charge not yet recorded does not leave the namespace
    # stuck on the ledger's finalizer: a namespace being deleted needs no ledger.
    op.kill()
    bx.set_job_status(env, "job-4", {"state": "FAILED", "credits": {"charged": 5}})
    bx.delete_environment(env)
    op.start()
    eventually(lambda: not bx.namespace_exists(env), timeout=120, what="namespace deleted")


def test_storage_quota_and_usage_with_the_store(
    start_operator: StartOperator, bx: Bx, tmp_path: Path
) -> None:
    url = f"file://{tmp_path / 'store'}"
    with start_operator(BATCHX_STORE=url):
        name = bx.create_environment(quota={"storage": "1Ki"})
        bx.wait_ready(name)
        files = open_store(url).env(name)
        eventually(lambda: files.usage().quota == 1024, timeout=30, what="quota handed to store")
        files.put_bytes("a.txt", b"x" * 600)
        files.put_bytes("alias.txt", b"x" * 600)  # same content: no extra storage
        with pytest.raises(QuotaExceededError):
            files.put_bytes("b.txt", b"y" * 600)
        eventually(
            lambda: bx.environment(name)["status"]["storage"] == {"usedBytes": 600, "files": 2},
            timeout=30,
            what="storage usage in status (periodic resync)",
        )
