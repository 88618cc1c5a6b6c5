"""The fault campaign's long variant, as one command (a script, not a test): `make chaos`.

    make cluster-up
    .venv/bin/python benchmarks/chaos.py [--runs 1] [--kills 50] [--store-down 60] [-k FILTER]

It runs the campaign test (`tests/integration/test_fault_campaign.py`, with the batch, faults
and invariants of `tests/campaign.py`) with BATCHX_CAMPAIGN=long: first the peer, the same
mixed batch with no fault, then each fault `--runs` times: the operator SIGKILLed `--kills`
times, the API server restarted and down for 20 s, etcd, the kubelet, the scheduler and the
controller manager restarted, the store restarted and unreachable for `--store-down` seconds,
a job's Pod and a plan ConfigMap deleted. Then it prints one row per fault: batches, jobs,
invariant violations, the worst time from a fault's end to the next job state change, and the
slowest batch's seconds from submission to every job final (compare with the peer's).
A batch that did not finish is a row with its error as the violation. Every violation is
listed below the table; the exit status is 1 if there was any.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.campaign import HEADER, Row

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/integration/test_fault_campaign.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="batches per fault")
    parser.add_argument("--kills", type=int, default=50, help="operator SIGKILLs in one batch")
    parser.add_argument("--store-down", type=float, default=60.0, help="seconds the store is gone")
    parser.add_argument("-k", default="", help="pytest -k filter on the fault names")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bx-chaos-") as tmp:
        report, junit = Path(tmp) / "rows.jsonl", Path(tmp) / "junit.xml"
        env = {
            **os.environ,
            "BATCHX_CAMPAIGN": "long",
            "BATCHX_CAMPAIGN_RUNS": str(args.runs),
            "BATCHX_CHAOS_KILLS": str(args.kills),
            "BATCHX_CHAOS_STORE_DOWN": str(args.store_down),
            "BATCHX_CAMPAIGN_REPORT": str(report),
        }
        command = [sys.executable, "-m", "pytest", TEST, "-q", "-p", "no:cacheprovider"]
        command += [f"--junitxml={junit}", *(["-k", args.k] if args.k else [])]
        subprocess.run(command, cwd=REPO, env=env, check=False)
        rows, reported = _rows(report)
        _unfinished(junit, rows, reported)
    print(f"\n{HEADER}")
    for row in rows.values():
        print(row.line())
    found = [f"{row.fault}: {v}" for row in rows.values() for v in row.violations]
    print(f"\n{len(found)} violations" + "".join(f"\n  {v}" for v in found))
    return 1 if found or not rows else 0


def _rows(report: Path) -> tuple[dict[str, Row], set[str]]:
    """One row per fault from the batches' lines; the test ids of the batches that reported."""
    rows: dict[str, Row] = {}
    reported = set()
    for line in report.read_text().splitlines() if report.exists() else []:
        one = json.loads(line)
        reported.add(f"{one['fault']}-batch{one['batch']}")
        row = rows.setdefault(one["fault"], Row(one["fault"]))
        row.runs += one["runs"]
        row.jobs += one["jobs"]
        row.violations += one["violations"]
        row.recover += one["recover"]
        row.seconds += one["seconds"]
    return rows, reported


def _unfinished(junit: Path, rows: dict[str, Row], reported: set[str]) -> None:
    """A test that failed before its batch was checked: its error is the row's violation."""
    if not junit.exists():
        return
    for case in ET.parse(junit).getroot().iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is None:
            continue
        test_id = case.get("name", "").split("[", 1)[-1].removesuffix("]")
        if test_id in reported:  # checked: its violations are in its row
            continue
        fault = test_id.rsplit("-batch", 1)[0]
        first = (failure.get("message") or "failed").splitlines()[0][:200]
        row = rows.setdefault(fault, Row(fault))
        row.runs += 1
        row.violations.append(f"the batch did not finish: {first}")


if __name__ == "__main__":
    sys.exit(main())
