"""Regression tests of the known holes (issue 16 section 4), each on the real test bed.

One operator and one Environment (every example image imported, no quota) serve the module;
each test submits its own jobs under names of its own and checks what a user would see: the
job's status and Events, its Pod, the environment's credits.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes import client

from tests.fixtures_jobs import UPLOAD_GRACE_SECONDS, JobBed
from tests.helpers import eventually
from tests.integration.bx import GROUP, VERSION, Bx, condition
from tests.job_lab import Lab, make_env

pytestmark = pytest.mark.cluster


@pytest.fixture(scope="module")
def lab(jobs_operator: KopfRunner, module_bx: Bx, job_bed: JobBed) -> Lab:
    return make_env(module_bx, job_bed, credits=1000)


def test_deleting_the_image_of_a_running_job_lets_it_run_to_its_end_and_be_charged(
    lab: Lab, job_bed: JobBed
) -> None:
    """The resolution (and the manifest that judges the output) is pinned at admission."""
    image = job_bed.examples["napper"].image_object(lab.name)["metadata"]["name"]
    lab.submit("orphan", "examples/napper", {"seconds": 8}, timeout=120)
    lab.wait_state("orphan", "RUNNING", timeout=120)
    lab.bx.delete_image(lab.name, image)
    eventually(
        lambda: all(i["metadata"]["name"] != image for i in lab.bx.images(lab.name)),
        timeout=30,
        what="the Image gone",
    )
    job = lab.wait_done("orphan", timeout=120)
    status = job["status"]
    cond = condition(job, "Succeeded")
    assert status["state"] == "SUCCEEDED", (cond, lab.runner_logs("orphan"))
    assert status["output"] == {"slept": 8}
    assert status["image"]["coordinates"] == f"{lab.name}@examples/napper:1.0.0"
    assert status["admission"]["resources"] == {"vcpus": 1, "memory": 32, "gpus": 0, "timeout": 120}
    # Charged for the ~8 s it ran at the rate recorded at admission, never beyond the hold.
    rate, charged = status["admission"]["rate"], status["credits"]["charged"]
    assert rate * 7 / 3600 <= charged <= min(rate * 30 / 3600, status["credits"]["reserved"])


def test_an_accepted_image_keeps_its_coordinates_against_a_same_second_duplicate(
    lab: Lab, job_bed: JobBed
) -> None:
    """The newcomer sorts first by name and has the same creationTimestamp (whole seconds).

    The owner's acceptance is written by the test right after creating it (what the operator
    writes: coordinates and Ready=True Accepted), so the owner is accepted before the newcomer
    exists however busy the operator is; both are created within one second (retried if a
    second boundary fell in between).
    """
    example = job_bed.examples["napper"]
    for attempt in range(10):
        spec = {
            "image": example.image.pinned,
            "manifest": {**example.manifest, "name": "holes/dup", "version": f"1.0.{attempt}"},
        }
        owner = lab.bx.create_image(lab.name, f"zz-owner-{attempt}", spec)
        coordinates = f"{lab.name}@holes/dup:1.0.{attempt}"
        accepted = {
            "coordinates": coordinates,
            "baseName": f"{lab.name}@holes/dup",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "True",
                    "reason": "Accepted",
                    "message": f"coordinates {coordinates}",
                    "lastTransitionTime": owner["metadata"]["creationTimestamp"],
                    "observedGeneration": 1,
                }
            ],
            "observedGeneration": 1,
        }
        lab.bx.custom.patch_namespaced_custom_object_status(
            GROUP, VERSION, lab.name, "images", f"zz-owner-{attempt}", {"status": accepted}
        )
        newcomer = lab.bx.create_image(lab.name, f"aa-newcomer-{attempt}", spec)
        if newcomer["metadata"]["creationTimestamp"] == owner["metadata"]["creationTimestamp"]:
            break
    else:
        pytest.fail("no duplicate was created within the owner's second in 10 attempts")
    lab.bx.wait_image(lab.name, f"aa-newcomer-{attempt}", "False", "DuplicateCoordinates")
    kept = lab.bx.image(lab.name, f"zz-owner-{attempt}")
    assert kept["status"]["coordinates"] == coordinates
    ready = condition(kept, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("True", "Accepted")
    assert "coordinates" not in lab.bx.image(lab.name, f"aa-newcomer-{attempt}")["status"]


@pytest.fixture
def stray_namespace(jobs_operator: KopfRunner, module_bx: Bx) -> Iterator[Lab]:
    """A namespace that is no Environment's (made by hand, as a new user might)."""
    name = f"stray-{uuid.uuid4().hex[:6]}"
    module_bx.core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    yield Lab(module_bx, name)
    module_bx.forget_jobs(name)
    module_bx.core.delete_namespace(name)


