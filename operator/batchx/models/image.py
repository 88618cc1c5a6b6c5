"""Image (namespaced, shortName `bximg`): a container image plus its BatchX manifest."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import ConfigDict, Field, WithJsonSchema

from batchx.models.common import CamelModel, ConditionList, x_validation

__all__ = ["CONTAINER_IMAGE_PATTERN", "MANIFEST_CRD_SCHEMA", "Image", "ImageSpec", "ImageStatus"]

# A container image reference as the distribution spec writes it: optional registry host
# (with port), lowercase path components, optional tag, optional sha256 digest. Whether a tag
# without digest is allowed is the operator's configuration, so the CRD accepts both.
CONTAINER_IMAGE_PATTERN = (
    r"^(([a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)(\.[a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)*"
    r"(:[0-9]+)?/)?"
    r"[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*(/[a-z0-9]+(([._]|__|-+)[a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"
    r"(@sha256:[a-f0-9]{64})?$"
)

# The shape of io.batchx.manifest-10 that the API server can check at apply time: the seed's
# types, lengths, patterns and required fields, nothing stricter. Unknown fields are preserved
# (not pruned) so the operator's full validation sees them and reports them with their path;
# the semantic checks (error code keys, pipeline steps, file fields) live in batchx.domain.
MANIFEST_CRD_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "manifest is the io.batchx.manifest-10 document of the image (name, version, "
    "title, author, changeLog, schema.input/output, runtime, errorCodes, warningCodes, "
    "pipeline, userFiles); at most 64 top-level properties.",
    "x-kubernetes-preserve-unknown-fields": True,
    "maxProperties": 64,
    "required": ["name", "version", "title", "author", "changeLog", "schema", "runtime"],
    "properties": {
        "name": {"type": "string", "maxLength": 60},
        "version": {"type": "string", "maxLength": 15, "pattern": r"^\d+\.\d+\.\d+$"},
        "title": {"type": "string", "maxLength": 100},
        "readme": {"type": "string"},
        "changeLog": {"type": "string", "maxLength": 80},
        "author": {"type": "string", "maxLength": 40},
        "scm": {"type": "string", "maxLength": 70},
        "schema": {
            "type": "object",
            "required": ["input", "output"],
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {
                "input": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
                "output": {"type": "object", "x-kubernetes-preserve-unknown-fields": True},
            },
        },
        "errorCodes": {"type": "object", "additionalProperties": {"type": "string"}},
        "warningCodes": {"type": "object", "additionalProperties": {"type": "string"}},
        "runtime": {
            "type": "object",
            "required": ["minMem"],
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {
                "minMem": {"type": "integer"},
                "defaultVcpus": {"type": "integer"},
                "gpus": {"type": "string", "enum": ["required", "supported"]},
            },
        },
        "pipeline": {
            "type": "object",
            "x-kubernetes-preserve-unknown-fields": True,
            "properties": {
                "steps": {"type": "array", "items": {"type": "string"}},
                "readInputFiles": {"type": "array", "items": {"type": "string"}},
            },
        },
        "userFiles": {"type": "array", "items": {"type": "string"}},
    },
}


class ImageSpec(CamelModel):
    """spec of an Image; immutable once created (BatchX images are immutable assets)."""

    model_config = ConfigDict(
        json_schema_extra={
            "x-kubernetes-validations": [
                x_validation("self == oldSelf", "spec is immutable: import a new version instead")
            ]
        }
    )

    image: str = Field(
        description="image is the container image reference, e.g. "
        "registry.example.com/tools/bwa@sha256:<64 hex>; digest-pinned unless the operator "
        "allows tags; 1 to 512 characters.",
        min_length=1,
        max_length=512,
        pattern=CONTAINER_IMAGE_PATTERN,
    )
    manifest: Annotated[dict[str, Any], WithJsonSchema(MANIFEST_CRD_SCHEMA)] = Field(
        description="manifest is the io.batchx.manifest-10 document of the image."
    )
    public: bool = Field(
        default=False,
        description="public lets jobs of other environments run this image as env@name:version.",
    )


class ImageStatus(CamelModel):
    """status of an Image: its coordinates once the manifest was accepted."""

    coordinates: str | None = Field(
        default=None,
        description="coordinates are env@name:version, unique in the cluster; at most 140 "
        "characters.",
        max_length=140,
    )
    base_name: str | None = Field(
        default=None,
        description="baseName is env@name (all versions of the image); at most 124 characters.",
        max_length=124,
    )
    conditions: ConditionList = Field(default_factory=list)
    observed_generation: int | None = Field(
        default=None,
        description="observedGeneration is the metadata.generation this status reflects.",
        ge=0,
    )


class Image(CamelModel):
    """The spec and status of an Image custom resource."""

    spec: ImageSpec = Field(description="spec is the image and its manifest (immutable).")
    status: ImageStatus | None = Field(
        default=None, description="status is the observed state, written by the operator."
    )
