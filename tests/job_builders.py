"""Builders for job planning tests: jobs, image candidates, requests and pods with a status.

job = make_bx_job().image("hello:^1.0").gpus(1).model()
pod = PodBuilder.of(job_ref, request).started(T0).job_exited(3, at=T0 + 10s).finished()
"""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any, Self

from batchx.domain.coordinates import parse_coordinates
from batchx.models import Job
from batchx.planning.job_admission import ImageCandidate, JobPolicy, Request, judge_job
from batchx.planning.job_pod import JobRef, PodPolicy, plan_pod
from batchx.planning.job_protocol import JOB_CONTAINER, STAGE_IN, STAGE_OUT, RunnerReport
from batchx.settings import Prices
from tests.builders import DIGEST, manifest

JSON = dict[str, Any]
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PRICES = Prices(vcpu_hour=1.0, gb_hour=0.5, gpu_hour=10.0)
POLICY = JobPolicy(prices=PRICES, default_timeout=3600, max_timeout=86400)
POD_POLICY = PodPolicy(runner_image="batchx.local/runner@" + DIGEST)

FILE_INPUT_SCHEMA: JSON = {
    "type": "object",
    "properties": {
        "reads": {"type": "string", "format": "file", "required": True},
        "more": {"type": "array", "items": {"type": "string", "format": "file"}},
        "threads": {"type": "integer", "minimum": 1},
    },
}
FILE_OUTPUT_SCHEMA: JSON = {
    "type": "object",
    "properties": {"result": {"type": "string", "format": "file"}},
    "required": ["result"],
}


def iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def candidate(
    version: str = "1.0.0",
    *,
    env: str = "lab",
    name: str = "tutorial/hello",
    public: bool = False,
    **manifest_fields: Any,
) -> ImageCandidate:
    return ImageCandidate(
        coordinates=parse_coordinates(f"{env}@{name}:{version}"),
        container=f"registry.example/{name}-{version}@{DIGEST}",
        manifest=manifest(name=name, version=version, **manifest_fields),
        public=public,
    )


class BxJobBuilder:
    """A Job model (spec and optional status) built field by field."""

    def __init__(self) -> None:
        self.body: JSON = {"spec": {"image": "tutorial/hello", "input": {}}}

    def image(self, ref: str) -> Self:
        self.body["spec"]["image"] = ref
        return self

    def input(self, **values: Any) -> Self:
        self.body["spec"]["input"] = values
        return self

    def vcpus(self, n: int) -> Self:
        self.body["spec"]["vcpus"] = n
        return self

    def memory(self, mb: int) -> Self:
        self.body["spec"]["memory"] = mb
        return self

    def gpus(self, n: int) -> Self:
        self.body["spec"]["gpus"] = n
        return self

    def gpu_type(self, product: str) -> Self:
        self.body["spec"]["gpuType"] = product
        return self

    def timeout(self, seconds: int) -> Self:
        self.body["spec"]["timeout"] = seconds
        return self

    def cancel(self) -> Self:
        self.body["spec"]["cancel"] = True
        return self

    def status(self, **status: Any) -> Self:
        self.body.setdefault("status", {}).update(status)
        return self

    def model(self) -> Job:
        return Job.model_validate(copy.deepcopy(self.body))


def make_bx_job(image: str = "tutorial/hello") -> BxJobBuilder:
    return BxJobBuilder().image(image)


def request_for(
    job: Job,
    *images: ImageCandidate,
    name: str = "job-1",
    created: str = "2026-01-01T00:00:00Z",
    policy: JobPolicy = POLICY,
) -> Request:
    """The admission Request of a job that is expected to be valid."""
    verdict = judge_job(
        job,
        name=name,
        namespace="lab",
        created=created,
        images=images or (candidate(),),
        policy=policy,
    )
    assert isinstance(verdict, Request), verdict
    return verdict


