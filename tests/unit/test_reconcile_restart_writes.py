"""A restarted operator does not rewrite what is unchanged (benchmarks/bench_restart.py).

It gets one event per Job it lists. Before, each charged job's event tried to create its
(immutable) charge record again: an AlreadyExists and a read back per finished job, 1,000 of
each for 1,000 finished jobs; now a namespace's records are listed once and jobs seen recorded
are skipped. And each event refreshed the Environment with a status patch, changed or not; now
an unchanged status is not written. A running job whose pod did not change is read, not written:
its stub applies status patches as the API server does, merged into the stored status (a
planned status leaves `admission` out, and compared whole it made every reconcile of a running
job a write: 113 of them after a restart with 100 running jobs). The Kube stubs are our own
boundary.
"""

from __future__ import annotations

import asyncio
import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from batchx.clients.kube import Conflict
from batchx.models import JobState
from batchx.planning.job_admission import Admit, admission_status
from batchx.planning.job_pod import pod_name
from batchx.planning.kstatus import with_job_conditions
from batchx.planning.ledger import JobAccount, charge_record
from batchx.planning.status_patch import merged
from batchx.reconcile import job as job_module
from batchx.reconcile.context import Context
from batchx.reconcile.ledger import record_job, settle
from batchx.settings import Settings
from tests.builders import DIGEST
from tests.job_builders import PodBuilder, candidate, make_bx_job, request_for

JSON = dict[str, Any]


def finished(uid: str, charged: str = "1.5") -> JobAccount:
    body = {
        "metadata": {"name": f"job-{uid}", "uid": uid},
        "status": {"state": "SUCCEEDED", "credits": {"reserved": 0, "charged": charged}},
    }
    return JobAccount.from_body(body)


class RecordingKube:
    """Config maps in memory; every call is counted by name."""

    def __init__(self, records: list[JSON]) -> None:
        self.records = {r["metadata"]["name"]: r for r in records}
        self.calls: list[str] = []

    async def list_config_maps(self, namespace: str, selector: str) -> list[JSON]:
        self.calls.append("list")
        return list(self.records.values())

    async def create_config_map(self, body: JSON) -> JSON:
        self.calls.append("create")
        if body["metadata"]["name"] in self.records:
            raise Conflict(409, "AlreadyExists", "exists")
        self.records[body["metadata"]["name"]] = body
        return body

    async def get_config_map(self, namespace: str, name: str) -> JSON | None:
        self.calls.append("get")
        return self.records.get(name)

    async def list_objects(self, plural: str, namespace: str, **_: Any) -> list[JSON]:
        return []

    async def patch_labels(self, *_: Any, **__: Any) -> JSON:
        self.calls.append("label")
        return {}


def run(kube: RecordingKube, *jobs: JobAccount, events: int = 1) -> None:
    ctx = Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]

    async def main() -> None:
        for _ in range(events):
            for job in jobs:
                await record_job(ctx, "lab", job)

    asyncio.run(main())


def test_recorded_jobs_after_a_restart_cost_one_list_and_no_write() -> None:
    jobs = [finished(f"u{i}") for i in range(50)]
    kube = RecordingKube([charge_record("lab", j) for j in jobs])
    run(kube, *jobs, events=3)
    assert kube.calls == ["list"]


def test_an_unrecorded_charge_is_recorded_once() -> None:
    old, new = finished("old"), finished("new")
    kube = RecordingKube([charge_record("lab", old)])
    run(kube, old, new, events=3)
    assert kube.calls == ["list", "create"]
    assert set(kube.records) == {"bx-charge-old", "bx-charge-new"}


def test_a_record_made_by_someone_else_meanwhile_is_read_back_once() -> None:
    job = finished("raced")
    kube = RecordingKube([])
    ctx = Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]

    async def main() -> None:
        await record_job(ctx, "lab", finished("first"))  # lists: no records yet
        kube.records["bx-charge-raced"] = charge_record("lab", job)  # another run made it
        for _ in range(3):
            await record_job(ctx, "lab", job)

    asyncio.run(main())
    assert kube.calls == ["list", "create", "create", "get"]


def test_settle_still_recreates_a_record_deleted_by_hand() -> None:
    job = finished("gone")
    kube = RecordingKube([charge_record("lab", job)])
    ctx = Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]

    async def main() -> None:
        await record_job(ctx, "lab", job)
        kube.records.clear()
        kube.list_objects = _jobs([job])  # type: ignore[method-assign]
        await settle(ctx, "lab")

    asyncio.run(main())
    assert set(kube.records) == {"bx-charge-gone"}


