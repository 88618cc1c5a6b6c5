"""Manifest check used by Image planning: the domain core's validation, reduced to one verdict."""

from __future__ import annotations

from typing import Any

from batchx.domain.coordinates import Coordinates, CoordinatesError
from batchx.domain.manifest import check_manifest as domain_check
from batchx.planning.image import ManifestProblem

ROOT = "$.spec.manifest"


def check_manifest(manifest: dict[str, Any], environment: str) -> Coordinates | ManifestProblem:
    """The image's coordinates, or every problem of its manifest with its JSON path.

    Paths are rooted at the Image (`$.spec.manifest.runtime.minMem`), which is where the user
    has to look in the object they applied.
    """
    problems = [p.under(ROOT) for p in domain_check(manifest)]
    if problems:
        first, rest = problems[0], problems[1:]
        message = first.message + "".join(f"; {p}" for p in rest)
        return ManifestProblem(first.path, message)
    try:
        return Coordinates.of(environment, manifest["name"], manifest["version"])
    except CoordinatesError as exc:  # e.g. env@name:version longer than the limits allow
        return ManifestProblem(ROOT, exc.reason)
