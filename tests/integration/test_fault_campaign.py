"""The fault campaign's short variant: each fault once, on a mixed batch, with every invariant.

`tests/campaign.py` holds the batch, the faults and the invariants. Here each kind of fault
runs once and any violation fails the test with the run's log; BATCHX_CAMPAIGN_SEED=<seed>
replays the random moments. `make chaos` (`benchmarks/chaos.py`) runs the same test with
BATCHX_CAMPAIGN=long (`campaign.long_faults`: the no-fault peer, the operator SIGKILLed 50 times,
the API server down 20 s, etcd, the scheduler and controller manager restarted, the store
unreachable 60 s, ...), BATCHX_CAMPAIGN_RUNS batches of each, and prints the table from the
rows each test appends to BATCHX_CAMPAIGN_REPORT; BATCHX_CAMPAIGN_FAULTS names the faults to run
(`chaos.py --fault NAME`), so that the long campaign can run in several short sessions.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import campaign
from tests.fixtures_jobs import JobBed
from tests.fixtures_operator import OperatorProcess
from tests.integration.bx import Bx

pytestmark = [pytest.mark.cluster, pytest.mark.s3]

FAULTS = (
    campaign.long_faults(
        kills=int(os.environ.get("BATCHX_CHAOS_KILLS", "50")),
        store_down=float(os.environ.get("BATCHX_CHAOS_STORE_DOWN", "60")),
    )
    if os.environ.get("BATCHX_CAMPAIGN") == "long"
    else campaign.short_faults()
)
# BATCHX_CAMPAIGN_FAULTS: only the faults of these names, one a line (`chaos.py --fault`).
CHOSEN = [n for n in os.environ.get("BATCHX_CAMPAIGN_FAULTS", "").splitlines() if n.strip()]
FAULTS = [f for f in FAULTS if f.name in CHOSEN] if CHOSEN else FAULTS
RUNS = int(os.environ.get("BATCHX_CAMPAIGN_RUNS", "1"))


@pytest.fixture
def store(tmp_path: Path) -> Iterator[campaign.CampaignStore]:
    with campaign.campaign_store(tmp_path) as started:
        yield started


BATCHES = [(fault, batch) for fault in FAULTS for batch in range(RUNS)]


@pytest.mark.parametrize("planned", BATCHES, ids=[f"{f.name}-batch{b}" for f, b in BATCHES])
def test_a_mixed_batch_keeps_every_invariant_under(
    planned: tuple[campaign.Fault, int],
    operator_process: OperatorProcess,
    job_bed: JobBed,
    bx: Bx,
    store: campaign.CampaignStore,
) -> None:
    fault, batch = planned
    seed = int(os.environ.get("BATCHX_CAMPAIGN_SEED") or random.randrange(2**32))
    operator_process.env.update(job_bed.operator_env())
    operator_process.env.update(store.operator_env())
    operator_process.start()
    run, violations = campaign.run_batch(bx, fault, operator_process, store, job_bed.examples, seed)
    report = os.environ.get("BATCHX_CAMPAIGN_REPORT")
    if report:
        row = campaign.Row(fault.name)
        row.add(run, violations)
        with Path(report).open("a") as out:
            out.write(json.dumps({**dataclasses.asdict(row), "batch": batch, "seed": seed}) + "\n")
    log = "\n".join(run.log)
    assert not violations, f"{fault.name} (seed {seed}):\n" + "\n".join(violations) + "\n" + log
    print(f"{fault.name}: recovered in {campaign._recovery(run)} s\n{log}")
