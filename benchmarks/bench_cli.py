"""`bx run` of a trivial job vs the same Job by `kubectl apply` + `kubectl wait` (a script).

    make cluster-up
    .venv/bin/python benchmarks/bench_cli.py [--rounds 5]

Both paths run the `hello-static` example (one static binary, 1 vCPU, 32 MB, no cache) in one
Environment, alternating which goes first each round after one warm-up of each. Times are wall
clock of the whole user-visible command(s), process start-up included: `bx run` checks the job
against the Images (two API reads), creates it and follows it with a watch; the peer is
`kubectl apply -f job.yaml` then `kubectl wait --for=jsonpath={.status.state}=SUCCEEDED`.
Also measured: `bx --help` start-up (goal under 0.3 s), the median of 10.

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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kubernetes import config

from bench_jobs import (
    RUNNER_IMAGE_VARIABLE,
    Operator,
    apply_crds,
    cleanup,
    create_environment,
    job_body,
    say,
    start_store,
)
from testbed import cluster, example_images, kube, paths, product_images
from testbed import s3 as s3bed

BX = str(Path(sys.executable).parent / "bx")
EXAMPLE = "hello-static"


def timed(*commands: list[str], env: dict[str, str], stdin: str | None = None) -> float:
    """Wall seconds of running `commands` one after the other (each must exit 0)."""
    start = time.monotonic()
    for command in commands:
        done = subprocess.run(
            command, input=stdin, capture_output=True, text=True, env=env, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(f"{command[:3]} exited {done.returncode}: {done.stderr[-500:]}")
    return time.monotonic() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BATCHX_"))}
    env["KUBECONFIG"] = str(paths.kubeconfig())
    helps = [timed([BX, "--help"], env=env) for _ in range(10)]
    say(f"{'bx --help':<34} median {statistics.median(helps):.3f} s, max {max(helps):.3f} s")
    # What every cluster verb pays before its first request: Python plus batchx.client's imports.
    loads = [timed([sys.executable, "-c", "import batchx.client"], env=env) for _ in range(5)]
    say(f"{'python + import batchx.client':<34} median {statistics.median(loads):.3f} s")
    if not cluster.status_quiet():
        say("starting the test bed (`make cluster-down` stops it)")
        cluster.up()
    kubectl = str(kube.build_binaries() / "kubectl")
    api = config.new_client_from_config(config_file=str(paths.kubeconfig()))
    workdir = Path(tempfile.mkdtemp(prefix="bench-cli-"))
    apply_crds()
    server, store_env = start_store(workdir)
    lab = f"bench-{uuid.uuid4().hex[:6]}"
    operator: Operator | None = None
    try:
        runner = product_images.build("runner")
        example = example_images.build_example(EXAMPLE)
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
        create_environment(api, lab, [example])
        image = f"{example.manifest['name']}:{example.manifest['version']}"
        bx_run = [
            BX,
            "run",
            "-e",
            lab,
            "-v",
            "1",
            "-m",
            "32",
            "--timeout",
            "300",
            "--no-cache",
            image,
            '{"name": "bench"}',
        ]

        def by_kubectl(n: int) -> float:
            name = f"kubectl-{n}"
            body = {
                **job_body(name, image, {"name": "bench"}),
                "metadata": {"name": name, "namespace": lab},
            }
            return timed(
                [kubectl, "apply", "-f", "-"],
                [
                    kubectl,
                    "wait",
                    "-n",
                    lab,
                    f"bxjob/{name}",
                    "--timeout=180s",
                    "--for=jsonpath={.status.state}=SUCCEEDED",
                ],
                env=env,
                stdin=json.dumps(body),
            )

        timed(bx_run, env=env)
        by_kubectl(0)  # warm-up of each
        bx_times, kubectl_times = [], []
        for n in range(1, args.rounds + 1):
            if n % 2:
                bx_times.append(timed(bx_run, env=env))
                kubectl_times.append(by_kubectl(n))
            else:
                kubectl_times.append(by_kubectl(n))
                bx_times.append(timed(bx_run, env=env))
        bx_median, kubectl_median = statistics.median(bx_times), statistics.median(kubectl_times)
        say(f"{'bx run':<34} median {bx_median:.2f} s  {[round(t, 2) for t in bx_times]}")
        say(
            f"{'kubectl apply + kubectl wait':<34} median {kubectl_median:.2f} s  "
            f"{[round(t, 2) for t in kubectl_times]}"
        )
        say(f"{'ratio bx / kubectl':<34} {bx_median / kubectl_median:.2f}x")
        return 0
    finally:
        cleanup(api, lab, operator)
        s3bed.stop(server)


if __name__ == "__main__":
    sys.exit(main())
