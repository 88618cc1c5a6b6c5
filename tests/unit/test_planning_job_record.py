"""The admission record: an admitted job runs, and is charged, by what admission decided."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from batchx.models import Job
from batchx.planning.job_admission import (
    Admit,
    JobPolicy,
    Reason,
    Refusal,
    Request,
    admission_status,
    charge,
)
from batchx.planning.job_record import Admitted, admitted, admitted_request
from batchx.settings import Prices
from tests.job_builders import FILE_INPUT_SCHEMA, FILE_OUTPUT_SCHEMA, candidate, request_for
from tests.job_builders import make_bx_job as job_builder

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
IMAGE = candidate(
    schema={"input": FILE_INPUT_SCHEMA, "output": FILE_OUTPUT_SCHEMA},
    runtime={"minMem": 256, "defaultVcpus": 2},
)


def _admitted_job() -> tuple[Job, Request]:
    """A job as the API holds it right after admission wrote STARTING."""
    spec = job_builder("tutorial/hello").timeout(600).input(reads="bx://data/r1.fq")
    request = request_for(spec.model(), IMAGE, name="align")
    status = admission_status(spec.model(), Admit(request), generation=1, now=NOW)
    return spec.status(**status.to_json()).model(), request


def test_the_record_holds_resources_rate_and_image_as_admission_decided() -> None:
    job, request = _admitted_job()
    assert job.status is not None
    assert job.status.admission is not None
    assert job.status.admission.to_json() == {
        "resources": {"vcpus": 2, "memory": 256, "gpus": 0, "timeout": 600},
        "rate": float(request.rate),
        "admittedAt": "2026-03-01T12:00:00Z",
    }
    decision = admitted(job, IMAGE.manifest)
    assert isinstance(decision, Admitted)
    assert (decision.image, decision.resources, decision.rate) == (
        request.image,
        request.resources,
        request.rate,
    )


def test_a_job_without_a_record_is_left_to_judging() -> None:
    job = job_builder("tutorial/hello").model()
    assert admitted(job, IMAGE.manifest) is None


def test_the_recorded_rate_is_charged_whatever_the_prices_are_now() -> None:
    """Prices are read once, at admission: a later price change moves no running job's charge."""
    job, request = _admitted_job()
    decision = admitted(job, IMAGE.manifest)
    assert isinstance(decision, Admitted)
    dearer = request_for(
        job_builder("tutorial/hello").timeout(600).input(reads="bx://data/r1.fq").model(),
        IMAGE,
        policy=JobPolicy(prices=Prices(vcpu_hour=100.0, gb_hour=50.0)),
    )
    assert dearer.rate != decision.rate
    assert charge(decision.rate, 600, 360) == (request.rate / 10).quantize(Decimal("0.000001"))


def test_the_pod_request_is_rebuilt_from_the_record_with_the_input_files() -> None:
    job, request = _admitted_job()
    decision = admitted(job, IMAGE.manifest)
    assert isinstance(decision, Admitted)
    rebuilt = admitted_request(
        job, decision, name="align", created=request.created, reserved=request.reservation
    )
    assert isinstance(rebuilt, Request)
    assert rebuilt == request
    assert [f.target for f in rebuilt.files] == ["data/r1.fq"]


def test_an_unreadable_manifest_copy_is_refused_not_guessed() -> None:
    job, _ = _admitted_job()
    verdict = admitted(job, {"name": "tutorial/hello"})
    assert isinstance(verdict, Refusal)
    assert verdict.reason is Reason.IMAGE_NOT_FOUND
