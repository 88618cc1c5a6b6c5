"""The fault campaign's long variant, as one command (a script, not a test): `make chaos`.

    make cluster-up
    .venv/bin/python benchmarks/chaos.py [--runs 1] [--kills 50] [--store-down 60]
        [--fault NAME]... [--rows FILE] [--list]

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

The whole campaign holds the shared cluster for an hour or more; `--fault NAME` (repeatable;
`--list` prints the names) runs only those faults, and `--rows FILE` keeps the batches' rows in
FILE, appended to by each run and printed whole, so that the campaign can be run as several short
sessions (each under the cluster lock) that add up to one table:

    for f in "no fault (the peer)" "operator SIGKILL" ...; do
        flock /tmp/batchx-cluster.lock $PY benchmarks/chaos.py --rows rows.jsonl --fault "$f"
    done
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.campaign import HEADER, Row, long_faults

REPO = Path(__file__).resolve().parents[1]
TEST = "tests/integration/test_fault_campaign.py"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=1, help="batches per fault")
    parser.add_argument("--kills", type=int, default=50, help="operator SIGKILLs in one batch")
    parser.add_argument("--store-down", type=float, default=60.0, help="seconds the store is gone")
    parser.add_argument("-k", default="", help="pytest -k filter on the fault names")
    names = [f.name for f in long_faults()]
    parser.add_argument(
        "--fault",
        action="append",
        default=[],
        choices=names,
        metavar="NAME",
        help="run only this fault (repeatable; default: every one, see --list)",
    )
    parser.add_argument("--rows", type=Path, help="keep the rows in FILE, appended to each run")
    parser.add_argument("--list", action="store_true", help="print the faults' names and exit")
    args = parser.parse_args()
    if args.list:
        print("\n".join(names))
        return 0
    with tempfile.TemporaryDirectory(prefix="bx-chaos-") as tmp:
        report, junit = args.rows or Path(tmp) / "rows.jsonl", Path(tmp) / "junit.xml"
        earlier = len(report.read_text().splitlines()) if report.exists() else 0
        env = {
            **os.environ,
            "BATCHX_CAMPAIGN": "long",
            "BATCHX_CAMPAIGN_RUNS": str(args.runs),
            "BATCHX_CHAOS_KILLS": str(args.kills),
            "BATCHX_CHAOS_STORE_DOWN": str(args.store_down),
            "BATCHX_CAMPAIGN_REPORT": str(report),
            "BATCHX_CAMPAIGN_FAULTS": "\n".join(args.fault),
        }
        command = [sys.executable, "-m", "pytest", TEST, "-q", "-p", "no:cacheprovider"]
        command += [f"--junitxml={junit}", *(["-k", args.k] if args.k else [])]
        subprocess.run(command, cwd=REPO, env=env, check=False)
        lines = _lines(report)
        lines += _unfinished(junit, {f"{o['fault']}-batch{o['batch']}" for o in lines[earlier:]})
        if args.rows:  # the unfinished too, for the table of every session
            report.write_text("".join(json.dumps(one) + "\n" for one in lines))
    rows = _rows(lines)
    print(f"\n{HEADER}")
    for row in rows.values():
        print(row.line())
    found = [f"{row.fault}: {v}" for row in rows.values() for v in row.violations]
    print(f"\n{len(found)} violations" + "".join(f"\n  {v}" for v in found))
    return 1 if found or not rows else 0


def _lines(report: Path) -> list[dict[str, Any]]:
    """The batches' lines, one JSON object each (a Row's fields, its batch and seed)."""
    text = report.read_text() if report.exists() else ""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def _rows(lines: list[dict[str, Any]]) -> dict[str, Row]:
    """One row per fault, in the order the faults first ran."""
    rows: dict[str, Row] = {}
    for one in lines:
        row = rows.setdefault(one["fault"], Row(one["fault"]))
        row.runs += one["runs"]
        row.jobs += one["jobs"]
        row.violations += one["violations"]
        row.recover += one["recover"]
        row.seconds += one["seconds"]
    return rows


def _unfinished(junit: Path, reported: set[str]) -> list[dict[str, Any]]:
    """A line for each test that failed before its batch was checked: its error as violation."""
    if not junit.exists():
        return []
    out = []
    for case in ET.parse(junit).getroot().iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        if failure is None:
            continue
        test_id = case.get("name", "").split("[", 1)[-1].removesuffix("]")
        if test_id in reported:  # checked: its violations are in its line
            continue
        fault, _, batch = test_id.rpartition("-batch")
        first = (failure.get("message") or "failed").splitlines()[0][:200]
        row = Row(fault, runs=1, violations=[f"the batch did not finish: {first}"])
        out.append({**dataclasses.asdict(row), "batch": batch, "seed": None})
    return out


if __name__ == "__main__":
    sys.exit(main())
