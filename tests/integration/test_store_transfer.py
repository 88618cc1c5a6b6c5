"""The files API's store side (`batchx.store.transfer`) on the real S3 server: a client with no
credentials moves bytes with presigned URLs only, S3 itself refuses bytes that are not the
blob a URL was issued for, and a path is recorded only for a verified blob."""

from __future__ import annotations

import hashlib
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import pytest

from batchx.store import QuotaExceededError, Store, StoreError, open_store
from batchx.store.fs import NewPath
from batchx.store.index import Outcome
from batchx.store.transfer import commit, download_urls, plan_uploads
from tests.helpers import eventually

pytestmark = pytest.mark.s3


@pytest.fixture
def store(s3_store_url: str) -> Iterator[Store]:
    with open_store(s3_store_url, lease_wait=0.5) as opened:
        yield opened


def _http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    """A plain HTTP call, as a client without any store credentials makes it."""
    request = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def _item(path: str, data: bytes) -> NewPath:
    return NewPath(path, hashlib.sha256(data).hexdigest(), len(data))


def test_upload_commit_download_and_dedup(store: Store) -> None:
    files = store.env("lab")
    data = b"results of a run\n" * 20000  # above CHECK_FIRST: looked up before an URL is issued
    item = _item("out/a.txt", data)
    [plan] = plan_uploads(files, [item])
    assert (plan.action, plan.url is not None) == ("upload", True)
    assert plan.url is not None
    # Nothing is recorded until the commit, and the commit refuses a blob that is not there.
    [early] = commit(files, [item])
    assert isinstance(early, StoreError)
    assert "plan the upload again" in str(early)
    assert files.stat("out/a.txt") is None
    assert _http("PUT", plan.url, data, plan.headers)[0] == 200
    [done] = commit(files, [item])
    assert not isinstance(done, StoreError)
    assert done[1] is Outcome.CREATED
    assert files.usage().bytes == len(data)
    # The same content again, at the same path and at another: nothing to send.
    again = plan_uploads(files, [item, _item("copy.txt", data)])
    assert [p.action for p in again] == ["unchanged", "stored"]
    # A small blob is not looked up: its create-only URL answers 412 when it is stored.
    tiny = b"tiny"
    [first] = plan_uploads(files, [_item("t1", tiny)])
    assert first.url is not None
    assert _http("PUT", first.url, tiny, first.headers)[0] == 200
    [second] = plan_uploads(files, [_item("t2", tiny)])
    assert (second.action, second.url is not None) == ("upload", True)
    assert second.url is not None
    assert _http("PUT", second.url, tiny, second.headers)[0] == 412
    assert [
        isinstance(r, StoreError) for r in commit(files, [_item("t1", tiny), _item("t2", tiny)])
    ] == [False, False]
    [link] = commit(files, [_item("copy.txt", data)])
    assert not isinstance(link, StoreError)
    assert files.usage().bytes == len(data) + len(tiny)  # each blob charged once
    [down] = download_urls(files, ["copy.txt"])
    assert not isinstance(down, StoreError)
    assert _http("GET", down.url) == (200, data)
    [absent] = download_urls(files, ["nope"])
    assert isinstance(absent, StoreError)


def test_s3_refuses_other_bytes_and_overwrites(store: Store) -> None:
    files = store.env("lab")
    data = b"the real content" * 100
    [plan] = plan_uploads(files, [_item("x", data)])
    assert plan.url is not None
    forged = b"the fake content" * 100  # same size, other bytes
    status, body = _http("PUT", plan.url, forged, plan.headers)
    assert status == 400
    assert b"XAmzContentChecksumMismatch" in body
    assert _http("PUT", plan.url, forged)[0] in (400, 403)  # without the signed headers
    assert _http("PUT", plan.url, data, plan.headers)[0] == 200
    assert _http("PUT", plan.url, data, plan.headers)[0] == 412  # never overwritten


def test_an_expired_url_fails_cleanly_and_a_fresh_plan_works(store: Store) -> None:
    files = store.env("lab")
    data = b"late upload" * 10
    item = _item("late", data)
    issued = time.time()
    [stale] = plan_uploads(files, [item], expires=1)
    assert stale.url is not None
    eventually(lambda: time.time() > issued + 2, timeout=10, what="the URL's expiry")
    status, body = _http("PUT", stale.url, data, stale.headers)
    assert status == 403
    assert b"expired" in body.lower()
    [fresh] = plan_uploads(files, [item])
    assert fresh.url is not None
    assert _http("PUT", fresh.url, data, fresh.headers)[0] == 200
    [done] = commit(files, [item])
    assert not isinstance(done, StoreError)


def test_quota_is_checked_before_transfer_and_at_commit(store: Store) -> None:
    files = store.env("lab")
    files.set_quota(1000)
    with pytest.raises(QuotaExceededError, match="1200 bytes new"):
        plan_uploads(files, [_item("big", b"b" * 1200)])
    small = [_item(f"s{i}", bytes([i]) * 400) for i in range(2)]
    plans = plan_uploads(files, small)
    for plan, item in zip(plans, small, strict=True):
        assert plan.url is not None
        assert _http("PUT", plan.url, bytes([int(item.path[1:])]) * 400, plan.headers)[0] == 200
    # A third file was uploaded meanwhile by a credentialed writer: the batch no longer fits,
    # so each file gets its own answer.
    files.put_bytes("other", b"o" * 400)
    results = commit(files, small)
    assert [isinstance(r, QuotaExceededError) for r in results] == [False, True]
    assert files.usage().bytes == 800


def test_many_small_files_commit_in_one_batch(store: Store) -> None:
    files = store.env("lab")
    items = [_item(f"many/{i:04d}", f"file {i}\n".encode()) for i in range(300)]
    plans = plan_uploads(files, items)
    assert {p.action for p in plans} == {"upload"}
    for plan, i in zip(plans, range(300), strict=True):
        assert plan.url is not None
        assert _http("PUT", plan.url, f"file {i}\n".encode(), plan.headers)[0] == 200
    results = commit(files, items)
    assert not [r for r in results if isinstance(r, StoreError)]
    assert files.usage().files == 300
    assert len(list(files.find("many/"))) == 300
