"""A test Environment for job tests: submit Jobs and wait for their states on the real cluster.

`make_env` creates an Environment with every example image imported (testbed.example_images);
`Bx.clean_up` deletes it after the module.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Any

from kubernetes import client
from kubernetes.client.rest import ApiException

from batchx.planning.job_pod import pod_name
from batchx.planning.job_protocol import STAGE_IN, STAGE_OUT
from tests.fixtures_jobs import JobBed
from tests.helpers import eventually
from tests.integration.bx import GROUP, VERSION, Bx

JSON = dict[str, Any]
TERMINAL = {"SUCCEEDED", "WARNING", "FAILED", "CANCELLED", "OUT_OF_MEMORY", "INVALID_OUTPUT"}
JOB_TIMEOUT = 240  # seconds a test waits for a job of the batch (they queue two at a time)


@dataclass
class Lab:
    """The module's Environment, with every example image imported."""

    bx: Bx
    name: str

    def submit(self, name: str, image: str, input: JSON | None = None, **spec: Any) -> str:
        """Create a Job; it runs (``cache: false``) unless `spec` says ``cache=True``: most
        tests submit the same image and input again and mean a pod to run each time."""
        spec.setdefault("cache", False)
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "Job",
            "metadata": {"name": name},
            "spec": {"image": image, "input": input or {}, **spec},
        }
        self.bx.custom.create_namespaced_custom_object(GROUP, VERSION, self.name, "jobs", body)
        return name

    def job(self, name: str) -> JSON:
        result: JSON = self.bx.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.name, "jobs", name
        )
        return result

    def wait_state(self, name: str, *states: str, timeout: float = JOB_TIMEOUT) -> JSON:
        def probe() -> JSON | None:
            job = self.job(name)
            return job if (job.get("status") or {}).get("state") in states else None

        return eventually(probe, timeout=timeout, what=f"job {name} in {states}")

    def wait_done(self, name: str, timeout: float = JOB_TIMEOUT) -> JSON:
        return self.wait_state(name, *TERMINAL, timeout=timeout)

    def runner_logs(self, name: str) -> str:
        """What the runner containers of the job's pod said (for a failure's message)."""
        logs = []
        for container in (STAGE_IN, STAGE_OUT):
            try:
                text = self.bx.core.read_namespaced_pod_log(
                    pod_name(name), self.name, container=container
                )
            except ApiException as exc:
                text = f"<{exc.status} {exc.reason}>"
            logs.append(f"--- {container}:\n{text}")
        return "\n".join(logs)

    def pod(self, name: str) -> client.V1Pod | None:
        try:
            return self.bx.core.read_namespaced_pod(f"bx-{name}", self.name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise


def make_env(bx: Bx, job_bed: JobBed, **spec: Any) -> Lab:
    name = bx.create_environment(f"jobs-{uuid.uuid4().hex[:6]}", **spec)
    bx.wait_ready(name)
    lab = Lab(bx, name)
    for example in job_bed.examples.values():
        body = example.image_object(name)
        bx.custom.create_namespaced_custom_object(GROUP, VERSION, name, "images", body)
    for example in job_bed.examples.values():
        bx.wait_image(name, example.image_object(name)["metadata"]["name"], "True", "Accepted")
    return lab