def _terminated(code: int, reason: str, start: datetime, end: datetime, message: str) -> JSON:
    done: JSON = {
        "exitCode": code,
        "reason": reason,
        "startedAt": iso(start),
        "finishedAt": iso(end),
    }
    if message:
        done["message"] = message
    return {"terminated": done}


class PodBuilder:
    """A planned Pod plus the status the kubelet would report, step by step."""

    def __init__(self, body: JSON) -> None:
        self.body = body
        self.body["status"] = {"phase": "Pending"}
        self._containers: dict[str, JSON] = {}

    @classmethod
    def of(cls, ref: JobRef, request: Request) -> PodBuilder:
        return cls(plan_pod(ref, request, POD_POLICY))

    def _set(self, name: str, state: JSON) -> Self:
        self._containers[name] = {"name": name, "state": state}
        return self

    def started(self, at: datetime = T0) -> Self:
        self.body["status"]["startTime"] = iso(at)
        return self

    def staging(self, at: datetime = T0) -> Self:
        return self._set(STAGE_IN, {"running": {"startedAt": iso(at)}})

    def staged(self, at: datetime = T0, *, code: int = 0, message: str = "") -> Self:
        return self._set(
            STAGE_IN, _terminated(code, "Completed" if code == 0 else "Error", at, at, message)
        )

    def running(self, at: datetime = T0) -> Self:
        self.staged(at)
        self._set(STAGE_OUT, {"running": {"startedAt": iso(at)}})
        self.body["status"]["phase"] = "Running"
        return self._set(JOB_CONTAINER, {"running": {"startedAt": iso(at)}})

    def job_exited(
        self, code: int, *, start: datetime = T0, end: datetime, reason: str = "", message: str = ""
    ) -> Self:
        self.staged(start)
        self._set(STAGE_OUT, {"running": {"startedAt": iso(start)}})
        reason = reason or ("Completed" if code == 0 else "Error")
        return self._set(JOB_CONTAINER, _terminated(code, reason, start, end, message))

    def ended(
        self, code: int, *, start: datetime = T0, end: datetime, reason: str = "", message: str = ""
    ) -> Self:
        """The job's container ended, alone in its pod (the direct path: no runner at all)."""
        reason = reason or ("Completed" if code == 0 else "Error")
        return self._set(JOB_CONTAINER, _terminated(code, reason, start, end, message))

    def uploaded(self, report: RunnerReport | None, *, at: datetime) -> Self:
        message = report.to_json() if report is not None else ""
        state = _terminated(0, "Completed", T0, at, message)
        return self._set(STAGE_OUT, state)

    def deleted(self, at: datetime, grace: int = 30) -> Self:
        """A deletion asked for at `at` (the API server stamps `at + grace`)."""
        self.body["metadata"]["deletionTimestamp"] = iso(at + timedelta(seconds=grace))
        self.body["metadata"]["deletionGracePeriodSeconds"] = grace
        return self

    def finished(self, phase: str = "Succeeded", reason: str = "", message: str = "") -> Self:
        self.body["status"]["phase"] = phase
        if reason:
            self.body["status"]["reason"] = reason
        if message:
            self.body["status"]["message"] = message
        return self

    def evicted(self, at: datetime) -> Self:
        """What the kubelet reports of a pod it evicted at `at` (node under memory pressure)."""
        conditions = self.body["status"].setdefault("conditions", [])
        conditions.append(
            {
                "type": "DisruptionTarget",
                "status": "True",
                "reason": "TerminationByKubelet",
                "lastTransitionTime": iso(at),
            }
        )
        return self.finished("Failed", "Evicted", "The node was low on resource: memory.")

    def build(self) -> JSON:
        body = copy.deepcopy(self.body)
        statuses = list(self._containers.values())
        body["status"]["initContainerStatuses"] = [
            s for s in statuses if s["name"] in (STAGE_IN, STAGE_OUT)
        ]
        body["status"]["containerStatuses"] = [s for s in statuses if s["name"] == JOB_CONTAINER]
        return body


def seconds(n: float) -> timedelta:
    return timedelta(seconds=n)
