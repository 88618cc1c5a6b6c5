"""The direct path on the real kubelet: no runner container, output.json through the kubelet.

A job whose output schema lists no file runs in a Pod without stage-out
(`batchx.planning.direct_output`); with no input file either, without any runner container. These
tests run such jobs through the operator and check what the kubelet returns: the output read back
in full up to 4095 bytes, an output of 4096 bytes or more refused with the limit named, and exit
codes judged as on the runner path.
"""

from __future__ import annotations

import pytest
from kopf.testing import KopfRunner
from kubernetes import client

from tests.fixtures_jobs import JobBed
from tests.integration.bx import Bx, condition
from tests.job_lab import Lab, make_env

pytestmark = pytest.mark.cluster

OUTPUT = "/batchx/output/output.json"


@pytest.fixture(scope="module")
def lab(jobs_operator: KopfRunner, module_bx: Bx, job_bed: JobBed) -> Lab:
    lab = make_env(module_bx, job_bed, quota={"cpu": "2", "jobs": 4}, credits=1000)
    # hello-json echoes its input into output.json: the name's length sets the output's size.
    lab.submit("small", "examples/hello-json", {"name": "ada"})
    lab.submit("fits", "examples/hello-json", {"name": "x" * 3900})
    lab.submit("big", "examples/hello-json", {"name": "x" * 5000})
    lab.submit("warn", "examples/exit-warning")
    lab.submit("err", "examples/exit-error")
    return lab


def job_container(pod: client.V1Pod) -> client.V1Container:
    (container,) = pod.spec.containers
    return container


def assert_no_runner(lab: Lab, name: str) -> None:
    pod = lab.pod(name)
    assert pod is not None
    assert pod.spec.init_containers in (None, [])
    container = job_container(pod)
    assert (container.termination_message_path, container.termination_message_policy) == (
        OUTPUT,
        "File",
    )
    assert container.env_from is None
    assert all(v.secret is None for v in pod.spec.volumes)


def test_a_trivial_job_runs_alone_and_its_output_comes_back_through_the_kubelet(lab: Lab) -> None:
    job = lab.wait_done("small")
    status = job["status"]
    assert status["state"] == "SUCCEEDED", status
    assert status["output"] == {"greeting": "hello from job small", "input": {"name": "ada"}}
    assert status["exitCode"] == 0
    assert 0 < status["credits"]["charged"] <= status["credits"]["reserved"]
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("True", "Succeeded")
    assert_no_runner(lab, "small")
    # The kubelet's termination-message file, bind-mounted over the emptyDir, held the output.
    pod = lab.pod("small")
    assert pod is not None
    (state,) = pod.status.container_statuses
    assert '"greeting": "hello from job small"' in state.state.terminated.message


def test_an_output_just_under_4096_bytes_comes_back_whole(lab: Lab) -> None:
    status = lab.wait_done("fits")["status"]
    assert status["state"] == "SUCCEEDED", status["message"]
    assert status["output"]["input"] == {"name": "x" * 3900}


def test_an_output_of_4096_bytes_or_more_is_invalid_and_names_the_limit(lab: Lab) -> None:
    job = lab.wait_done("big")
    status = job["status"]
    assert (status["state"], status["exitCode"]) == ("INVALID_OUTPUT", 0), status
    assert "4096 bytes or more" in status["message"]
    assert "directOutputExcept" in status["message"]
    assert "output" not in status
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert (cond["status"], cond["reason"]) == ("False", "InvalidOutput")


def test_exit_codes_are_judged_as_on_the_runner_path(lab: Lab) -> None:
    warned = lab.wait_done("warn")["status"]
    assert (warned["state"], warned["exitCode"]) == ("WARNING", 3), warned
    assert warned["message"] == "finished with warnings: some records were skipped"
    assert warned["output"] == {"note": "exited with 3 on purpose"}
    assert_no_runner(lab, "warn")
    failed = lab.wait_done("err")["status"]
    assert (failed["state"], failed["exitCode"]) == ("FAILED", 2), failed
    assert failed["message"] == "the reference genome is not indexed"
    assert "output" not in failed
    # (its pod is deleted as soon as the verdict is written, as on the runner path)
