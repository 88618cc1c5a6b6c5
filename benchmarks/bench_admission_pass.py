"""The operator's share of one admission pass, with N finished Jobs in the namespace vs none.

    .venv/bin/python benchmarks/bench_admission_pass.py [--finished 10000] [--passes 5]

Runs the real `admission_pass` (judging, the cache step with a local store, the ledger, FIFO
admission and the status write) in this process, against a stand-in for the API server that
answers from memory: the job list is decoded from JSON text at every call, as the API client
decodes a response. So the numbers are the operator's own CPU per pass (decoding the list,
reading every job, the ledger's per-job reads) and exclude the API server's time to serialise
and send the list; `benchmarks/bench_cache.py --finished N` measures the whole thing on the
test bed. Each pass admits one new job (its status write echoed), next to N finished jobs that
carry the fields a real finished job has (admission record, cache key, output, conditions,
Kopf's annotations, the finished labels) and N charge records (a finished job's ledger
record). The stand-in answers label selectors as the API server would: the pass lists only
unfinished jobs (``!batchx.io/finished``), and the cache step its keys' entries (none here).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from tests.builders import DIGEST, manifest

from batchx.planning.labels import CACHE_KEY, FINISHED, UNFINISHED
from batchx.reconcile.admission import admission_pass
from batchx.reconcile.context import Context, Outcome
from batchx.settings import Settings
from batchx.store import open_store

JSON = dict[str, Any]
NS = "lab"
STAMP = "2026-12-02T00:00:00Z"


def finished_job(i: int) -> JSON:
    name = f"done-{i:05d}"
    conditions = [
        {
            "type": t,
            "status": "True" if t in ("Succeeded", "Ready") else "False",
            "reason": "Succeeded",
            "message": "the job exited 0",
            "lastTransitionTime": STAMP,
            "observedGeneration": 1,
        }
        for t in ("Succeeded", "Ready", "Reconciling", "Stalled")
    ]
    return {
        "apiVersion": "batchx.io/v1alpha1",
        "kind": "Job",
        "metadata": {
            "name": name,
            "namespace": NS,
            "uid": f"uid-{i:05d}",
            "generation": 1,
            "resourceVersion": str(1000 + i),
            "creationTimestamp": STAMP,
            "finalizers": ["batchx.io/finalizer"],
            "labels": {FINISHED: "SUCCEEDED", CACHE_KEY: f"{i:063x}"},
            "annotations": {"batchx.io/last-handled-configuration": "{" + "x" * 200 + "}"},
        },
        "spec": {"image": "tutorial/hello:1.0.0", "input": {"who": f"old-{i}"}, "cache": True},
        "status": {
            "state": "SUCCEEDED",
            "image": {
                "coordinates": f"{NS}@tutorial/hello:1.0.0",
                "container": f"registry.example/hello@{DIGEST}",
            },
            "admission": {
                "resources": {"vcpus": 1, "memory": 64, "gpus": 0, "timeout": 60},
                "rate": 1,
                "cacheKey": f"sha256:{i:064x}",
                "admittedAt": STAMP,
            },
            "output": {"greeting": f"hello old-{i}"},
            "exitCode": 0,
            "credits": {"reserved": 0, "charged": 0.01},
            "startedAt": STAMP,
            "finishedAt": STAMP,
            "podName": f"bx-{name}",
            "conditions": conditions,
            "observedGeneration": 1,
        },
    }


def charge_record(i: int) -> JSON:
    return {
        "metadata": {"name": f"bx-charge-uid-{i:05d}", "namespace": NS, "labels": {}},
        "data": {"jobUid": f"uid-{i:05d}", "jobName": f"done-{i:05d}", "amount": "0.01"},
    }


class ApiStandIn:
    """Answers the pass's reads from memory; the job list is JSON text decoded per call."""

    def __init__(self, finished: int) -> None:
        self.jobs_text = json.dumps([finished_job(i) for i in range(finished)])
        self.records_text = json.dumps([charge_record(i) for i in range(finished)])
        self.new: JSON | None = None
        self.image = {
            "metadata": {"name": "hello-1-0-0", "namespace": NS},
            "spec": {
                "image": f"registry.example/hello@{DIGEST}",
                "manifest": manifest(name="tutorial/hello", version="1.0.0"),
            },
            "status": {
                "coordinates": f"{NS}@tutorial/hello:1.0.0",
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }

    async def get_cluster_object(self, plural: str, name: str) -> JSON:
        return {"metadata": {"name": name}, "spec": {"credits": 1e9}, "status": {"namespace": NS}}

    async def list_objects(
        self, plural: str, namespace: str, selector: str | None = None
    ) -> list[JSON]:
        if plural == "images":
            return [json.loads(json.dumps(self.image))]
        new = [json.loads(json.dumps(self.new))] if self.new else []
        if selector == UNFINISHED:  # the finished jobs are labelled: the new job alone
            return new
        # Any other selector (the cache's entries: a key no finished job has) or none: every
        # job is decoded, as the API server would send them all (`--unlabelled`).
        items: list[JSON] = json.loads(self.jobs_text) if selector is None else []
        return [*items, *new]

    async def list_all_namespaces(self, *_: Any, **__: Any) -> list[JSON]:
        return []

    async def list_config_maps(self, *_: Any, **__: Any) -> list[JSON]:
        records: list[JSON] = json.loads(self.records_text)
        return records

    async def patch_status(
        self, plural: str, namespace: str, name: str, patch: JSON, **_: Any
    ) -> JSON:
        assert self.new is not None
        self.new = {**self.new, "status": patch}
        return self.new


def new_job(n: int) -> JSON:
    return {
        "metadata": {
            "name": f"new-{n}",
            "namespace": NS,
            "uid": f"uid-new-{n}",
            "generation": 1,
            "resourceVersion": "1",
            "creationTimestamp": STAMP,
        },
        "spec": {"image": "tutorial/hello:1.0.0", "input": {"who": f"new-{n}"}, "cache": True},
    }


def measure(finished: int, passes: int, store_dir: Path) -> list[float]:
    api = ApiStandIn(finished)
    url = f"file://{store_dir / str(finished)}"
    settings = Settings.load(
        {"BATCHX_STORE": url, "BATCHX_RUNNER_IMAGE": f"registry.example/runner@{DIGEST}"}
    )
    with open_store(url) as store:
        ctx = Context(settings=settings, kube=api, store=store)  # type: ignore[arg-type]
        seconds = []
        for n in range(passes + 1):  # the first pass warms imports and caches: not counted
            api.new = new_job(n)
            started = time.perf_counter()
            admitted = [a.job.name for a in asyncio.run(admission_pass(ctx, NS, Outcome()))]
            took = time.perf_counter() - started
            if admitted != [f"new-{n}"]:
                raise SystemExit(f"pass {n} admitted {admitted}, not new-{n}")
            if n:
                seconds.append(took)
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--finished", type=int, default=10000)
    parser.add_argument("--passes", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-pass-") as tmp:
        results = {n: measure(n, args.passes, Path(tmp)) for n in (0, args.finished)}
    for n, values in results.items():
        print(
            f"admission pass, {n:>6} finished jobs: n={len(values)}  "
            f"median {statistics.median(values) * 1000:8.1f} ms  max {max(values) * 1000:8.1f} ms"
        )
    base, many = (statistics.median(v) for v in results.values())
    print(f"  {args.finished} finished jobs add {(many - base) * 1000:.0f} ms per pass")
    return 0


if __name__ == "__main__":
    sys.exit(main())
