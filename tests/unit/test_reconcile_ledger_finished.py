"""Finished Jobs leave the ledger's and admission's listings (batchx.planning.finished): the
label's rules, and the ledger's totals staying exact whichever write an operator died after,
with the Kubernetes API stubbed at our boundary (label selectors answered as the API server
would)."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from typing import Any

from batchx.clients.kube import Invalid
from batchx.planning.finished import entry_selector, finished_labels
from batchx.planning.labels import CACHE_KEY, FINISHED, UNFINISHED
from batchx.planning.ledger import RECORD_SELECTOR, credit_totals
from batchx.reconcile import ledger
from batchx.reconcile.context import Context
from batchx.settings import Settings

JSON = dict[str, Any]
KEY = "sha256:" + "ab" * 32


class Kube:
    """Jobs and ConfigMaps in memory; label selectors of the forms the operator uses."""

    def __init__(self, jobs: list[JSON]) -> None:
        self.jobs = {j["metadata"]["name"]: j for j in jobs}
        self.maps: dict[str, JSON] = {}
        self.calls: list[str] = []

    async def list_objects(self, plural: str, namespace: str, selector: str) -> list[JSON]:
        assert (plural, namespace) == ("jobs", "lab")
        self.calls.append(f"list {selector}")
        labelled = {UNFINISHED: False, FINISHED: True}[selector]
        return [j for j in self.jobs.values() if (FINISHED in labels_of(j)) == labelled]

    async def patch_labels(
        self, plural: str, namespace: str, name: str, labels: JSON, uid: str | None = None
    ) -> JSON:
        job = self.jobs[name]
        if uid and job["metadata"]["uid"] != uid:
            raise Invalid(422, "Invalid", "metadata.uid: field is immutable")
        self.calls.append(f"label {name}")
        job["metadata"]["labels"] = {**labels_of(job), **labels}
        return job

    async def list_config_maps(self, namespace: str, selector: str) -> list[JSON]:
        assert selector == RECORD_SELECTOR
        return list(self.maps.values())

    async def create_config_map(self, body: JSON) -> JSON:
        self.calls.append(f"record {body['data']['job']}")
        self.maps[body["metadata"]["name"]] = body
        return body

    async def get_config_map(self, namespace: str, name: str) -> JSON | None:
        return self.maps.get(name)


def labels_of(job: JSON) -> JSON:
    found: JSON = job["metadata"].get("labels") or {}
    return found


def job(name: str, state: str, *, charged: float = 0, reserved: float = 0) -> JSON:
    admission = {"cacheKey": KEY}
    return {
        "metadata": {"name": name, "namespace": "lab", "uid": f"u-{name}"},
        "status": {
            "state": state,
            "admission": admission,
            "credits": {"reserved": reserved, "charged": charged},
        },
    }


def context(kube: Kube) -> Context:
    return Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]


def totals(ctx: Context) -> tuple[Decimal, Decimal]:
    accounts, records = asyncio.run(ledger.settle(ctx, "lab"))
    found = credit_totals(100, accounts, records)
    return found.spent, found.reserved


# ------------------------------------------------------------------------------ the label


def test_only_a_final_job_gets_labels_its_state_and_its_key() -> None:
    assert finished_labels(job("a", "RUNNING")) is None
    assert finished_labels({"metadata": {}, "status": None}) is None
    labels = finished_labels(job("a", "WARNING"))
    assert labels == {FINISHED: "WARNING", CACHE_KEY: "ab" * 31 + "a"}  # 63 characters
    assert finished_labels(job("a", "FAILED")) == {FINISHED: "FAILED"}  # serves nothing
    served = job("a", "SUCCEEDED")
    served["status"]["cached"] = True  # a served job is no entry: the one it came from is
    assert finished_labels(served) == {FINISHED: "SUCCEEDED"}
    done = job("a", "FAILED")
    done["status"]["admission"] = None  # refused before a key was computed
    done["metadata"]["labels"] = {FINISHED: "FAILED", "team": "x"}
    assert finished_labels(done) is None  # labelled already: no write


def test_the_entry_selector_names_each_key_once_and_only_finished_jobs() -> None:
    other = "sha256:" + "0" * 64
    assert entry_selector([KEY, other, KEY]) == (
        f"{FINISHED},{CACHE_KEY} in ({'0' * 63},{'ab' * 31 + 'a'})"
    )
    assert entry_selector(["not-a-key"]) is None


# ----------------------------------------------------------------------------- the ledger


def test_a_charged_job_is_recorded_before_it_is_labelled() -> None:
    kube = Kube([job("a", "SUCCEEDED", charged=3)])
    asyncio.run(ledger.mark_finished(context(kube), kube.jobs["a"]))
    assert kube.calls == ["record a", "label a"]


def test_totals_are_exact_whichever_write_the_operator_died_after() -> None:
    running = job("r", "RUNNING", reserved=5)
    kube = Kube([running, job("a", "SUCCEEDED", charged=3)])
    # Killed after the final status write (no record, no label): the job's own charge counts.
    assert totals(context(kube)) == (3, 5)
    # After the record, before the label (settle made the record): the record counts, once.
    assert totals(context(kube)) == (3, 5)
    assert set(kube.maps) == {"bx-charge-u-a"}
    # Labelled: the ledger no longer reads the job, its record still holds the charge.
    asyncio.run(ledger.mark_finished(context(kube), kube.jobs["a"]))
    kube.calls.clear()
    assert totals(context(kube)) == (3, 5)
    assert kube.calls == [f"list {UNFINISHED}"]


def test_final_jobs_from_before_the_label_are_taken_in_once() -> None:
    old = [job(f"old{i}", "SUCCEEDED", charged=1) for i in range(3)]
    kube = Kube([*old, job("r", "RUNNING", reserved=5)])
    ctx = context(kube)
    asyncio.run(ledger.settle(ctx, "lab", label=True))
    assert {n for n, j in kube.jobs.items() if FINISHED in labels_of(j)} == {"old0", "old1", "old2"}
    assert len(kube.maps) == 3  # each recorded before its label
    kube.calls.clear()
    asyncio.run(ledger.settle(ctx, "lab", label=True))  # nothing left to take in
    assert kube.calls == [f"list {UNFINISHED}"]
    assert totals(ctx) == (3, 5)


def test_a_namesake_of_the_final_job_is_not_labelled() -> None:
    kube = Kube([job("a", "RUNNING")])
    kube.jobs["a"]["metadata"]["uid"] = "u-new"  # deleted and created again meanwhile
    assert asyncio.run(ledger.mark_finished(context(kube), job("a", "SUCCEEDED"))) is None
    assert FINISHED not in labels_of(kube.jobs["a"])


def test_job_counts_take_the_labelled_jobs_in_once_each() -> None:
    kube = Kube([job("a", "SUCCEEDED"), job("b", "FAILED"), job("r", "RUNNING")])
    ctx = context(kube)
    asyncio.run(ledger.mark_finished(ctx, kube.jobs["a"]))
    unfinished, _ = asyncio.run(ledger.settle(ctx, "lab"))  # b: final, not labelled yet
    states = asyncio.run(ledger.job_states(ctx, "lab", unfinished))
    assert sorted(str(s) for s in states) == ["FAILED", "RUNNING", "SUCCEEDED"]
    asyncio.run(ledger.mark_finished(ctx, kube.jobs["b"]))  # labelled after the count's listing
    states = asyncio.run(ledger.job_states(ctx, "lab", unfinished))
    assert sorted(str(s) for s in states) == ["FAILED", "RUNNING", "SUCCEEDED"]


class CountingKube(Kube):
    def __init__(self, jobs: list[JSON]) -> None:
        super().__init__(jobs)
        self.record_lists = 0

    async def list_config_maps(self, namespace: str, selector: str) -> list[JSON]:
        self.record_lists += 1
        return await super().list_config_maps(namespace, selector)


def test_known_records_are_listed_once_per_process_and_stay_exact() -> None:
    kube = CountingKube([job("a", "SUCCEEDED", charged=2), job("r", "RUNNING", reserved=5)])
    ctx = context(kube)
    asyncio.run(ledger.mark_finished(ctx, kube.jobs["a"]))  # recorded, then labelled
    kube.jobs["b"] = job("b", "FAILED", charged=1)  # final, neither recorded nor labelled yet

    def spent_reserved() -> tuple[Decimal, Decimal]:
        accounts, recorded = asyncio.run(ledger.settle(ctx, "lab", fresh=False))
        found = credit_totals(100, accounts, recorded)
        return found.spent, found.reserved

    for _ in range(3):
        assert spent_reserved() == (3, 5)  # a from its record, b from its body, then its record
    assert kube.record_lists == 1  # the first of them; b's record was added as it was made
    asyncio.run(ledger.mark_finished(ctx, kube.jobs["b"]))
    assert spent_reserved() == (3, 5)
    assert kube.record_lists == 1
    # A new process (a restart) lists them again, once, and finds the same totals.
    fresh = context(kube)
    accounts, recorded = asyncio.run(ledger.settle(fresh, "lab", fresh=False))
    assert (credit_totals(100, accounts, recorded).spent, kube.record_lists) == (3, 2)


def test_a_record_made_before_the_first_listing_does_not_count_as_all_of_them() -> None:
    kube = CountingKube([job("old", "SUCCEEDED", charged=4)])
    asyncio.run(ledger.mark_finished(context(kube), kube.jobs["old"]))  # an earlier process
    ctx = context(kube)
    kube.jobs["new"] = job("new", "SUCCEEDED", charged=1)
    asyncio.run(ledger.ensure_record(ctx, "lab", ledger.JobAccount.from_body(kube.jobs["new"])))
    assert not ctx.recorded.loaded("lab")
    accounts, recorded = asyncio.run(ledger.settle(ctx, "lab", fresh=False))
    assert credit_totals(100, accounts, recorded).spent == 5
