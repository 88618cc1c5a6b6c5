"""Environment (cluster-scoped, shortName `bxenv`): a namespace, its quota, credits and members."""

from __future__ import annotations

from enum import StrEnum

from pydantic import ConfigDict, Field

from batchx.models.common import CamelModel, ConditionList, Quantity, x_validation

__all__ = [
    "Environment",
    "EnvironmentCredits",
    "EnvironmentQuota",
    "EnvironmentSpec",
    "EnvironmentStatus",
    "EnvironmentStorage",
    "Member",
    "MemberKind",
    "MemberRole",
]

MAX_CREDITS = 1e12
MAX_MEMBERS = 256


class EnvironmentQuota(CamelModel):
    """Limits on what the environment's jobs and files may use at once; absent = unlimited."""

    cpu: Quantity | None = Field(
        default=None,
        description="cpu is the total vCPUs of the environment's running jobs, a Kubernetes "
        "quantity (e.g. '16' or '500m'); 0 or more; absent means unlimited.",
    )
    memory: Quantity | None = Field(
        default=None,
        description="memory is the total memory of the environment's running jobs, a Kubernetes "
        "quantity (e.g. '64Gi'); 0 or more; absent means unlimited.",
    )
    gpus: int | None = Field(
        default=None,
        description="gpus is the total GPUs of the environment's running jobs; 0 to 4096; "
        "absent means unlimited.",
        ge=0,
        le=4096,
    )
    jobs: int | None = Field(
        default=None,
        description="jobs is how many jobs may run at once; 0 to 100000 (0 pauses the "
        "environment: jobs wait in QUEUED); absent means unlimited.",
        ge=0,
        le=100_000,
    )
    storage: Quantity | None = Field(
        default=None,
        description="storage is the most bytes of distinct file content the environment may "
        "reference, a Kubernetes quantity (e.g. '500Gi'); absent means unlimited.",
    )


class MemberKind(StrEnum):
    """`kind` of a member: the RBAC subject kind it becomes."""

    USER = "User"
    GROUP = "Group"


class MemberRole(StrEnum):
    """`role` of a member: admin manages the environment, member runs jobs, viewer reads."""

    ADMIN = "admin"
    MEMBER = "member"
    VIEWER = "viewer"


class Member(CamelModel):
    """One user or group with a role in the environment, turned into a RoleBinding."""

    kind: MemberKind = Field(
        default=MemberKind.USER,
        description="kind of subject: User (default) or Group.",
    )
    name: str = Field(
        description="name of the user or group as the cluster authenticates it; "
        "1 to 253 characters.",
        min_length=1,
        max_length=253,
    )
    role: MemberRole = Field(description="role in the environment: admin, member or viewer.")


class EnvironmentSpec(CamelModel):
    """spec of an Environment: what the admin wants."""

    quota: EnvironmentQuota | None = Field(
        default=None,
        description="quota limits the environment's running jobs and stored files; "
        "absent means unlimited.",
    )
    credits: float = Field(
        default=0,
        description="credits is the total number of credits ever granted (not the balance); "
        "raising it tops the environment up; 0 to 1e12.",
        ge=0,
        le=MAX_CREDITS,
    )
    members: list[Member] = Field(
        default_factory=list,
        description="members are the users and groups of the environment with their role; "
        f"at most {MAX_MEMBERS}, unique by kind and name.",
        max_length=MAX_MEMBERS,
        json_schema_extra={
            "x-kubernetes-list-type": "map",
            "x-kubernetes-list-map-keys": ["kind", "name"],
        },
    )


class EnvironmentCredits(CamelModel):
    """Credit accounting: balance = granted - reserved - spent."""

    granted: float = Field(default=0, description="granted mirrors spec.credits; 0 or more.")
    reserved: float = Field(
        default=0, description="reserved is held by admitted, unfinished jobs; 0 or more."
    )
    spent: float = Field(
        default=0, description="spent is the sum of the charges of finished jobs; 0 or more."
    )
    balance: float = Field(
        default=0,
        description="balance is what new jobs may still reserve (granted - reserved - spent).",
    )


class EnvironmentStorage(CamelModel):
    """Storage accounting of the environment's file system."""

    used_bytes: int = Field(
        default=0,
        description="usedBytes is the total size of the distinct blobs the environment "
        "references; 0 or more.",
        ge=0,
    )
    files: int = Field(
        default=0, description="files is the number of bx:// paths; 0 or more.", ge=0
    )


class EnvironmentStatus(CamelModel):
    """status of an Environment: what the operator observed and did."""

    namespace: str | None = Field(
        default=None,
        description="namespace is the Namespace owned by the environment (same name); "
        "at most 63 characters.",
        max_length=63,
    )
    credits: EnvironmentCredits | None = Field(
        default=None, description="credits is the credit accounting."
    )
    storage: EnvironmentStorage | None = Field(
        default=None, description="storage is the file system usage."
    )
    conditions: ConditionList = Field(default_factory=list)
    observed_generation: int | None = Field(
        default=None,
        description="observedGeneration is the metadata.generation this status reflects.",
        ge=0,
    )


class Environment(CamelModel):
    """The spec and status of an Environment custom resource (metadata handled by callers)."""

    model_config = ConfigDict(
        json_schema_extra={
            # The environment owns a Namespace of the same name, so its name must be a DNS label.
            "x-kubernetes-validations": [
                x_validation(
                    "size(self.metadata.name) <= 63 && "
                    "self.metadata.name.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?$')",
                    "metadata.name is also the namespace name: a DNS label (lowercase letters, "
                    "digits and '-', at most 63 characters)",
                )
            ]
        }
    )

    spec: EnvironmentSpec = Field(
        default_factory=EnvironmentSpec, description="spec is the desired environment."
    )
    status: EnvironmentStatus | None = Field(
        default=None, description="status is the observed state, written by the operator."
    )
