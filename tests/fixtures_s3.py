"""Pytest plugin: the test bed's real S3 server (MinIO) for the session, a bucket per session.

    s3_server  -> testbed.s3.S3Server (endpoint, access_key, secret_key), stopped at session end
    s3_bucket  -> name of a fresh bucket on it
    s3_client  -> a boto3 client for it (tests use it to look at or tamper with stored objects)
    s3_store_url -> a fresh `s3://bucket/<prefix>` per test, for `open_store`/BATCHX_STORE

Set BATCHX_S3_ENDPOINT + AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY to use a server that is
already running (e.g. `python -m testbed.s3 up`) instead of starting one.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from testbed import s3 as s3bed


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[s3bed.S3Server]:
    endpoint = os.environ.get("BATCHX_S3_ENDPOINT")
    if endpoint and os.environ.get("AWS_ACCESS_KEY_ID"):
        yield s3bed.S3Server(
            endpoint,
            os.environ["AWS_ACCESS_KEY_ID"],
            os.environ.get("AWS_SECRET_ACCESS_KEY", ""),
            0,
            "",
            "",
        )
        return
    server = s3bed.start(Path(tmp_path_factory.mktemp("s3")))
    try:
        yield server
    finally:
        s3bed.stop(server)


@pytest.fixture(scope="session")
def s3_client(s3_server: s3bed.S3Server) -> Any:
    return s3_server.client()


@pytest.fixture(scope="session")
def s3_bucket(s3_client: Any) -> str:
    name = f"bx-test-{uuid.uuid4().hex[:12]}"
    s3_client.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3_store_url(s3_server: s3bed.S3Server, s3_bucket: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh store (own prefix) per test; credentials exported the way the CLI reads them."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", s3_server.access_key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", s3_server.secret_key)
    monkeypatch.setenv("AWS_DEFAULT_REGION", s3_server.region)
    return f"s3://{s3_bucket}/t-{uuid.uuid4().hex[:10]}?endpoint={s3_server.endpoint}"
