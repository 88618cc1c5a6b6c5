"""`batchx.store.cas.swap`, the file system's one compare-and-swap loop, on the local backend."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from batchx.store.cas import swap
from batchx.store.errors import NotFoundError
from batchx.store.local import LocalBackend


def _increment(body: bytes | None) -> tuple[bytes, int]:
    value = 0 if body is None else int(body)
    return str(value + 1).encode(), value + 1


def test_concurrent_swaps_lose_no_update(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: swap(backend, "counter", _increment), range(200)))
    got = backend.get("counter")
    assert got is not None
    assert got[0] == b"200"


def test_a_refusing_change_writes_nothing(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    etag = backend.put("record", b"1")

    def refuse(body: bytes | None) -> tuple[bytes, None]:
        raise NotFoundError(f"refused at {body!r}")

    with pytest.raises(NotFoundError, match="refused at b'1'"):
        swap(backend, "record", refuse)
    assert backend.get("record") == (b"1", etag)


def test_no_body_means_no_write(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path)
    assert swap(backend, "absent", lambda body: (None, body)) is None
    assert backend.get("absent") is None


class _CountingReads:
    """The two calls `swap` makes, with the reads it asks for recorded."""

    def __init__(self, inner: LocalBackend) -> None:
        self.inner, self.reads = inner, list[str]()

    def get(self, key: str) -> tuple[bytes, str] | None:
        self.reads.append(key)
        return self.inner.get(key)

    def put(self, key: str, data: bytes, **conditions: Any) -> str:
        return self.inner.put(key, data, **conditions)


def test_known_absent_key_is_created_without_a_read_and_a_stale_guess_is_retried(
    tmp_path: Path,
) -> None:
    backend = _CountingReads(LocalBackend(tmp_path))
    assert swap(backend, "fresh", _increment, current=None) == 1  # type: ignore[arg-type]
    assert backend.reads == []
    # Guessing "absent" for a key that exists: the create-only put fails, the key is read, retried.
    assert swap(backend, "fresh", _increment, current=None) == 2  # type: ignore[arg-type]
    assert backend.reads == ["fresh"]
