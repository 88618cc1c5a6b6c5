"""The admission record read back: what an admitted job runs with, without judging it again.

Admission (`batchx.planning.job_admission`) resolves the image, validates the input, applies the
resource rules and prices the job once, and stores the decision in the Job's status in the same
write that moves it to ``STARTING``: ``status.image`` (coordinates, digest-pinned container),
``status.admission`` (resources, rate, the place of a cache key) and ``status.credits.reserved``.
From then on the job's reconcile reads that record back. Nothing that happens to the Image
afterwards (deleted, re-imported) or to the operator's configuration (prices, maximum timeout)
changes what an admitted job runs, how long it may run, or what it is charged.

Only the manifest is not in the record (it can be large and is the Image's): the job's output
is judged by the manifest it was admitted with, which the immutable plan ConfigMap keeps as
``manifest.json`` from the moment the pod is planned. Before that (a job admitted by an operator
that died before creating its pod) the pinned coordinates are looked up exactly once more; an
Image deleted in that window ends the job ``ImageNotFound`` before anything ran or was charged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from batchx.domain.manifest import CompiledManifest, ManifestError, compile_manifest
from batchx.domain.validation import FileMode
from batchx.models import Job, JobImage
from batchx.planning.job_admission import Reason, Refusal, Request, Resources, rate_of

__all__ = ["Admitted", "admitted", "admitted_request"]


@dataclass(frozen=True)
class Admitted:
    """An admitted job's decision, as recorded: what tracking its pod needs."""

    image: JobImage
    resources: Resources
    rate: Decimal
    manifest: CompiledManifest
    document: Mapping[str, Any] = field(compare=False, repr=False)

    @classmethod
    def of_request(cls, request: Request) -> Admitted:
        """The decision of a job judged again (one admitted before decisions were recorded)."""
        return cls(
            request.image,
            request.resources,
            request.rate,
            request.manifest,
            request.manifest_document,
        )


def admitted(job: Job, manifest: Mapping[str, Any]) -> Admitted | Refusal | None:
    """The recorded decision with the pinned `manifest`; None for a job with no record.

    A job without ``status.admission`` was admitted by an operator that did not record it (or
    was never admitted): the caller judges it instead.
    """
    status = job.status
    if status is None or status.admission is None or status.image is None:
        return None
    try:
        compiled = compile_manifest(dict(manifest))
    except ManifestError as err:  # the plan's copy was accepted at admission: only a hand edit
        return Refusal(
            Reason.IMAGE_NOT_FOUND,
            "$.status.image",
            f"the manifest of {status.image.coordinates} is no longer readable: {err.problems[0]}",
        )
    return Admitted(
        image=status.image,
        resources=Resources.of_model(status.admission.resources),
        rate=rate_of(status.admission),
        manifest=compiled,
        document=manifest,
    )


def admitted_request(
    job: Job, decision: Admitted, *, name: str, created: str, reserved: Decimal
) -> Request | Refusal:
    """The `Request` to plan the job's pod from: the record plus the input's file references.

    The input was validated at admission against this same manifest; it is read again only to
    locate its files (once, when the pod is planned), so it cannot fail unless the plan's
    manifest was edited by hand.
    """
    checked = decision.manifest.input.validate(job.spec.input, FileMode.BX)
    if not checked.ok:
        first = checked.problems[0].under("$.spec.input")
        return Refusal(Reason.INVALID_INPUT, first.path, first.message)
    return Request(
        name=name,
        created=created,
        image=decision.image,
        manifest=decision.manifest,
        resources=decision.resources,
        files=checked.files,
        rate=decision.rate,
        reservation=reserved,
        manifest_document=decision.document,
    )
