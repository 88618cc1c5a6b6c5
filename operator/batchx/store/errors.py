"""Errors of the file system, each carrying the numbers a user needs to act on it."""

from __future__ import annotations


class StoreError(Exception):
    """Base class: anything the store refuses or cannot do."""


class IntegrityError(StoreError):
    """Stored bytes do not match their content address: never returned to the caller."""

    def __init__(self, digest: str, detail: str) -> None:
        super().__init__(f"integrity check failed for blob sha256:{digest}: {detail}")
        self.digest = digest


class PathExistsError(StoreError):
    """A path is immutable: it already names different content."""

    def __init__(self, path: str, existing: str, new: str) -> None:
        super().__init__(
            f"bx://{path} already exists with different content "
            f"(sha256:{existing[:12]}, new sha256:{new[:12]}); paths are immutable, "
            "remove it first or choose another path"
        )
        self.path = path


class NotFoundError(StoreError):
    """No such path (or blob)."""


class QuotaExceededError(StoreError):
    """The write would take the environment's storage above `spec.quota.storage`."""

    def __init__(self, env: str, used: int, adding: int, quota: int) -> None:
        super().__init__(
            f"storage quota exceeded in environment {env!r}: {used} bytes used + {adding} bytes "
            f"new = {used + adding} bytes > quota {quota} bytes"
        )
        self.used, self.adding, self.quota = used, adding, quota


class StoreBusyError(StoreError):
    """Garbage collection and writers exclude each other; the other side did not finish in time."""


class PreconditionFailed(StoreError):
    """A conditional write lost (create-only key exists, or compare-and-swap ETag changed)."""
