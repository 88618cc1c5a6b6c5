"""The site's tolerations and node selector on job Pods (batchx.planning.job_placement)."""

from __future__ import annotations

from typing import Any

from batchx.planning.job_placement import Placement, place

GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
FAKE = {"key": "kwok.x-k8s.io/node", "operator": "Equal", "value": "fake", "effect": "NoSchedule"}


def pod(**spec: Any) -> dict[str, Any]:
    return {"metadata": {"name": "bx-a"}, "spec": {"containers": [{"name": "job"}], **spec}}


def test_no_placement_leaves_the_pod_as_it_is() -> None:
    assert place(pod(), Placement()) == pod()


def test_tolerations_are_appended_and_the_selector_added() -> None:
    placed = place(pod(), Placement([FAKE], {"type": "kwok"}))
    assert placed == pod(tolerations=[FAKE], nodeSelector={"type": "kwok"})


def test_the_jobs_own_needs_are_kept_and_win() -> None:
    gpu_pod = pod(tolerations=[GPU_TOLERATION], nodeSelector={"nvidia.com/gpu.product": "T4"})
    site = Placement([FAKE, GPU_TOLERATION], {"nvidia.com/gpu.product": "L4", "pool": "batch"})
    placed = place(gpu_pod, site)
    assert placed["spec"]["tolerations"] == [GPU_TOLERATION, FAKE]  # not repeated
    assert placed["spec"]["nodeSelector"] == {"nvidia.com/gpu.product": "T4", "pool": "batch"}
    assert gpu_pod["spec"]["tolerations"] == [GPU_TOLERATION]  # the input is not changed
