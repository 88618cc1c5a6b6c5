"""Manifest check used by Image planning: the domain core's validation, reduced to one verdict."""

from __future__ import annotations

from typing import Any

from batchx.domain.coordinates import Coordinates, CoordinatesError
from batchx.planning.image import ManifestProblem


def check_manifest(manifest: dict[str, Any], environment: str) -> Coordinates | ManifestProblem:
    """The image's coordinates, or the first problem of its manifest with its JSON path."""
    for key in ("name", "version"):
        if not isinstance(manifest.get(key), str):
            return ManifestProblem(
                f"$.spec.manifest.{key}", f"{key} is required and must be a string"
            )
    try:
        return Coordinates.of(environment, manifest["name"], manifest["version"])
    except CoordinatesError as exc:
        return ManifestProblem("$.spec.manifest", exc.reason)