def _jobs(accounts: list[JobAccount]) -> Any:
    async def list_objects(plural: str, namespace: str, **_: Any) -> list[JSON]:
        return [
            {
                "metadata": {"name": a.name, "namespace": namespace, "uid": a.uid},
                "status": {"state": "SUCCEEDED", "credits": {"charged": str(a.charged)}},
            }
            for a in accounts
        ]

    return list_objects


# -- the Environment's status -------------------------------------------------------------------

ENV_UID = "0f4c3b6e-1111-2222-3333-444455556666"


class EnvironmentKube:
    """An Environment whose namespace is ours; status patches are kept, children ignored."""

    def __init__(self) -> None:
        self.status_patches: list[JSON] = []

    async def get_namespace(self, name: str) -> JSON:
        owner = {"apiVersion": "batchx.io/v1alpha1", "kind": "Environment", "uid": ENV_UID}
        return {"metadata": {"name": name, "ownerReferences": [owner], "labels": {}}}

    async def patch_cluster_status(self, plural: str, name: str, patch: JSON) -> None:
        self.status_patches.append(patch)

    def __getattr__(self, name: str) -> Any:  # children and ledger: nothing there
        async def nothing(*args: Any, **kwargs: Any) -> Any:
            return [] if name.startswith("list_") else None

        return nothing


def test_an_unchanged_environment_status_is_not_written_again() -> None:
    from batchx.reconcile.environment import reconcile_environment  # noqa: PLC0415

    kube = EnvironmentKube()
    ctx = Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]
    body: JSON = {
        "metadata": {"name": "lab", "uid": ENV_UID, "generation": 1},
        "spec": {"credits": 10, "members": []},
    }

    def reconcile(status: JSON | None) -> int:
        before = len(kube.status_patches)
        asyncio.run(reconcile_environment(ctx, {**body, "status": status}))
        return len(kube.status_patches) - before

    assert reconcile(None) == 2  # "SettingUp", then Ready
    written = {k: v for k, v in kube.status_patches[-1].items() if v is not None}
    assert reconcile(written) == 0  # a resync, a job event, a restart: nothing new
    # A body older than this process's last write is not trusted: credits raised since.
    raised = {**body, "spec": {"credits": 20, "members": []}}
    asyncio.run(reconcile_environment(ctx, {**raised, "status": written}))
    assert kube.status_patches[-1]["credits"]["granted"] == 20
    assert reconcile(written) == 1  # the stale body (granted 10) gets 10 written back


# -- a running job ------------------------------------------------------------------------------


class JobKube:
    """One Job, its plan ConfigMap and its Pod in memory; every call is counted."""

    def __init__(self, job: JSON) -> None:
        self.objects: dict[tuple[str, str], JSON] = {("jobs", job["metadata"]["name"]): job}
        self.calls: list[str] = []
        self.version = 1

    def _keep(self, kind: str, body: JSON) -> JSON:
        self.version += 1
        body["metadata"]["resourceVersion"] = str(self.version)
        self.objects[(kind, body["metadata"]["name"])] = body
        return copy.deepcopy(body)

    def _get(self, kind: str, name: str) -> JSON | None:
        self.calls.append(f"get {kind}")
        found = self.objects.get((kind, name))
        return copy.deepcopy(found) if found is not None else None

    async def get_object(self, plural: str, namespace: str, name: str) -> JSON | None:
        return self._get(plural, name)

    async def get_config_map(self, namespace: str, name: str) -> JSON | None:
        return self._get("configmaps", name)

    async def get_pod(self, namespace: str, name: str) -> JSON | None:
        return self._get("pods", name)

    async def create_config_map(self, body: JSON) -> JSON:
        self.calls.append("create configmaps")
        return self._keep("configmaps", copy.deepcopy(body))

    async def create_pod(self, body: JSON) -> JSON:
        self.calls.append("create pods")
        return self._keep("pods", {**copy.deepcopy(body), "status": {"phase": "Pending"}})

    async def patch_status(
        self, plural: str, namespace: str, name: str, patch: JSON, resource_version: str | None
    ) -> JSON:
        self.calls.append("patch jobs/status")
        job = self.objects[(plural, name)]
        if resource_version and job["metadata"]["resourceVersion"] != resource_version:
            raise Conflict(409, "Conflict", "changed")
        return self._keep(plural, {**job, "status": merged(job.get("status") or {}, patch)})


