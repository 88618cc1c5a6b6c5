"""A deleted Job's release acts for that Job only (batchx.reconcile.job_release.release_job).

A watch can deliver an old Job's deletion again after its finalizer is gone, while a new Job of
the same name runs (CI saw it: the replay deleted the new job's pod after its exit 0, and the job
ended FAILED PodLost). Pod and files are named by the job's name only, so the release must check
the uid: the replay touches nothing. The Kube stub and the file removal are our own boundary.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from batchx.reconcile import job_release as job_module
from batchx.reconcile.context import Context, Outcome
from batchx.reconcile.job_release import release_job
from batchx.settings import Settings

JSON = dict[str, Any]


def owned(uid: str) -> JSON:
    return {"apiVersion": "batchx.io/v1alpha1", "kind": "Job", "name": "again", "uid": uid}


class Kube:
    """One Job named ``again`` (uid `current`) and the pod ``bx-again`` owned by `pod_owner`."""

    def __init__(self, current: str | None, pod_owner: str) -> None:
        self.current, self.deleted = current, []
        self.pod: JSON = {
            "metadata": {"name": "bx-again", "ownerReferences": [owned(pod_owner)]},
            "spec": {"terminationGracePeriodSeconds": 600},
            "status": {"phase": "Running"},
        }

    async def get_object(self, plural: str, namespace: str, name: str) -> JSON | None:
        return None if self.current is None else {"metadata": {"name": name, "uid": self.current}}

    async def get_pod(self, namespace: str, name: str) -> JSON:
        return self.pod

    async def delete_pod(self, namespace: str, name: str, grace: int) -> None:
        self.deleted.append(name)


@pytest.fixture
def removed(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    calls: list[list[str]] = []

    async def remove_files(ctx: Context, namespace: str, patterns: list[str]) -> None:
        calls.append(list(patterns))

    monkeypatch.setattr(job_module, "remove_files", remove_files)
    return calls


def release(kube: Kube, uid: str) -> Outcome:
    ctx = Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]
    return asyncio.run(release_job(ctx, "lab", "again", uid))


def test_a_replayed_deletion_of_an_old_job_leaves_the_new_namesake_alone(
    removed: list[list[str]],
) -> None:
    kube = Kube(current="new-uid", pod_owner="new-uid")
    outcome = release(kube, "old-uid")
    assert (kube.deleted, removed, outcome.retry_after) == ([], [], None)


def test_a_replayed_deletion_of_a_job_gone_since_does_nothing(removed: list[list[str]]) -> None:
    kube = Kube(current=None, pod_owner="old-uid")
    assert release(kube, "old-uid").retry_after is None
    assert (kube.deleted, removed) == ([], [])


def test_the_job_s_own_running_pod_is_stopped_before_its_files_go(
    removed: list[list[str]],
) -> None:
    kube = Kube(current="uid", pod_owner="uid")
    outcome = release(kube, "uid")
    assert kube.deleted == ["bx-again"]
    assert outcome.retry_after is not None
    assert "bx-again" in str(outcome.retry_reason)
    assert removed == []


def test_an_older_namesake_s_pod_is_left_to_the_garbage_collector(
    removed: list[list[str]],
) -> None:
    kube = Kube(current="uid", pod_owner="older-uid")
    outcome = release(kube, "uid")
    assert (kube.deleted, outcome.retry_after) == ([], None)
    assert len(removed) == 1  # the job's own files
