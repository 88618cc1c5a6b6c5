"""Where the store is: one URL, from `--store`, `$BATCHX_STORE`, or the development default.

    s3://BUCKET[/PREFIX][?endpoint=URL&region=NAME]   S3 or any S3-compatible server
    file:///ABSOLUTE/DIR  or a plain directory path     the local development backend

S3 credentials are never part of the URL nor of any custom resource: boto3's standard chain
supplies them (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, AWS_PROFILE and ~/.aws, or a pod's
service-account web identity). The endpoint may also come from AWS_ENDPOINT_URL or
BATCHX_S3_ENDPOINT (what `python -m testbed.s3 up` prints).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from batchx.store.errors import StoreError
from batchx.store.fs import Store
from batchx.store.local import LocalBackend


def default_url() -> str:
    data = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return f"file://{data / 'batchx' / 'store'}"


def store_url(explicit: str | None = None) -> str:
    return explicit or os.environ.get("BATCHX_STORE") or default_url()


def open_store(url: str | None = None, **options: float) -> Store:
    """Open the store at `url` (see module docstring); `options` go to `Store` (lease_ttl...)."""
    url = store_url(url)
    if url.startswith("s3://"):
        return Store(_s3_backend(url), **options)  # type: ignore[arg-type]
    if url.startswith("file://"):
        return Store(LocalBackend(Path(url[len("file://") :])), **options)  # type: ignore[arg-type]
    if "://" in url:
        raise StoreError(f"unsupported store URL {url!r}: use s3://BUCKET[/PREFIX] or file:///DIR")
    return Store(LocalBackend(Path(url)), **options)  # type: ignore[arg-type]


def _s3_backend(url: str) -> object:
    # Imported lazily: only the S3 backend loads boto3 (and only when it is used).
    from batchx.store.s3 import S3Backend, S3Settings  # noqa: PLC0415

    parts = urlsplit(url)
    if not parts.netloc:
        raise StoreError(f"store URL {url!r} names no bucket")
    query = parse_qs(parts.query)
    endpoint = (
        query.get("endpoint", [None])[0]
        or os.environ.get("AWS_ENDPOINT_URL")
        or os.environ.get("BATCHX_S3_ENDPOINT")
    )
    region = query.get("region", [None])[0] or os.environ.get("AWS_DEFAULT_REGION")
    return S3Backend(
        S3Settings(
            bucket=parts.netloc, prefix=parts.path.strip("/"), endpoint=endpoint, region=region
        )
    )
