"""The fault campaign's short variant: each fault once, on a mixed batch, with every invariant.

`tests/campaign.py` holds the batch, the faults and the invariants; `make chaos`
(`benchmarks/chaos.py`) runs the long variant (the operator SIGKILLed 50 times, the store
unreachable for 60 s, ...) and prints the table. Here each fault runs once and any violation
fails the test with the run's log. BATCHX_CAMPAIGN_SEED=<seed> replays the random moments.
"""

from __future__ import annotations

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

FAULTS: list[campaign.Fault] = [
    campaign.OperatorKilled(kills=3),
    campaign.ComponentRestarted("kube-apiserver"),
    campaign.ComponentRestarted("etcd"),
    campaign.ComponentRestarted("kubelet"),
    campaign.StoreRestarted(),
    campaign.PodDeleted(),
    campaign.PlanDeleted(),
]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[campaign.CampaignStore]:
    with campaign.campaign_store(tmp_path) as started:
        yield started


@pytest.mark.parametrize("fault", FAULTS, ids=[f.name for f in FAULTS])
def test_a_mixed_batch_keeps_every_invariant_under(
    fault: campaign.Fault,
    operator_process: OperatorProcess,
    job_bed: JobBed,
    bx: Bx,
    store: campaign.CampaignStore,
) -> None:
    seed = int(os.environ.get("BATCHX_CAMPAIGN_SEED") or random.randrange(2**32))
    operator_process.env.update(job_bed.operator_env())
    operator_process.env.update(store.operator_env())
    operator_process.start()
    run, violations = campaign.run_batch(bx, fault, operator_process, store, job_bed.examples, seed)
    log = "\n".join(run.log)
    assert not violations, f"{fault.name} (seed {seed}):\n" + "\n".join(violations) + "\n" + log
    print(f"{fault.name}: recovered in {campaign._recovery(run)} s\n{log}")
