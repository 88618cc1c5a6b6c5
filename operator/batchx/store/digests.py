"""Content addresses: SHA-256 hex digests, key layout, and hashing while bytes stream past."""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future

from batchx.store.errors import IntegrityError

_HEX = re.compile(r"^[0-9a-f]{64}$")
CHUNK = 1 << 20
HASH_READ = 4 * CHUNK


def is_digest(value: str) -> bool:
    return bool(_HEX.match(value))


def blob_key(digest: str) -> str:
    """`blobs/ab/cd/<hex>`: two levels of fan-out keep S3 partitions and local dirs small."""
    if not is_digest(digest):
        raise ValueError(f"not a sha256 hex digest: {digest!r}")
    return f"blobs/{digest[:2]}/{digest[2:4]}/{digest}"


def digest_of_key(key: str) -> str | None:
    name = key.rsplit("/", 1)[-1]
    return name if is_digest(name) else None


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Verifier:
    """Hashes bytes as they stream and checks digest and size at the end."""

    def __init__(self, digest: str, size: int) -> None:
        self.digest, self.size = digest, size
        self._hash = hashlib.sha256()
        self.seen = 0

    def update(self, chunk: bytes | memoryview) -> None:
        self._hash.update(chunk)
        self.seen += len(chunk)
        if self.seen > self.size:
            raise IntegrityError(self.digest, f"more than the expected {self.size} bytes")

    def check(self) -> None:
        if self.seen != self.size:
            raise IntegrityError(self.digest, f"size {self.seen} bytes, expected {self.size}")
        actual = self._hash.hexdigest()
        if actual != self.digest:
            raise IntegrityError(self.digest, f"content hashes to sha256:{actual}")


def verified(chunks: Iterable[bytes], digest: str, size: int) -> Iterator[bytes]:
    """Yield `chunks` while hashing; raise IntegrityError after the last one if they are wrong.

    Callers must treat what they received as provisional until the iterator is exhausted.
    """
    verifier = Verifier(digest, size)
    for chunk in chunks:
        verifier.update(chunk)
        yield chunk
    verifier.check()


def verify_parts(fd: int, parts: Sequence[Future[None]], part: int, size: int, digest: str) -> None:
    """Check a file that parallel ranged downloads write part by part (part i: bytes from
    i * `part`) at their offsets in `fd`: wait for each part in order and hash it as it lands,
    re-read from the page cache into one reused buffer, so memory stays at a few chunks
    whatever the size. IntegrityError unless the whole file hashes to `digest`; the parts not
    started yet are cancelled on any failure."""
    verifier = Verifier(digest, size)
    buf = bytearray(min(part, HASH_READ))
    view = memoryview(buf)
    try:
        for i, future in enumerate(parts):
            future.result()
            offset, end = i * part, min(size, (i + 1) * part)
            while offset < end:
                got = os.preadv(fd, [view[: min(len(buf), end - offset)]], offset)
                if got <= 0:
                    raise IntegrityError(digest, "downloaded file shrank")
                verifier.update(view[:got])
                offset += got
    finally:
        view.release()
        for future in parts:
            future.cancel()
    verifier.check()
