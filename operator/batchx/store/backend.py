"""What the file system needs from a storage backend (S3 or a local directory).

Two groups of operations:
- small objects with conditional writes (create-only, compare-and-swap on an ETag) for the path
  index, reference counts, usage and leases: everything above this layer is written once against
  these primitives, so the local backend exercises the same logic as S3;
- blobs: content-addressed, written in one streaming pass, verified on every read.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

Progress = Callable[[int], None]
"""Called with the number of bytes just moved (for progress bars and lease keep-alives)."""


def no_progress(_: int) -> None:
    """A Progress that ignores its argument."""


@dataclass(frozen=True)
class ObjectInfo:
    key: str
    size: int
    modified: float
    """Seconds since the epoch by the *backend's* clock (S3: LastModified), never the client's."""


@dataclass(frozen=True)
class BlobInfo:
    digest: str
    size: int
    modified: float


@dataclass(frozen=True)
class PutResult:
    digest: str
    size: int
    uploaded: bool
    """False when the blob was already stored (no new bytes kept)."""


class Backend(Protocol):
    """Storage primitives; see module docstring. Implementations must be thread-safe."""

    description: str

    # -- small objects ----------------------------------------------------------------------
    def get(self, key: str) -> tuple[bytes, str] | None:
        """(body, etag), or None when the key does not exist."""

    def put(
        self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> str:
        """Write `data`; return the new etag. Raise PreconditionFailed when `create_only` and the
        key exists, or `if_match` is given and the current etag differs (or the key is gone)."""

    def delete(self, key: str) -> None:
        """Remove a key; no error when it is absent."""

    def list_keys(
        self, prefix: str, *, delimiter: str | None = None, start_after: str | None = None
    ) -> Iterator[ObjectInfo | str]:
        """Keys under `prefix` in lexicographic (UTF-8) order. With a delimiter, a common prefix
        (ending with it) is yielded as a plain string in place of the keys it groups."""

    # -- blobs ------------------------------------------------------------------------------
    def blob_size(self, digest: str) -> int | None:
        """Size of a stored blob, None when it is not stored."""

    def put_blob(self, source: BinaryIO, progress: Progress = no_progress) -> PutResult:
        """Store what `source` yields, hashing while streaming (read once), create-only."""

    def read_blob(
        self, digest: str, size: int, dest: Path, progress: Progress = no_progress
    ) -> None:
        """Write the verified blob to `dest` (atomically: no partial or bad file is left)."""

    def blob_chunks(self, digest: str, size: int) -> Iterator[bytes]:
        """Stream the blob; IntegrityError is raised at the end if it does not verify."""

    def list_blobs(self) -> Iterator[BlobInfo]:
        """Every stored blob (for garbage collection)."""

    def delete_blob(self, digest: str) -> None:
        """Remove a blob and whatever holds its bytes."""

    def sweep(self, older_than: float) -> int:
        """Remove leftovers of interrupted writes last touched before `older_than` (backend
        clock); return how many."""

    def close(self) -> None:
        """Release connections and pools."""
