"""The errors `batchx.client` raises: one class per thing a caller (the CLI, a pipeline) handles.

Two families, because callers react to them differently:

- `Refused`: the request is wrong and nothing was created (bad input, unknown image, resources
  the image does not allow, an invalid manifest). Its message is the one the operator would
  write into the Job's condition, because it comes from the same domain code (`judge_job`).
- `ApiError`: the cluster said no or could not be reached (`Forbidden` names the verb, resource
  and namespace that are missing; `NotFound`; `Conflict`; `Unreachable`).
"""

from __future__ import annotations

from collections.abc import Sequence

from batchx.domain.validation import Problem

__all__ = [
    "ApiError",
    "ClientError",
    "Conflict",
    "Forbidden",
    "ImageNotFound",
    "InvalidImageReference",
    "InvalidInput",
    "InvalidManifest",
    "InvalidResources",
    "NoEnvironment",
    "NotFound",
    "Refused",
    "RegistryError",
    "Unreachable",
    "WaitTimeout",
]


class ClientError(Exception):
    """Anything `batchx.client` raises on purpose."""


# ------------------------------------------------------------------------------- refused


class Refused(ClientError):
    """Bad input, refused before anything was created: `path` is the JSON path at fault."""

    reason = "Refused"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class InvalidImageReference(Refused):
    reason = "InvalidImageReference"


class ImageNotFound(Refused):
    reason = "ImageNotFound"


class InvalidInput(Refused):
    reason = "InvalidInput"


class InvalidResources(Refused):
    reason = "InvalidResources"


class NoEnvironment(Refused):
    """No environment given (-e, $BATCHX_ENV) and the kubeconfig context names no namespace."""

    reason = "NoEnvironment"


class InvalidManifest(Refused):
    """An image's manifest is missing or invalid; `problems` lists each with its JSON path."""

    reason = "InvalidManifest"

    def __init__(self, source: str, problems: Sequence[Problem]) -> None:
        first = problems[0] if problems else Problem("$", "invalid manifest")
        super().__init__(first.path, first.message)
        self.source = source
        self.problems = tuple(problems)

    def __str__(self) -> str:
        return "; ".join(f"{self.source}: {p}" for p in self.problems)


class RegistryError(Refused):
    """The image could not be read from its registry or archive."""

    reason = "RegistryError"

    def __init__(self, message: str) -> None:
        super().__init__("$", message)

    def __str__(self) -> str:
        return self.message


# ---------------------------------------------------------------------------- api errors


class ApiError(ClientError):
    """The Kubernetes API refused a call (`status` is its HTTP status, 0 when unreachable)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Unreachable(ApiError):
    """The API server could not be reached (or the kubeconfig could not be loaded)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, message)


class Forbidden(ApiError):
    """403: the user lacks `verb` on `resource` in `namespace` (the API server's words too)."""

    def __init__(self, verb: str, resource: str, namespace: str | None, message: str) -> None:
        where = f" in namespace {namespace}" if namespace else " (cluster-wide)"
        super().__init__(403, f"not allowed to {verb} {resource}{where}: {message}")
        self.verb = verb
        self.resource = resource
        self.namespace = namespace


class NotFound(ApiError):
    """404: the object does not exist."""

    def __init__(self, message: str) -> None:
        super().__init__(404, message)


class Conflict(ApiError):
    """409: the object exists already (with other content) or changed meanwhile."""

    def __init__(self, message: str) -> None:
        super().__init__(409, message)


class WaitTimeout(ClientError):
    """`wait` gave up before the job finished; the job keeps running."""
