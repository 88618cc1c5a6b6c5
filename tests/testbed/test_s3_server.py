"""The test bed's S3 server behaves like S3 where the content store relies on it."""

from __future__ import annotations

import base64
import hashlib
import os
from typing import Any

import pytest
from botocore.exceptions import ClientError

pytestmark = pytest.mark.s3


def _code(exc: pytest.ExceptionInfo[ClientError]) -> str:
    return str(exc.value.response["Error"]["Code"])


def test_put_reads_back_byte_identical(s3_client: Any, s3_bucket: str) -> None:
    body = os.urandom(3 << 20) + bytes(range(256))
    s3_client.put_object(Bucket=s3_bucket, Key="roundtrip", Body=body)
    assert s3_client.get_object(Bucket=s3_bucket, Key="roundtrip")["Body"].read() == body


def test_create_only_put_of_existing_key_is_refused(s3_client: Any, s3_bucket: str) -> None:
    s3_client.put_object(Bucket=s3_bucket, Key="once", Body=b"first", IfNoneMatch="*")
    with pytest.raises(ClientError) as exc:
        s3_client.put_object(Bucket=s3_bucket, Key="once", Body=b"second", IfNoneMatch="*")
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert s3_client.get_object(Bucket=s3_bucket, Key="once")["Body"].read() == b"first"


def test_compare_and_swap_put_with_stale_etag_is_refused(s3_client: Any, s3_bucket: str) -> None:
    old = s3_client.put_object(Bucket=s3_bucket, Key="cas", Body=b"1")["ETag"]
    s3_client.put_object(Bucket=s3_bucket, Key="cas", Body=b"2", IfMatch=old)
    with pytest.raises(ClientError) as exc:
        s3_client.put_object(Bucket=s3_bucket, Key="cas", Body=b"3", IfMatch=old)
    assert exc.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412


def test_wrong_sha256_checksum_is_refused(s3_client: Any, s3_bucket: str) -> None:
    wrong = base64.b64encode(hashlib.sha256(b"other").digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3_client.put_object(Bucket=s3_bucket, Key="ck", Body=b"payload", ChecksumSHA256=wrong)
    assert "Checksum" in _code(exc) or "BadDigest" in _code(exc)
    with pytest.raises(ClientError):
        s3_client.head_object(Bucket=s3_bucket, Key="ck")


def test_wrong_content_md5_is_refused(s3_client: Any, s3_bucket: str) -> None:
    wrong = base64.b64encode(hashlib.md5(b"other", usedforsecurity=False).digest()).decode()
    with pytest.raises(ClientError) as exc:
        s3_client.put_object(Bucket=s3_bucket, Key="md5", Body=b"payload", ContentMD5=wrong)
    assert _code(exc) in {"BadDigest", "InvalidDigest"}