def test_a_job_outside_any_environment_is_told_why_in_its_status_and_an_event(
    stray_namespace: Lab,
) -> None:
    stray_namespace.submit("lost", "examples/napper", {"seconds": 1})

    def told() -> dict[str, Any] | None:
        job = stray_namespace.job("lost")
        reason = (condition(job, "Succeeded") or {}).get("reason")
        return job if reason == "EnvironmentNotFound" else None

    job = eventually(told, timeout=60, what="the job told EnvironmentNotFound")
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert (job["status"]["state"], cond["status"]) == ("SUBMITTED", "Unknown")
    assert (
        f"namespace {stray_namespace.name} is not the namespace of a ready Environment"
        in (cond["message"])
    )
    assert job["status"]["credits"] == {"reserved": 0, "charged": 0}
    stray_namespace.bx.wait_event(stray_namespace.name, "lost", "EnvironmentNotFound", "Warning")
    assert stray_namespace.pod("lost") is None


def test_a_job_naming_a_missing_file_is_refused_at_admission_with_its_json_path(
    lab: Lab, job_bed: JobBed
) -> None:
    with job_bed.store() as store:
        store.env(lab.name).put_bytes("texts/here.txt", b"one two\n")
    lab.submit("ghost", "examples/wordcount", {"text": "bx://texts/nowhere.txt"})
    job = lab.wait_done("ghost", timeout=60)
    status = job["status"]
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert (status["state"], cond["status"], cond["reason"]) == (
        "FAILED",
        "False",
        "InputFileNotFound",
    )
    assert status["message"] == (
        f"$.spec.input.text: file bx://texts/nowhere.txt does not exist in environment {lab.name}"
    )
    assert status["credits"] == {"reserved": 0, "charged": 0}
    assert "admission" not in status
    assert lab.pod("ghost") is None
    lab.bx.wait_event(lab.name, "ghost", "InputFileNotFound", "Warning")
    # The same job naming a file that exists is admitted and runs (the check reads the index).
    lab.submit("found", "examples/wordcount", {"text": "bx://texts/here.txt"})
    assert lab.wait_done("found")["status"]["state"] == "SUCCEEDED"


def test_a_timed_out_job_that_ignores_sigterm_loses_its_pod_at_the_deadline(lab: Lab) -> None:
    """sleep as PID 1 has no SIGTERM handler: only SIGKILL stops it, and the pod's grace period
    is the upload allowance (30 s on the test bed, 600 s by default)."""
    lab.submit("stubborn", "examples/sleeper", timeout=6)
    job = lab.wait_done("stubborn", timeout=120)
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert (job["status"]["state"], cond["reason"]) == ("FAILED", "Timeout")
    finished = _seconds(job["status"]["finishedAt"])
    eventually(lambda: lab.pod("stubborn") is None, timeout=60, what="the timed-out pod gone")
    # Gone within seconds of the Timeout, not after the upload allowance (UPLOAD_GRACE_SECONDS).
    assert time.time() - finished < UPLOAD_GRACE_SECONDS - 10


def _seconds(stamp: str) -> float:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def gpu_image(lab: Lab, job_bed: JobBed) -> str:
    """An image that supports GPUs (the napper's container): the node has 2 fake T4s."""
    example = job_bed.examples["napper"]
    runtime = {"minMem": 32, "gpus": "supported"}
    manifest = {**example.manifest, "name": "holes/gpu-napper", "runtime": runtime}
    lab.bx.create_image(
        lab.name, "gpu-napper", {"image": example.image.pinned, "manifest": manifest}
    )
    lab.bx.wait_image(lab.name, "gpu-napper", "True", "Accepted")
    return "holes/gpu-napper:1.0.0"


def test_a_gpu_type_no_node_has_is_refused_at_admission_naming_the_types_offered(
    lab: Lab, gpu_image: str
) -> None:
    lab.submit("typo-gpu", gpu_image, {"seconds": 1}, gpus=1, gpuType="A100")
    job = lab.wait_done("typo-gpu", timeout=60)
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert (job["status"]["state"], cond["reason"]) == ("FAILED", "InvalidResources")
    assert job["status"]["message"].startswith("$.spec.gpuType: no node offers gpuType 'A100'")
    assert "the GPU types offered are: T4" in job["status"]["message"]
    assert job["status"]["credits"] == {"reserved": 0, "charged": 0}
    assert lab.pod("typo-gpu") is None
    lab.bx.wait_event(lab.name, "typo-gpu", "InvalidResources", "Warning")


