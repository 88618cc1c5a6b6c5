"""A 2-step pipeline vs the same two jobs run by hand with `bx run` (a script).

    make cluster-up
    .venv/bin/python benchmarks/bench_pipeline.py [--rounds 3]

The pipeline is the `count-all` example on one text: its container (Python and batchx.client
in the pod, testbed/pipeline_images.py) runs wordcount on the text, then merge-counts on the
counts file, and returns. The peer runs the same two steps from this machine: `bx run
examples/wordcount`, then `bx run examples/merge-counts` on the first one's counts file, as a
user would. Each round stores new texts (so no step is served from the cache) and alternates
which path goes first, after one warm-up of each. Times are wall clock of the user-visible
commands (`bx run` of the pipeline; the two `bx run`), process start-up included.

The test bed, MinIO, the runner and example images and the operator are set up (and removed at
the end) as in bench_jobs.py, whose helpers this reuses.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client, config

from batchx.store import open_store
from bench_jobs import (
    GROUP,
    RUNNER_IMAGE_VARIABLE,
    VERSION,
    Operator,
    apply_crds,
    cleanup,
    create_environment,
    say,
    start_store,
    wait,
)
from testbed import cluster, example_images, paths, pipeline_images, product_images
from testbed import s3 as s3bed

BX = str(Path(sys.executable).parent / "bx")


def bx_run(env: dict[str, str], lab: str, image: str, payload: dict[str, Any]) -> dict[str, Any]:
    done = subprocess.run(
        [BX, "run", "-e", lab, "--timeout", "600", image, json.dumps(payload)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"bx run {image} exited {done.returncode}: {done.stderr[-800:]}")
    output: dict[str, Any] = json.loads(done.stdout)
    return output


def _rounded(times: list[float]) -> list[float]:
    return [round(t, 2) for t in times]


def main() -> int:  # noqa: PLR0915 - one script, set up, measured and torn down in order
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if not cluster.status_quiet():
        say("starting the test bed (`make cluster-down` stops it)")
        cluster.up()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BATCHX_"))}
    env["KUBECONFIG"] = str(paths.kubeconfig())
    api = config.new_client_from_config(config_file=str(paths.kubeconfig()))
    custom = client.CustomObjectsApi(api)
    workdir = Path(tempfile.mkdtemp(prefix="bench-pipeline-"))
    apply_crds()
    server, store_env = start_store(workdir)
    lab = f"bench-{uuid.uuid4().hex[:6]}"
    operator: Operator | None = None
    try:
        runner = product_images.build("runner")
        examples = [example_images.build_example(n) for n in ("wordcount", "merge-counts")]
        pipeline = pipeline_images.build("count-all", runner)
        operator = Operator(
            {
                **store_env,
                "KUBECONFIG": env["KUBECONFIG"],
                "BATCHX_LIVENESS_ENDPOINT": "",
                "BATCHX_READINESS_ENDPOINT": "",
                RUNNER_IMAGE_VARIABLE: runner.pinned,
            },
            workdir / "operator.log",
        )
        create_environment(api, lab, examples)
        for body in (pipeline.image_object(lab),):
            custom.create_namespaced_custom_object(GROUP, VERSION, lab, "images", body)
        for body in (pipeline.image_object(lab),):
            name = body["metadata"]["name"]
            wait(
                f"Image {name} Ready",
                lambda n=name: any(
                    c.get("type") == "Ready" and c.get("status") == "True"
                    for c in (
                        custom.get_namespaced_custom_object(GROUP, VERSION, lab, "images", n).get(
                            "status"
                        )
                        or {}
                    ).get("conditions", [])
                ),
                90,
                interval=0.2,
            )
        previous = {k: os.environ.get(k) for k in store_env}
        os.environ.update(store_env)
        store = open_store(store_env["BATCHX_STORE"])
        for key, value in previous.items():
            if value is None:
                os.environ.pop(key, None)

        def text() -> str:
            path = f"texts/{uuid.uuid4().hex[:12]}.txt"
            store.env(lab).put_bytes(path, f"a b c {uuid.uuid4().hex}\n".encode())
            return f"bx://{path}"

        def by_pipeline() -> float:
            start = time.monotonic()
            out = bx_run(env, lab, "examples/count-all", {"texts": [text()]})
            assert out["words"] == 4, out
            return time.monotonic() - start

        def by_hand() -> float:
            start = time.monotonic()
            counted = bx_run(env, lab, "examples/wordcount", {"text": text()})
            merged = bx_run(env, lab, "examples/merge-counts", {"counts": [counted["counts"]]})
            assert merged["words"] == 4, merged
            return time.monotonic() - start

        by_pipeline()
        by_hand()  # warm-up of each
        piped, manual = [], []
        for n in range(args.rounds):
            if n % 2:
                manual.append(by_hand())
                piped.append(by_pipeline())
            else:
                piped.append(by_pipeline())
                manual.append(by_hand())
        p, m = statistics.median(piped), statistics.median(manual)
        say(f"{'2-step pipeline (bx run count-all)':<40} median {p:.2f} s  {_rounded(piped)}")
        say(f"{'the 2 steps by hand (2 x bx run)':<40} median {m:.2f} s  {_rounded(manual)}")
        say(f"{'ratio pipeline / by hand':<40} {p / m:.2f}x")
        store.close()
        return 0
    finally:
        cleanup(api, lab, operator)
        s3bed.stop(server)


if __name__ == "__main__":
    sys.exit(main())
