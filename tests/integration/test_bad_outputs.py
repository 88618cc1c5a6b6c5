"""Bad ``output.json`` from a real image on the test bed (issue 16: bad input), end to end.

The whole corpus runs against the runner's code in tests/unit/test_runner_output_corpus.py;
here a busybox image writes a few of its worst cases for real (into the Pod's emptyDir, as
the user's container, with the runner image's sidecar reading them), once through each
stage-out path: the store-backed one (an output schema with a file field) and the storeless
one (none). Each job must end INVALID_OUTPUT with the message the unit corpus promises, its
charge for the run, and the sidecar must have reported (no crash, no hang until its grace).

The storeless sidecar only runs with the operator's ``directOutput`` off: on the direct path (the
default for an output that lists no file, `batchx.planning.direct_output`) the kubelet returns
output.json itself, a file it mounts there (a folder or a pipe cannot be made at its path, and an
output of 4096 bytes or more is refused by its size): tests/integration/test_job_direct_output.py.
This module's operator runs with ``directOutput: false``.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kopf.testing import KopfRunner

from testbed import images
from tests.fixtures_cluster import Cluster
from tests.fixtures_jobs import JobBed, run_jobs_operator
from tests.integration.bx import Bx, condition
from tests.job_lab import Lab, make_env

pytestmark = pytest.mark.cluster

JSON = dict[str, Any]
NAME = "corpus/bad-outputs"
# Writes the output the input's "mode" names (busybox sh; input.json is compact JSON).
SCRIPT = b"""#!/bin/sh
set -eu
mode=$(sed -n 's/.*"mode":"\\([a-z-]*\\)".*/\\1/p' /batchx/input/input.json)
out=/batchx/output
echo "bad-outputs: $mode"
case "$mode" in
  nan) printf '{"n": NaN}' > $out/output.json ;;
  list) printf '[1, 2]' > $out/output.json ;;
  huge) dd if=/dev/zero of=$out/output.json bs=1048576 count=100 2>/dev/null ;;
  deep) head -c 100000 /dev/zero | tr '\\0' '[' > $out/output.json ;;
  folder) mkdir $out/output.json ;;
  pipe) mkfifo $out/output.json ;;
  duplicate) printf '{"n": 1, "n": 2}' > $out/output.json ;;
  link) ln -s /proc/self/environ $out/leak.txt
        printf '{"file": "/batchx/output/leak.txt"}' > $out/output.json ;;
  outside) printf '{"file": "/etc/passwd"}' > $out/output.json ;;
  bx) printf '{"file": "bx://texts/someone-elses.txt"}' > $out/output.json ;;
esac
"""
MODES = ["nan", "list", "huge", "deep", "folder", "pipe", "duplicate", "link", "outside", "bx"]


def _manifest(name: str, output: JSON) -> JSON:
    return {
        "name": name,
        "version": "1.0.0",
        "title": "Writes a bad output.json",
        "author": "corpus",
        "changeLog": "first",
        "schema": {
            "input": {"type": "object", "properties": {"mode": {"type": "string", "enum": MODES}}},
            "output": output,
        },
        "runtime": {"minMem": 32},
    }


WITH_FILES = _manifest(
    NAME,
    {
        "type": "object",
        "properties": {"n": {"type": "number"}, "file": {"type": "string", "format": "file"}},
    },
)
STORELESS = _manifest(NAME + "-storeless", {"type": "object", "properties": {"n": {}}})

# (mode, image, the fragment of status.message) - the same words as the unit corpus.
CASES = [
    ("nan", NAME + "-storeless", "/batchx/output/output.json is not usable JSON: NaN is not"),
    ("list", NAME + "-storeless", "must hold a JSON object, got list"),
    ("huge", NAME, "/batchx/output/output.json is larger than 4 MiB"),
    ("deep", NAME + "-storeless", "/batchx/output/output.json is nested too deeply to read"),
    ("folder", NAME + "-storeless", "/batchx/output/output.json is not a regular file"),
    ("pipe", NAME + "-storeless", "/batchx/output/output.json is not a regular file"),
    ("duplicate", NAME, "the key 'n' appears twice in one object"),
    ("link", NAME, "$.file: output /batchx/output/leak.txt is a symbolic link"),
    ("outside", NAME, "$.file: file reference '/etc/passwd'"),
    ("bx", NAME, "$.file: output file 'bx://texts/someone-elses.txt' is not under"),
]


@pytest.fixture(scope="module")
def jobs_operator(job_bed: JobBed, kubeconfig: str, batchx_crds: list[str]) -> Iterator[KopfRunner]:
    """The jobs' operator (tests.fixtures_jobs) with the direct path off: every job gets a
    stage-out sidecar, the storeless one for an output without files."""
    yield from run_jobs_operator(job_bed, kubeconfig, BATCHX_DIRECT_OUTPUT="false")


@pytest.fixture(scope="module")
def lab(jobs_operator: KopfRunner, module_bx: Bx, job_bed: JobBed, cluster: Cluster) -> Lab:
    lab = make_env(module_bx, job_bed, credits=1000)
    spec = images.ImageSpec(
        "corpus/bad-outputs",
        "1.0.0",
        [*images.busybox_entries(), images.Entry("bad-outputs.sh", data=SCRIPT, mode=0o755)],
        entrypoint=["/bin/sh", "/bad-outputs.sh"],
    )
    built = cluster.load_image(spec)
    for manifest in (WITH_FILES, STORELESS):
        name = manifest["name"].replace("/", "-")
        body = {"image": built.pinned, "manifest": manifest}
        module_bx.create_image(lab.name, name, body)
        module_bx.wait_image(lab.name, name, "True", "Accepted")
    return lab


@pytest.mark.parametrize(("mode", "image", "says"), CASES, ids=[c[0] for c in CASES])
def test_a_real_image_writing_a_bad_output_ends_invalid_output_with_the_reason(
    lab: Lab, mode: str, image: str, says: str
) -> None:
    name = f"out-{mode}"
    lab.submit(name, image, {"mode": mode}, timeout=120)
    job = lab.wait_done(name, timeout=180)
    status = job["status"]
    assert status["state"] == "INVALID_OUTPUT", (status, lab.runner_logs(name))
    assert says in status["message"], (status["message"], lab.runner_logs(name))
    assert condition(job, "Succeeded")["reason"] == "InvalidOutput"  # type: ignore[index]
    assert status["exitCode"] == 0
    # INVALID_OUTPUT is the sidecar's report: had it crashed or hung, the job would have ended
    # FAILED OutputUploadFailed. The run is charged, never beyond its reservation.
    assert 0 <= status["credits"]["charged"] <= status["credits"]["reserved"]
