"""`bx import`: turn an image that carries its BatchX manifest into an Image custom resource.

Real BatchX images hold their manifest: the label `io.batchx.manifest=10` says which version,
and the file `/batchx/manifest/manifest.json` is the manifest (their Dockerfiles
`COPY manifest /batchx/manifest/`). The Image is created pinned by the digest read from the
registry or archive, so what jobs run can never change under a moved tag. These are the pure
steps; `Client.import_image` reads the image and creates the object.
"""

from __future__ import annotations

import json
import re
from typing import Any

from batchx import API_VERSION
from batchx.client.errors import InvalidManifest
from batchx.client.oci import OciImage
from batchx.domain.manifest import check_manifest
from batchx.domain.validation import Problem
from batchx.planning.image import JSON

__all__ = ["MANIFEST_LABEL", "MANIFEST_PATH", "MANIFEST_VERSION", "image_object", "manifest_of"]

MANIFEST_LABEL = "io.batchx.manifest"
MANIFEST_VERSION = "10"
MANIFEST_PATH = "/batchx/manifest/manifest.json"
_MAX_NAME = 253


def manifest_of(image: OciImage, override: Any = None) -> Any:
    """The manifest document: `override` (``--manifest FILE``) or the one the image carries.

    Raises `InvalidManifest` (path ``$``) when the image has none, or says it holds another
    manifest version than the one this platform speaks.
    """
    source = f"{image.pinned}:{MANIFEST_PATH}"
    if override is not None:
        return override
    label = image.labels.get(MANIFEST_LABEL)
    if label is not None and label != MANIFEST_VERSION:
        raise InvalidManifest(
            source,
            [
                Problem(
                    "$", f"label {MANIFEST_LABEL}={label}: only manifest version 10 is supported"
                )
            ],
        )
    raw = image.files.get(MANIFEST_PATH)
    if raw is None:
        hint = "" if label is None else f" (yet it has the label {MANIFEST_LABEL}={label})"
        raise InvalidManifest(
            source,
            [Problem("$", f"the image has no {MANIFEST_PATH}{hint}; pass --manifest FILE")],
        )
    try:
        return json.loads(raw)
    except ValueError as err:
        raise InvalidManifest(source, [Problem("$", f"not valid JSON: {err}")]) from None


def object_name(name: str, version: str) -> str:
    """`examples/wordcount` 1.0.0 -> `examples-wordcount-1-0-0` (a valid object name)."""
    return re.sub(r"[^0-9a-z]+", "-", f"{name}-{version}".lower()).strip("-")[:_MAX_NAME]


def image_object(
    image: OciImage, manifest: Any, *, namespace: str, public: bool, source: str
) -> JSON:
    """The Image custom resource for `image` with `manifest`, or `InvalidManifest` listing every
    problem with its JSON path (the messages of `bx manifest check`)."""
    problems = check_manifest(manifest)
    if problems:
        raise InvalidManifest(source, problems)
    return {
        "apiVersion": API_VERSION,
        "kind": "Image",
        "metadata": {
            "name": object_name(str(manifest["name"]), str(manifest["version"])),
            "namespace": namespace,
            "annotations": {"batchx.io/imported-from": source[:1024]},
        },
        "spec": {"image": image.pinned, "manifest": manifest, "public": public},
    }
