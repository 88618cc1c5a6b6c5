"""Shared building blocks of the CRD types: camelCase models, conditions, quantities.

Every model here is the single source of truth for one piece of a CRD schema: `crdgen` turns the
pydantic JSON schema into a structural OpenAPI schema, so limits (`max_length`, `le`, ...) and
CEL rules (`x-kubernetes-validations` in `json_schema_extra`) live next to the field they guard.
Field descriptions start with the field's JSON name and state its limits, as `kubectl explain`
shows them verbatim.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic.alias_generators import to_camel
from pydantic.functional_validators import AfterValidator

from batchx.domain.quantity import MAX_QUANTITY_LENGTH, QUANTITY_PATTERN, parse_quantity

__all__ = [
    "QUANTITY_PATTERN",
    "REASON_PATTERN",
    "CamelModel",
    "Condition",
    "ConditionList",
    "ConditionStatus",
    "Quantity",
    "x_validation",
]

REASON_PATTERN = r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$"  # metav1.Condition reason


def _check_quantity(value: int | str) -> int | str:
    parse_quantity(value)  # the one grammar (batchx.domain.quantity); ValueError says why
    return value


# int-or-string in the CRD (`x-kubernetes-int-or-string`), validated here with the same pattern.
Quantity = Annotated[
    int | str,
    AfterValidator(_check_quantity),
    WithJsonSchema(
        {
            "anyOf": [{"type": "integer"}, {"type": "string"}],
            "x-kubernetes-int-or-string": True,
            "pattern": QUANTITY_PATTERN,
            "maxLength": MAX_QUANTITY_LENGTH,
            "minimum": 0,
        }
    ),
]


def x_validation(rule: str, message: str, **extra: str) -> dict[str, Any]:
    """One CEL rule for `x-kubernetes-validations` (message always set: users read it)."""
    return {"rule": rule, "message": message, **extra}


class CamelModel(BaseModel):
    """Base of all CRD types: camelCase JSON names, snake_case Python attributes.

    Unknown fields are ignored (the API server prunes them anyway, and an older operator must not
    crash on a newer object); values are validated on assignment so planners cannot build an
    invalid status.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="ignore",
        validate_assignment=True,
        use_enum_values=False,
    )

    def to_json(self) -> dict[str, Any]:
        """The object as Kubernetes stores it: camelCase, unset optional fields left out."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


class ConditionStatus(StrEnum):
    """`status` of a condition, as in metav1.Condition."""

    TRUE = "True"
    FALSE = "False"
    UNKNOWN = "Unknown"


class Condition(CamelModel):
    """A metav1.Condition: the latest observation of one aspect of an object's state."""

    type: str = Field(
        description="type of the condition in CamelCase, e.g. Ready or Succeeded; "
        "1 to 316 characters.",
        min_length=1,
        max_length=316,
        pattern=r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
        r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$",
    )
    status: ConditionStatus = Field(description="status of the condition: True, False or Unknown.")
    reason: str = Field(
        description="reason is a CamelCase word for the last transition, e.g. InvalidInput; "
        "1 to 1024 characters.",
        min_length=1,
        max_length=1024,
        pattern=REASON_PATTERN,
    )
    message: str = Field(
        default="",
        description="message is a human readable explanation with the details (JSON path, "
        "numbers); at most 32768 characters.",
        max_length=32768,
    )
    last_transition_time: datetime = Field(
        description="lastTransitionTime is when the status last changed (RFC 3339)."
    )
    observed_generation: int | None = Field(
        default=None,
        description="observedGeneration is the metadata.generation the condition was set for; "
        "0 or more.",
        ge=0,
    )


ConditionList = Annotated[
    list[Condition],
    Field(
        description="conditions are the latest observations of the object's state; at most 16, "
        "one per type.",
        max_length=16,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["type"],
        },
    ),
]