def test_a_gpu_job_no_node_can_take_is_unschedulable_then_failed_at_its_timeout(
    lab: Lab, gpu_image: str
) -> None:
    """Three T4s on a node that has two: admitted (the type exists), never scheduled."""
    lab.submit("greedy-gpu", gpu_image, {"seconds": 1}, gpus=3, gpuType="T4", timeout=15)
    job = lab.wait_state("greedy-gpu", "STARTING", "FAILED", timeout=60)
    eventually(
        lambda: (
            (condition(lab.job("greedy-gpu"), "Succeeded") or {}).get("reason")
            in ("Unschedulable",)
        ),
        timeout=30,
        what="the job Unschedulable",
    )
    lab.bx.wait_event(lab.name, "greedy-gpu", "Unschedulable", "Warning")
    job = lab.wait_done("greedy-gpu", timeout=60)
    cond = condition(job, "Succeeded")
    assert cond is not None
    assert (job["status"]["state"], cond["reason"]) == ("FAILED", "Unschedulable")
    assert "nvidia.com/gpu.product=T4" in job["status"]["message"]
    assert job["status"]["credits"]["charged"] == 0  # its container never ran
    eventually(lambda: lab.pod("greedy-gpu") is None, timeout=60, what="the pending pod gone")


def test_a_job_re_created_under_a_finished_jobs_name_gets_outputs_of_its_own(
    lab: Lab, job_bed: JobBed
) -> None:
    """A GitOps replace: delete the Job, create it again with another input, same name."""
    with job_bed.store() as store:
        files = store.env(lab.name)
        files.put_bytes("texts/first.txt", b"one\n")
        files.put_bytes("texts/second.txt", b"two two\n")
    lab.submit("again", "examples/wordcount", {"text": "bx://texts/first.txt"})
    first = lab.wait_done("again")["status"]
    assert first["state"] == "SUCCEEDED", first
    with job_bed.store() as store:
        files = store.env(lab.name)
        files.copy("jobs/again/output/counts.txt", "kept/first-counts.txt")  # an alias
    lab.bx.custom.delete_namespaced_custom_object(GROUP, VERSION, lab.name, "jobs", "again")
    eventually(lambda: "again" not in [j["metadata"]["name"] for j in lab.bx.jobs(lab.name)])
    with job_bed.store() as store:
        files = store.env(lab.name)
        assert list(files.find("jobs/again/")) == []  # the old job's files went with it
        assert files.read_bytes("kept/first-counts.txt").split() == [b"1", b"one"]

    lab.submit("again", "examples/wordcount", {"text": "bx://texts/second.txt"})
    second = lab.wait_done("again")["status"]
    assert second["state"] == "SUCCEEDED", second
    assert second["output"]["words"] == 2
    with job_bed.store() as store:
        counts = store.env(lab.name).read_bytes("jobs/again/output/counts.txt")
    assert counts.split() == [b"2", b"two"]


def test_a_job_re_created_after_its_namesakes_finalizer_was_bypassed_still_succeeds(
    lab: Lab, job_bed: JobBed
) -> None:
    """`kubectl patch --type merge -p '{"metadata":{"finalizers":null}}'` then delete: the old
    outputs stay behind; the new job's first pod removes them before it runs."""
    with job_bed.store() as store:
        files = store.env(lab.name)
        files.put_bytes("texts/third.txt", b"three\n")
        files.put_bytes("texts/fourth.txt", b"four four four\n")
    lab.submit("bypass", "examples/wordcount", {"text": "bx://texts/third.txt"})
    assert lab.wait_done("bypass")["status"]["state"] == "SUCCEEDED"
    unfinalized = {"metadata": {"finalizers": None}}
    lab.bx.custom.patch_namespaced_custom_object(
        GROUP, VERSION, lab.name, "jobs", "bypass", unfinalized
    )
    lab.bx.custom.delete_namespaced_custom_object(GROUP, VERSION, lab.name, "jobs", "bypass")
    eventually(lambda: "bypass" not in [j["metadata"]["name"] for j in lab.bx.jobs(lab.name)])
    lab.submit("bypass", "examples/wordcount", {"text": "bx://texts/fourth.txt"})
    second = lab.wait_done("bypass")["status"]
    assert second["state"] == "SUCCEEDED", second
    assert second["output"]["words"] == 3
    lab.bx.wait_event(lab.name, "bypass", "StaleFilesRemoved", "Warning")
    with job_bed.store() as store:
        counts = store.env(lab.name).read_bytes("jobs/bypass/output/counts.txt")
    assert counts.split() == [b"3", b"four"]
