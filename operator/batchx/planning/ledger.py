"""The credit ledger: how a job's charge is counted exactly once, whatever crashes.

Design
------
*Where a charge lives.* The job controller writes a job's charge once, as
``status.credits.charged``, in the same status write that moves the job to a terminal state (one
API call: either both are stored or neither). A terminal job never changes state again, so its
charge is fixed from then on; a non-terminal job's ``status.credits.reserved`` is its reservation.

*The durable copy.* Jobs can be deleted, and a deleted job's charge must stay spent. So the
operator copies every non-zero charge into a **charge record**: an immutable ConfigMap in the
environment's namespace named ``bx-charge-<job uid>`` (label ``batchx.io/ledger=charge``). The
name is a function of the job's uid, so a second attempt to record the same charge gets
AlreadyExists (treated as success) and can never count it twice; ``immutable: true`` makes the API
server refuse any later change of the amount. The ledger finalizer on Jobs holds a job's deletion
until its record exists, so no charge can vanish with its job.

*Totals are recomputed, never incremented.* The environment's ``status.credits`` is a pure
function of API state (`credit_totals`): the ledger is the union, keyed by job uid, of charge
records and terminal jobs (the record's amount wins when both exist, the first write being the one
that counts):

- ``spent``    = sum of the charges in that union;
- ``reserved`` = sum of ``reserved`` of non-terminal jobs that have no record;
- ``granted``  = ``spec.credits``; ``balance`` = granted - reserved - spent.

There is no counter to increment, so nothing can be added twice or lost when the operator dies
between any two API calls: every step (create record, patch status) is idempotent and the next
reconcile - on any job event, on every resync, and at start-up (Kopf's resume) - lists jobs and
records and writes the same totals. A charge is in ``spent`` from the moment the job's terminal
status is stored, before its record exists, so the balance never shows a released reservation
without its charge.

*Finished jobs are not read.* Once a final job's record exists the operator labels it
``batchx.io/finished`` (`batchx.planning.finished`), and the ledger lists only unlabelled jobs:
a labelled job's charge is in its record, so the union above loses nothing. The records
themselves are listed once per operator process and namespace and then kept in memory as a
sum and a set of uids (`Recorded`; every record the process makes is added before its job is
labelled), so the frequent reads (each admission pass, each job event) cost the unfinished
jobs only; the Environment's own reconcile and resync list the records again.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from batchx.models import TERMINAL_STATES, EnvironmentCredits
from batchx.planning import labels

JSON = dict[str, Any]

RECORD_PREFIX = "bx-charge-"
RECORD_SELECTOR = f"{labels.LEDGER}=charge"
_ZERO = Decimal(0)
_TERMINAL = frozenset(str(s) for s in TERMINAL_STATES)


def _amount(value: Any) -> Decimal:
    """A credit amount from JSON; anything unreadable or negative counts as nothing."""
    if isinstance(value, bool) or value is None:
        return _ZERO
    try:
        # repr(float) is its shortest round-trip form: 0.1 stays 0.1, not 0.1000000000000000055.
        amount = Decimal(repr(value)) if isinstance(value, float) else Decimal(str(value))
    except InvalidOperation:
        return _ZERO
    return amount if amount.is_finite() and amount > 0 else _ZERO


@dataclass(frozen=True)
class JobAccount:
    """What the ledger reads from one Job."""

    uid: str
    name: str
    terminal: bool
    reserved: Decimal
    charged: Decimal
    state: str | None = None

    @classmethod
    def from_body(cls, body: JSON) -> JobAccount:
        meta = body.get("metadata") or {}
        status = body.get("status") or {}
        credits = status.get("credits") or {}
        return cls(
            uid=str(meta.get("uid", "")),
            name=str(meta.get("name", "")),
            terminal=status.get("state") in _TERMINAL,
            reserved=_amount(credits.get("reserved")),
            charged=_amount(credits.get("charged")),
            state=str(status["state"]) if status.get("state") else None,
        )


@dataclass(frozen=True)
class ChargeRecord:
    """One charge record (the durable copy of a job's charge)."""

    job_uid: str
    job_name: str
    amount: Decimal

    @classmethod
    def from_config_map(cls, body: JSON) -> ChargeRecord:
        data = body.get("data") or {}
        name = str((body.get("metadata") or {}).get("name", ""))
        # The uid in the name is authoritative: it is what makes the record unique.
        uid = name.removeprefix(RECORD_PREFIX)
        return cls(
            job_uid=uid, job_name=str(data.get("job", "")), amount=_amount(data.get("charged"))
        )


@dataclass(frozen=True)
class Recorded:
    """The charge records as a sum and the set of their job uids (`RecordedCharges` keeps
    both up to date): the totals then cost the unfinished jobs, not one step per record."""

    uids: Collection[str]
    total: Decimal

    @classmethod
    def of(cls, records: Iterable[ChargeRecord]) -> Recorded:
        by_uid: dict[str, Decimal] = {}
        for record in records:
            by_uid.setdefault(record.job_uid, record.amount)
        return cls(by_uid.keys(), sum(by_uid.values(), start=_ZERO))


def record_name(job_uid: str) -> str:
    return RECORD_PREFIX + job_uid


def charge_record(namespace: str, job: JobAccount) -> JSON:
    """The ConfigMap that records `job`'s charge; create it, AlreadyExists means recorded."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": record_name(job.uid),
            "namespace": namespace,
            "labels": {labels.MANAGED_BY: labels.MANAGED_BY_VALUE, labels.LEDGER: "charge"},
            # No owner reference: the record must outlive its Job (it goes with the namespace).
        },
        "immutable": True,
        "data": {"job": job.name, "jobUid": job.uid, "charged": str(job.charged)},
    }


def needs_record(job: JobAccount) -> bool:
    """A charge worth recording: terminal with a non-zero charge (zero changes no total)."""
    return job.terminal and job.charged > 0


def missing_records(
    jobs: list[JobAccount], records: Iterable[ChargeRecord] | Recorded
) -> list[JobAccount]:
    """Charged jobs whose record does not exist yet, in a stable order."""
    recorded = records.uids if isinstance(records, Recorded) else {r.job_uid for r in records}
    return sorted(
        (j for j in jobs if needs_record(j) and j.uid not in recorded), key=lambda j: j.uid
    )


@dataclass(frozen=True)
class Totals:
    granted: Decimal
    reserved: Decimal
    spent: Decimal

    @property
    def balance(self) -> Decimal:
        return self.granted - self.reserved - self.spent

    def to_model(self) -> EnvironmentCredits:
        return EnvironmentCredits(
            granted=float(self.granted),
            reserved=float(self.reserved),
            spent=float(self.spent),
            balance=float(self.balance),
        )


def credit_totals(
    granted: Any, jobs: list[JobAccount], records: Iterable[ChargeRecord] | Recorded
) -> Totals:
    """The environment's credits from API state alone (see the module docstring)."""
    recorded = records if isinstance(records, Recorded) else Recorded.of(records)
    # A job's recorded (first) amount wins over its own; the others' charges count once each.
    charges: dict[str, Decimal] = {
        j.uid: j.charged for j in jobs if j.terminal and j.uid not in recorded.uids
    }
    reserved = sum(
        (j.reserved for j in jobs if not j.terminal and j.uid not in recorded.uids),
        start=_ZERO,
    )
    spent = recorded.total + sum(charges.values(), start=_ZERO)
    return Totals(granted=_amount(granted), reserved=reserved, spent=spent)
