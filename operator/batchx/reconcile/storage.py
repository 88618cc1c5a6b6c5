"""The environment's file system, as the content store sees it: its quota in, its usage out.

The store (batchx.store) is synchronous (boto3 or local files), so each call runs in a worker
thread: the event loop never waits on S3.
"""

from __future__ import annotations

import asyncio
import math

from batchx.models import EnvironmentStorage, Quantity
from batchx.planning.job_admission import parse_quantity
from batchx.reconcile.context import Context
from batchx.store.fs import Usage


def storage_limit(quota: Quantity | None) -> int | None:
    """spec.quota.storage in bytes (rounded up: '1.5k' is 1500), None when unlimited."""
    return None if quota is None else math.ceil(parse_quantity(quota))


async def sync_storage(
    ctx: Context, environment: str, quota: Quantity | None
) -> EnvironmentStorage | None:
    """Hand `quota` to the store and read the usage back; None when no store is configured."""
    store = ctx.store
    if store is None:
        return None
    limit = storage_limit(quota)

    def exchange() -> Usage:
        files = store.env(environment)
        usage = files.usage()
        return usage if usage.quota == limit else files.set_quota(limit)

    usage = await asyncio.to_thread(exchange)
    return EnvironmentStorage(used_bytes=usage.bytes, files=usage.files)
