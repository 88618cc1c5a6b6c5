"""The embedded development backend: a local directory.

Layout under the root:
- `blobs/ab/cd/<hex>`: blob bytes, read-only files, created by hard-linking a fully written
  and hashed temp file (link(2) fails when the name exists, which makes the commit create-only
  and atomic without copying).
- `kv/...`: small objects. A key may be both an object and a prefix of other keys (`a` and
  `a/b`), which a file system cannot hold, so every segment but the last gets the suffix `@d`
  and a literal `@` is doubled (`a` -> `a`, `a/b` -> `a@d/b`, `x@d` -> `x@@d`).
- `tmp/`: writes in progress; anything old there is a crashed writer's leftover.
Compare-and-swap writes take an exclusive flock on `kv.lock`, so several processes on one
machine (the CLI and a local operator) are safe together.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

from batchx.store.backend import BlobInfo, ObjectInfo, Progress, PutResult, no_progress
from batchx.store.digests import CHUNK, blob_key, digest_of_key, verified
from batchx.store.errors import IntegrityError, PreconditionFailed

_DIR_SUFFIX = "@d"


def encode_key(key: str) -> str:
    """Object key -> relative file path (see module docstring)."""
    segments = [s.replace("@", "@@") for s in key.split("/")]
    return "/".join([s + _DIR_SUFFIX for s in segments[:-1]] + segments[-1:])


def _decode_segment(name: str) -> tuple[str, bool]:
    """File name -> (key segment, is_directory)."""
    # A directory name ends in an odd run of '@' followed by 'd'; escaped names have even runs.
    if name.endswith("d"):
        body = name[:-1]
        run = len(body) - len(body.rstrip("@"))
        if run % 2 == 1:
            return body[:-1].replace("@@", "@"), True
    return name.replace("@@", "@"), False


def _etag(data: bytes) -> str:
    return hashlib.sha1(data, usedforsecurity=False).hexdigest()


class LocalBackend:
    """A directory on this machine; see module docstring."""

    def __init__(self, root: Path) -> None:
        self.root = root.expanduser().resolve()
        self.description = f"file://{self.root}"
        for sub in ("blobs", "kv", "tmp"):
            (self.root / sub).mkdir(parents=True, exist_ok=True)
        self._lock_path = self.root / "kv.lock"
        self._thread_lock = threading.Lock()

    # -- small objects ----------------------------------------------------------------------
    def _kv_path(self, key: str) -> Path:
        return self.root / "kv" / encode_key(key)

    def get(self, key: str) -> tuple[bytes, str] | None:
        try:
            data = self._kv_path(key).read_bytes()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None
        return data, _etag(data)

    def put(
        self, key: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> str:
        path = self._kv_path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self._write_temp(data)
        try:
            if create_only:
                try:
                    os.link(tmp, path)  # atomic create-only
                except FileExistsError:
                    raise PreconditionFailed(key) from None
            elif if_match is not None:
                with self._locked():
                    current = self.get(key)
                    if current is None or current[1] != if_match:
                        raise PreconditionFailed(key)
                    os.replace(tmp, path)
            else:
                with self._locked():
                    os.replace(tmp, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
        return _etag(data)

    def delete(self, key: str) -> None:
        with self._locked(), contextlib.suppress(FileNotFoundError, NotADirectoryError):
            os.unlink(self._kv_path(key))

    def list_keys(
        self, prefix: str, *, delimiter: str | None = None, start_after: str | None = None
    ) -> Iterator[ObjectInfo | str]:
        # Dev-scale listing: gather, sort, filter. S3 does this server-side.
        base_key = prefix.rsplit("/", 1)[0] + "/" if "/" in prefix else ""
        base = self.root / "kv" / encode_key(base_key + "x")[:-1] if base_key else self.root / "kv"
        found: list[ObjectInfo] = []
        for dirpath, dirnames, filenames in os.walk(base):
            rel_dir = Path(dirpath).relative_to(self.root / "kv")
            key_dir = "".join(_decode_segment(p)[0] + "/" for p in rel_dir.parts)
            dirnames[:] = [
                d
                for d in dirnames
                if _decode_segment(d)[1]
                and _could_match(key_dir + _decode_segment(d)[0] + "/", prefix)
            ]
            for name in filenames:
                key = key_dir + _decode_segment(name)[0]
                if key.startswith(prefix):
                    st = os.stat(os.path.join(dirpath, name))
                    found.append(ObjectInfo(key, st.st_size, st.st_mtime))
        found.sort(key=lambda o: o.key.encode())
        yield from _group(found, prefix, delimiter, start_after)

    # -- blobs ------------------------------------------------------------------------------
    def _blob_path(self, digest: str) -> Path:
        return self.root / blob_key(digest)

    def blob_path(self, digest: str) -> Path:
        """Where a blob's bytes live (tests tamper with them here)."""
        return self._blob_path(digest)

    def blob_size(self, digest: str) -> int | None:
        try:
            return self._blob_path(digest).stat().st_size
        except FileNotFoundError:
            return None

    def put_blob(self, source: BinaryIO, progress: Progress = no_progress) -> PutResult:
        tmp = self.root / "tmp" / uuid.uuid4().hex
        hasher = hashlib.sha256()
        size = 0
        try:
            with tmp.open("wb") as out:
                while chunk := source.read(CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
                    size += len(chunk)
                    progress(len(chunk))
            digest = hasher.hexdigest()
            final = self._blob_path(digest)
            final.parent.mkdir(parents=True, exist_ok=True)
            tmp.chmod(0o444)
            try:
                os.link(tmp, final)  # create-only: a concurrent writer of the same content wins
            except FileExistsError:
                return PutResult(digest, size, uploaded=False)
            return PutResult(digest, size, uploaded=True)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)

    def read_blob(
        self, digest: str, size: int, dest: Path, progress: Progress = no_progress
    ) -> None:
        _write_verified(dest, self.blob_chunks(digest, size), progress)

    def blob_chunks(self, digest: str, size: int) -> Iterator[bytes]:
        try:
            handle = self._blob_path(digest).open("rb")
        except FileNotFoundError:
            raise IntegrityError(digest, "blob is missing from the store") from None
        with handle:
            yield from verified(iter(lambda: handle.read(CHUNK), b""), digest, size)

    def list_blobs(self) -> Iterator[BlobInfo]:
        for dirpath, _, filenames in os.walk(self.root / "blobs"):
            for name in filenames:
                digest = digest_of_key(name)
                if digest is not None:
                    st = os.stat(os.path.join(dirpath, name))
                    yield BlobInfo(digest, st.st_size, st.st_mtime)

    def delete_blob(self, digest: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._blob_path(digest))

    def sweep(self, older_than: float) -> int:
        removed = 0
        for entry in os.scandir(self.root / "tmp"):
            if entry.stat().st_mtime < older_than:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(entry.path)
                    removed += 1
        return removed

    def close(self) -> None:
        """Nothing to release."""

    # -- helpers ----------------------------------------------------------------------------
    def _write_temp(self, data: bytes) -> Path:
        tmp = self.root / "tmp" / uuid.uuid4().hex
        tmp.write_bytes(data)
        return tmp

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        # flock serialises processes; the thread lock serialises threads of this process (flock
        # locks belong to the open file description, so each acquisition opens its own).
        with self._thread_lock, self._lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _could_match(dir_prefix: str, prefix: str) -> bool:
    return dir_prefix.startswith(prefix) or prefix.startswith(dir_prefix)


def _group(
    found: list[ObjectInfo], prefix: str, delimiter: str | None, start_after: str | None
) -> Iterator[ObjectInfo | str]:
    seen: set[str] = set()
    for info in found:
        if start_after is not None and info.key.encode() <= start_after.encode():
            continue
        if delimiter:
            cut = info.key.find(delimiter, len(prefix))
            if cut >= 0:
                common = info.key[: cut + len(delimiter)]
                if common not in seen:
                    seen.add(common)
                    yield common
                continue
        yield info


def _write_verified(dest: Path, chunks: Iterator[bytes], progress: Progress) -> None:
    """Write to a temp file next to `dest`, rename only once the whole blob verified."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.bx-{uuid.uuid4().hex[:8]}.partial")
    try:
        with tmp.open("wb") as out:
            for chunk in chunks:
                out.write(chunk)
                progress(len(chunk))
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def write_verified(dest: Path, chunks: Iterator[bytes], progress: Progress = no_progress) -> None:
    """Public form of the atomic verified write (shared with the S3 backend)."""
    _write_verified(dest, chunks, progress)
