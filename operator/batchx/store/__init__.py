"""BatchX's file system: a content-addressable blob store plus per-environment path indexes.

`open_store(url)` gives a `Store`; `store.env(name)` gives that environment's `EnvFiles` (paths,
quota, usage). Backends: `batchx.store.local` (development default) and `batchx.store.s3` (the
only module that imports boto3). The design is written down in `batchx/store/DESIGN.md`.
"""

from batchx.store.config import open_store
from batchx.store.errors import (
    IntegrityError,
    NotFoundError,
    PathExistsError,
    QuotaExceededError,
    StoreBusyError,
    StoreError,
)
from batchx.store.fs import Entry, EnvFiles, GcReport, LocalFile, Outcome, PutReport, Store, Usage

__all__ = [
    "Entry",
    "EnvFiles",
    "GcReport",
    "IntegrityError",
    "LocalFile",
    "NotFoundError",
    "Outcome",
    "PathExistsError",
    "PutReport",
    "QuotaExceededError",
    "Store",
    "StoreBusyError",
    "StoreError",
    "Usage",
    "open_store",
]