def test_a_running_job_reconciled_by_a_restarted_operator_is_read_not_written(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The resume of a job whose pod runs, and the listing's pod event: three reads, no write."""
    image = candidate("1.0.0")
    model = make_bx_job("tutorial/hello:1.0.0").timeout(86_400).model()
    request = request_for(model, image, name="long")
    now = datetime.now(UTC)
    admitted = admission_status(model, Admit(request), generation=1, now=now)
    kube = JobKube(
        {
            "metadata": {"name": "long", "namespace": "lab", "uid": "u-long", "generation": 1},
            "spec": model.spec.model_dump(by_alias=True, exclude_none=True, mode="json"),
            "status": with_job_conditions(admitted, generation=1, now=now).to_json(),
        }
    )

    async def pinned(ctx: Context, namespace: str, job: Any = None) -> list[Any]:
        return [image]

    monkeypatch.setattr(job_module, "candidates", pinned)
    settings = Settings.load({"BATCHX_RUNNER_IMAGE": f"batchx.local/runner@{DIGEST}"})

    def reconcile(ctx: Context) -> list[str]:
        kube.calls.clear()

        async def main() -> None:
            await job_module.reconcile_job(ctx, "lab", "long", admission=False)
            ctx.wakeups.close()  # the deadline's wake-up is a day away

        asyncio.run(main())
        return list(kube.calls)

    first = Context(settings=settings, kube=kube)  # type: ignore[arg-type]
    assert "create pods" in reconcile(first)
    pod = kube.objects[("pods", pod_name("long"))]
    pod["status"] = PodBuilder(copy.deepcopy(pod)).started(now).running(now).build()["status"]
    assert reconcile(first)[-1] == "patch jobs/status"  # RUNNING
    stored = kube.objects[("jobs", "long")]["status"]
    assert stored["state"] == "RUNNING"
    assert stored["admission"]  # kept by the merge, absent from every later planned status
    for _ in range(2):  # the restart's resume, then its listing's pod event
        restarted = Context(settings=settings, kube=kube)  # type: ignore[arg-type]
        assert reconcile(restarted) == ["get jobs", "get configmaps", "get pods"]
    # The same process again: the plan it created is known (`Context.plans`), not read back.
    assert reconcile(restarted) == ["get jobs", "get pods"]
    ended = PodBuilder(copy.deepcopy(pod)).started(now).job_exited(1, start=now, end=now)
    pod["status"] = ended.finished("Failed").build()["status"]
    reconcile(restarted)
    assert kube.objects[("jobs", "long")]["status"]["state"] == "FAILED"
    assert len(restarted.plans) == 0  # a final job's plan is forgotten


def test_write_status_sends_only_a_change_and_logs_its_fields(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The same status planned again (its condition stamped anew) is not sent; a change is,
    and the debug log names the fields it changes."""
    from batchx.reconcile.context import Outcome  # noqa: PLC0415
    from batchx.reconcile.job_status import JobRead, write_status  # noqa: PLC0415

    model = make_bx_job("tutorial/hello:1.0.0").model()
    earlier = datetime(2026, 12, 3, 6, 0, tzinfo=UTC)
    admitted = admission_status(
        model, Admit(request_for(model, candidate("1.0.0"))), generation=1, now=earlier
    )
    stored = with_job_conditions(admitted, generation=1, now=earlier).to_json()
    meta = {"name": "j", "namespace": "lab", "uid": "u-j", "generation": 1}
    spec = model.spec.model_dump(by_alias=True, exclude_none=True, mode="json")
    kube = JobKube({"metadata": {**meta, "resourceVersion": "1"}, "spec": spec, "status": stored})
    ctx = Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]
    job = JobRead(copy.deepcopy(kube.objects[("jobs", "j")]))
    now = datetime.now(UTC)
    stamped = [c.model_copy(update={"last_transition_time": now}) for c in admitted.conditions]
    again = admitted.model_copy(update={"conditions": stamped})
    caplog.set_level("DEBUG", logger="batchx.reconcile.job_status")
    assert asyncio.run(write_status(ctx, job, again, Outcome())) is True
    assert kube.calls == []
    running = again.model_copy(update={"state": JobState.RUNNING})
    assert asyncio.run(write_status(ctx, job, running, Outcome())) is True
    assert kube.calls == ["patch jobs/status"]
    assert "changes ['conditions', 'state']" in caplog.text
