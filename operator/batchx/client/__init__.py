"""`batchx.client`: BatchX from Python on the user's Kubernetes credentials (see `core.Client`).

This is the only code the `bx` command line uses to reach the cluster, and what pipeline images
use from inside their containers (in-cluster credentials). It imports the `kubernetes` package,
so the CLI imports it inside its commands, never at start-up.

The operator's own API access is the asynchronous `batchx.clients`; this package is its
synchronous counterpart for callers outside the operator. It sits above the pure layers
(planning, models, domain) and never imports the operator's handlers or reconcilers.
"""

from batchx.client.core import Client
from batchx.client.errors import (
    ApiError,
    ClientError,
    Conflict,
    Forbidden,
    ImageNotFound,
    InvalidImageReference,
    InvalidInput,
    InvalidManifest,
    InvalidResources,
    NoEnvironment,
    NotFound,
    Refused,
    RegistryError,
    Unreachable,
    WaitTimeout,
)
from batchx.client.results import EnvironmentInfo, ImageInfo, JobRef, JobResult

__all__ = [
    "ApiError",
    "Client",
    "ClientError",
    "Conflict",
    "EnvironmentInfo",
    "Forbidden",
    "ImageInfo",
    "ImageNotFound",
    "InvalidImageReference",
    "InvalidInput",
    "InvalidManifest",
    "InvalidResources",
    "JobRef",
    "JobResult",
    "NoEnvironment",
    "NotFound",
    "Refused",
    "RegistryError",
    "Unreachable",
    "WaitTimeout",
]
