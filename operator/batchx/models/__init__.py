"""Pydantic types of the BatchX CRDs (group batchx.io, version v1alpha1): the source of truth.

`batchx.crdgen` generates `crds/*.yaml` from these models; the operator parses bodies into them
and writes statuses from them (`CamelModel.to_json()` gives the camelCase, sparse dict).
"""

from batchx.models.common import CamelModel, Condition, ConditionStatus, Quantity
from batchx.models.environment import (
    Environment,
    EnvironmentCredits,
    EnvironmentQuota,
    EnvironmentSpec,
    EnvironmentStatus,
    EnvironmentStorage,
    Member,
    MemberKind,
    MemberRole,
)
from batchx.models.image import Image, ImageSpec, ImageStatus
from batchx.models.job import (
    TERMINAL_STATES,
    Job,
    JobAdmission,
    JobChildren,
    JobCredits,
    JobImage,
    JobResources,
    JobSpec,
    JobState,
    JobStatus,
    JobTransfer,
)

__all__ = [
    "TERMINAL_STATES",
    "CamelModel",
    "Condition",
    "ConditionStatus",
    "Environment",
    "EnvironmentCredits",
    "EnvironmentQuota",
    "EnvironmentSpec",
    "EnvironmentStatus",
    "EnvironmentStorage",
    "Image",
    "ImageSpec",
    "ImageStatus",
    "Job",
    "JobAdmission",
    "JobChildren",
    "JobCredits",
    "JobImage",
    "JobResources",
    "JobSpec",
    "JobState",
    "JobStatus",
    "JobTransfer",
    "Member",
    "MemberKind",
    "MemberRole",
    "Quantity",
]
