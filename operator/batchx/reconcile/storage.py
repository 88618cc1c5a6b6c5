"""The environment's file system, as the content store sees it: its quota in, its usage out.

The store (batchx.store) is synchronous (boto3 or local files), so each call runs in a worker
thread: the event loop never waits on S3.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
from collections.abc import Iterable, Mapping, Sequence

from batchx.domain.quantity import parse_quantity
from batchx.domain.validation import FileRef
from batchx.models import EnvironmentStorage, Quantity
from batchx.planning.job_cache import folder_digest
from batchx.reconcile.context import Context
from batchx.store.errors import NotFoundError
from batchx.store.fs import EnvFiles, Usage

logger = logging.getLogger(__name__)


def storage_limit(quota: Quantity | None) -> int | None:
    """spec.quota.storage in bytes (rounded up: '1.5k' is 1500), None when unlimited."""
    return None if quota is None else math.ceil(parse_quantity(quota))


async def sync_storage(
    ctx: Context, environment: str, quota: Quantity | None
) -> EnvironmentStorage | None:
    """Hand `quota` to the store and read the usage back; None when no store is configured or
    it cannot be reached now (the status keeps its last figures; the next pass tries again)."""
    store = ctx.store
    if store is None:
        return None
    limit = storage_limit(quota)

    def exchange() -> Usage:
        files = store.env(environment)
        usage = files.usage()
        return usage if usage.quota == limit else files.set_quota(limit)

    try:
        usage = await asyncio.to_thread(exchange)
    except Exception as exc:  # any backend failure (S3 unreachable, throttled): not now
        logger.warning("storage of %s not synced: the store failed (%s)", environment, exc)
        return None
    return EnvironmentStorage(used_bytes=usage.bytes, files=usage.files)


async def missing_inputs(
    ctx: Context, environment: str, inputs: Mapping[str, Sequence[FileRef]]
) -> dict[str, list[FileRef]]:
    """For each job (by name) the input files its environment's index does not hold.

    A file exists when its path has an index entry; a folder (a target ending in ``/``) when at
    least one file lies under it. Without a store, or when the store cannot be read now, nothing
    is reported missing: the check spares a user a pod that would fail, it never fails a job on
    a store outage (staging reports a file that is really missing, with its path).
    """
    store = ctx.store
    wanted = {name: list(refs) for name, refs in inputs.items() if refs}
    if store is None or not wanted:
        return {}

    def check() -> dict[str, list[FileRef]]:
        files = store.env(environment)
        targets = {r.target for refs in wanted.values() for r in refs}
        present = _present(files, sorted(targets))
        return {
            name: missing
            for name, refs in wanted.items()
            if (missing := [r for r in refs if r.target not in present])
        }

    try:
        return await asyncio.to_thread(check)
    except Exception as err:  # any backend failure (S3 unreachable, throttled): do not judge now
        # One line, not a traceback: a store outage is an expected fault (make chaos).
        logger.warning(
            "input files of %s not checked: the store failed: %s: %s",
            environment,
            type(err).__name__,
            err,
        )
        return {}


def content_digests(files: EnvFiles, targets: Iterable[str]) -> dict[str, str]:
    """Content digests of the input targets the index holds: ``sha256:<hex>`` for a file,
    `folder_digest` for a non-empty folder (a target ending in ``/``). No byte is read."""
    plain = sorted(t for t in targets if not t.endswith("/"))
    found = {e.path: "sha256:" + e.digest for e in files.entries(plain)}
    for folder in sorted(t for t in targets if t.endswith("/")):
        under = list(files.find(folder))
        if under:
            listing = ((e.path[len(folder) :], e.digest, e.size) for e in files.entries(under))
            found[folder] = folder_digest(listing)
    return found


def _present(files: EnvFiles, targets: list[str]) -> set[str]:
    plain = [t for t in targets if not t.endswith("/")]
    found = {entry.path for entry in files.entries(plain)}
    found.update(t for t in targets if t.endswith("/") and next(files.find(t), None) is not None)
    return found


async def remove_files(ctx: Context, environment: str, folder: str) -> int:
    """Remove every path under `folder` (ending in ``/``) of `environment`; how many went.

    Removing drops references only: content another path still names (a ``bx cp`` copy) stays.
    Store failures propagate: the caller retries.
    """
    store = ctx.store
    if store is None:
        return 0

    def remove() -> int:
        files = store.env(environment)
        removed = 0
        for path in list(files.find(folder)):
            with contextlib.suppress(NotFoundError):  # removed concurrently: gone all the same
                files.delete(path)
                removed += 1
        return removed

    return await asyncio.to_thread(remove)
