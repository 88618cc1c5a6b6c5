"""The credit ledger's arithmetic: exactly-once by construction (union keyed by job uid)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from batchx.planning.ledger import (
    ChargeRecord,
    JobAccount,
    charge_record,
    credit_totals,
    missing_records,
)
from tests.builders import make_job, make_record


def accounts(*bodies: dict) -> list[JobAccount]:
    return [JobAccount.from_body(b) for b in bodies]


def records(*bodies: dict) -> list[ChargeRecord]:
    return [ChargeRecord.from_config_map(b) for b in bodies]


RUNNING = make_job("run").state("RUNNING").reserved(10).build()
QUEUED = make_job("queued").state("QUEUED").build()
DONE = make_job("done").state("SUCCEEDED").reserved(10).charged(2.5).build()
FAILED = make_job("failed").state("FAILED").reserved(4).charged(0.1).build()
CACHED = make_job("cached").state("SUCCEEDED").charged(0).build()


@pytest.mark.parametrize(
    ("case", "jobs", "recs", "expected"),
    [
        ("nothing yet", [], [], ("100", "0", "0", "100")),
        ("a running job reserves", [RUNNING, QUEUED], [], ("100", "10", "0", "90")),
        ("a finished job is charged, not reserved", [DONE], [], ("100", "0", "2.5", "97.5")),
        (
            "job and its record count once",
            [DONE],
            [make_record("uid-done", "2.5")],
            ("100", "0", "2.5", "97.5"),
        ),
        (
            "a deleted job's record still counts",
            [],
            [make_record("uid-done", "2.5")],
            ("100", "0", "2.5", "97.5"),
        ),
        (
            "the record (first write) wins over a rewritten job charge",
            [make_job("done").state("SUCCEEDED").charged(9).build()],
            [make_record("uid-done", "2.5")],
            ("100", "0", "2.5", "97.5"),
        ),
        (
            "record seen while the job still looked running: no reservation on top",
            [RUNNING],
            [make_record("uid-run", "3")],
            ("100", "0", "3", "97"),
        ),
        ("decimal sums are exact", [DONE, FAILED], [], ("100", "0", "2.6", "97.4")),
        ("cached jobs cost nothing", [CACHED], [], ("100", "0", "0", "100")),
        (
            "overspending shows a negative balance",
            [make_job("big").state("FAILED").charged(150).build()],
            [],
            ("100", "0", "150", "-50"),
        ),
    ],
)
def test_credit_totals(
    case: str, jobs: list[dict], recs: list[dict], expected: tuple[str, ...]
) -> None:
    totals = credit_totals(100, accounts(*jobs), records(*recs))
    got = (totals.granted, totals.reserved, totals.spent, totals.balance)
    assert got == tuple(Decimal(e) for e in expected), case


def test_totals_model_is_floats() -> None:
    model = credit_totals(10, accounts(DONE), []).to_model()
    assert model.to_json() == {"granted": 10.0, "reserved": 0.0, "spent": 2.5, "balance": 7.5}


@pytest.mark.parametrize(
    ("jobs", "recs", "expected"),
    [
        ([RUNNING, QUEUED], [], []),
        ([DONE, FAILED], [], ["uid-done", "uid-failed"]),
        ([DONE, FAILED], [make_record("uid-done", "2.5")], ["uid-failed"]),
        ([CACHED], [], []),  # a zero charge changes no total: no record needed
    ],
)
def test_missing_records(jobs: list[dict], recs: list[dict], expected: list[str]) -> None:
    assert [j.uid for j in missing_records(accounts(*jobs), records(*recs))] == expected


def test_record_is_immutable_and_named_by_uid() -> None:
    body = charge_record("lab", JobAccount.from_body(DONE))
    assert body["metadata"]["name"] == "bx-charge-uid-done"
    assert body["immutable"] is True
    assert body["data"] == {"job": "done", "jobUid": "uid-done", "charged": "2.5"}
    assert "ownerReferences" not in body["metadata"]  # must outlive the Job
    assert ChargeRecord.from_config_map(body) == ChargeRecord("uid-done", "done", Decimal("2.5"))


@pytest.mark.parametrize("bad", [None, "x", -1, True, float("nan"), "inf"])
def test_unreadable_amounts_count_as_nothing(bad: object) -> None:
    job = make_job().state("FAILED").build()
    job["status"]["credits"] = {"charged": bad}
    assert JobAccount.from_body(job).charged == 0
