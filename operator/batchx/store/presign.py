"""Presigned URLs on the S3 backend: blob bytes go between a client and S3, never through us.

The files API (`batchx.store.transfer`) hands these to clients that hold no store credentials.
What makes an upload URL safe to give away (checked against MinIO: tests/integration/
test_store_transfer.py): it is for one key, `blobs/ab/cd/<sha256>`, for a short time, and it signs
`x-amz-checksum-sha256` (the server refuses a body that does not hash to the address:
`XAmzContentChecksumMismatch`; a request without the header is refused as unsigned) and
`If-None-Match: *` (a stored blob is never overwritten: 412). So the only thing a holder can
store with it is the blob it was issued for. One PUT holds at most 5 GiB (S3's limit); larger
blobs still go through a writer with credentials (multipart, `batchx.store.s3`).

Verification before a path names an uploaded blob is a HEAD: S3 keeps the checksum it verified,
so size and SHA-256 are known without reading the bytes back.
"""

from __future__ import annotations

import base64
from typing import Any

from botocore.exceptions import ClientError

from batchx.store.digests import blob_key
from batchx.store.errors import StoreError
from batchx.store.s3 import S3Backend, error_code, missing

MAX_SINGLE_PUT = 5 * (1 << 30)
UPLOAD_HEADERS = ("x-amz-checksum-sha256", "If-None-Match")


def _checksum(digest: str) -> str:
    return base64.b64encode(bytes.fromhex(digest)).decode()


def download_url(backend: S3Backend, digest: str, expires: int) -> str:
    """A GET URL for the bytes of a stored blob (the client verifies SHA-256 and size)."""
    key = backend.blob_object(digest)
    if key is None:
        raise StoreError(f"blob sha256:{digest} is not stored")
    return backend.client.generate_presigned_url(
        "get_object", Params={"Bucket": backend.bucket, "Key": key}, ExpiresIn=expires
    )


def upload_url(
    backend: S3Backend, digest: str, size: int, expires: int
) -> tuple[str, dict[str, str]]:
    """A PUT URL that can only store blob `digest` of `size` bytes, and the headers to send."""
    if size > MAX_SINGLE_PUT:
        raise StoreError(
            f"a file of {size} bytes is over the {MAX_SINGLE_PUT} bytes one upload URL takes"
        )
    checksum = _checksum(digest)
    params: dict[str, Any] = {
        "Bucket": backend.bucket,
        "Key": backend.key(blob_key(digest)),
        "ChecksumSHA256": checksum,
        "IfNoneMatch": "*",
        "ContentLength": size,
    }
    url = backend.client.generate_presigned_url("put_object", Params=params, ExpiresIn=expires)
    return url, {"x-amz-checksum-sha256": checksum, "If-None-Match": "*"}


def verified_size(backend: S3Backend, digest: str) -> int | None:
    """The size of blob `digest` if it is stored and its content is known to be right: a pointer
    (written by a credentialed writer, which hashed it) or an inline object whose checksum S3
    verified. None otherwise (not stored, or stored without a checksum to vouch for it)."""
    try:
        head = backend.client.head_object(
            Bucket=backend.bucket, Key=backend.key(blob_key(digest)), ChecksumMode="ENABLED"
        )
    except ClientError as err:
        if missing(error_code(err)):
            return None
        raise
    meta = head.get("Metadata", {})
    if "bx-data" in meta:
        return int(meta.get("bx-size", "-1"))
    if head.get("ChecksumSHA256") != _checksum(digest):
        return None
    return int(head["ContentLength"])
