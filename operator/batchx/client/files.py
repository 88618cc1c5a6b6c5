"""An environment's files through the operator's files API, on the user's Kubernetes credentials.

`RemoteFiles` offers the part of `batchx.store.EnvFiles` that `bx cp/ls/rm` use, so the command
line works the same on the cluster (this) and in the embedded local-directory mode (`--store`).
The API (`files.batchx.io/v1alpha1`, served by the operator behind the kube-apiserver) answers
with presigned URLs; the bytes go straight between this machine and S3, and this machine holds
no store credentials. Per batch of up to `CHUNK` files: one plan call, the uploads of the blobs
the store does not hold (dedup before transfer), one commit call. An upload whose URL expired is
planned again once, with a fresh URL.
"""

from __future__ import annotations

import base64
import http.client
import os
import threading
import uuid
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from batchx.client.errors import ApiError
from batchx.client.kube import Kube
from batchx.store.backend import Progress, no_progress
from batchx.store.batch import LocalFile, PutReport, hash_file
from batchx.store.digests import verify_parts
from batchx.store.errors import IntegrityError, NotFoundError, StoreError
from batchx.store.index import Entry, NewPath, Outcome

JSON = dict[str, Any]
CHUNK = 1000
"""Files per plan/commit call (the API's limit)."""
BLOCK = 1 << 20
PART = 16 * BLOCK
"""Downloads from this size on are ranged GETs of this many bytes, `PARTS_AT_ONCE` in parallel."""
PARTS_AT_ONCE = 4
Sent = tuple[list["JSON"], list[int | StoreError]]
"""A batch's plan and, per file, the bytes its upload sent or why it failed."""


def _entry(raw: JSON) -> Entry:
    record = raw.get("provenance")
    return Entry(
        raw["path"],
        raw["digest"],
        int(raw["size"]),
        raw.get("created") or "",
        raw.get("job"),
        record if isinstance(record, dict) else None,
    )


class RemoteFiles:
    """Environment `name`'s files through the files API (see module docstring)."""

    def __init__(self, kube: Kube, name: str) -> None:
        self.kube, self.name = kube, name
        self._known: dict[str, Entry] = {}

    # -- calls -------------------------------------------------------------------------------
    def _call(
        self,
        method: str,
        verb: str,
        suffix: str = "",
        body: Any = None,
        query: Iterable[tuple[str, str]] = (),
    ) -> JSON:
        try:
            return self.kube.files(method, verb, self.name, suffix, body=body, query=list(query))
        except ApiError as exc:
            if exc.status == 404 and "bx://" not in exc.message:  # the group is not served
                raise StoreError(
                    "this cluster serves no files API (files.batchx.io/v1alpha1: the BatchX "
                    f"operator with filesApi.enabled); {exc.message}. Without a cluster, "
                    "--store file:///DIR is the embedded local mode"
                ) from None
            if exc.status == 404:
                raise NotFoundError(exc.message) from None
            raise StoreError(str(exc)) from None

    def _list(self, prefix: str, *flags: str) -> list[JSON]:
        query = [("prefix", prefix), *((f, "true") for f in flags)]
        found: list[JSON] = self._call("GET", "list", query=query)["files"]
        for raw in found:
            if "digest" in raw:
                self._known[raw["path"]] = _entry(raw)
        return found

    # -- reading -----------------------------------------------------------------------------
    def stat(self, path: str) -> Entry | None:
        return next((_entry(f) for f in self._list(path) if f["path"] == path), None)

    def require(self, path: str) -> Entry:
        entry = self.stat(path)
        if entry is None:
            raise NotFoundError(f"bx://{path} not found in environment {self.name!r}")
        return entry

    def find(self, pattern: str = "") -> Iterator[str]:
        yield from (f["path"] for f in self._list(pattern))

    def listdir(self, folder: str = "") -> Iterator[str]:
        if folder and not folder.endswith("/"):
            folder += "/"
        yield from (f["path"] for f in self._list(folder, "children"))

    def entries(self, paths: Iterable[str]) -> Iterator[Entry]:
        for path in paths:
            entry = self._known.get(path) or self.stat(path)
            if entry is not None:
                yield entry

    def get_file(self, path: str, dest: Path, progress: Progress = no_progress) -> Entry:
        found = next((f for f in self._list(path, "urls") if f["path"] == path), None)
        if found is None:
            raise NotFoundError(f"bx://{path} not found in environment {self.name!r}")
        entry = _entry(found)
        _download(found["url"], entry, dest, progress)
        return entry

    # -- writing -----------------------------------------------------------------------------
    def delete(self, path: str) -> Entry:
        name = base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")
        return _entry(self._call("DELETE", "delete", f"/{name}"))

    def copy(self, src: str, dst: str) -> PutReport:
        entry = self.require(src)
        item = NewPath(dst, entry.digest, entry.size)
        result = self._commit([item], self._plan([item]), {0: 0})[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def put_file(
        self,
        path: str,
        local: Path,
        *,
        job: str | None = None,
        digest_hint: str | None = None,
        progress: Progress = no_progress,
    ) -> PutReport:
        result = self.put_files([LocalFile(path, local, digest_hint)], progress=progress)[0]
        if isinstance(result, BaseException):
            raise result
        return result

    def put_files(
        self,
        files: Sequence[LocalFile],
        *,
        job: str | None = None,
        progress: Progress = no_progress,
        workers: int = 8,
    ) -> list[PutReport | StoreError | OSError]:
        """Copy local files in; a result per file, in order (see module docstring). Batches are
        pipelined: one batch's commit runs while the next one is planned and uploaded."""
        with (
            ThreadPoolExecutor(max(1, workers), thread_name_prefix="bx-files") as pool,
            ThreadPoolExecutor(1, thread_name_prefix="bx-commit") as committer,
        ):
            described = list(pool.map(_describe, files))
            chunks: list[tuple[list[Any], Future[list[PutReport | StoreError]]]] = []
            for start in range(0, len(files), CHUNK):
                chunk = list(
                    zip(files[start : start + CHUNK], described[start : start + CHUNK], strict=True)
                )
                good = [(f, d) for f, d in chunk if isinstance(d, NewPath)]
                sent = self._send(good, pool, progress)
                chunks.append((chunk, committer.submit(self._finish, good, sent, pool, retry=True)))
            results: list[PutReport | StoreError | OSError] = []
            for chunk, finished in chunks:
                done = iter(finished.result())
                results += [d if isinstance(d, OSError) else next(done) for _, d in chunk]
        return results

    def _put_chunk(
        self,
        chunk: list[tuple[LocalFile, NewPath]],
        pool: ThreadPoolExecutor,
        progress: Progress,
        *,
        retry: bool,
    ) -> list[PutReport | StoreError]:
        return self._finish(chunk, self._send(chunk, pool, progress), pool, retry=retry)

    def _send(
        self, chunk: list[tuple[LocalFile, NewPath]], pool: ThreadPoolExecutor, progress: Progress
    ) -> Sent:
        """Plan a batch and upload what the plan asks for (bounded by the pool's workers)."""
        if not chunk:
            return [], []
        plans = self._plan([item for _, item in chunk])

        def send(k: int) -> int | StoreError:
            plan, (local, item) = plans[k], chunk[k]
            if plan["action"] != "upload":
                progress(item.size)
                return 0
            status = _upload(plan["url"], plan.get("headers") or {}, local.local, item.size)
            progress(item.size)
            if status in (200, 412):  # 412: stored meanwhile by another writer
                return item.size if status == 200 else 0
            return StoreError(f"bx://{item.path}: the upload was refused (HTTP {status})")

        return plans, list(pool.map(send, range(len(chunk))))

    def _finish(
        self,
        chunk: list[tuple[LocalFile, NewPath]],
        uploads: Sent,
        pool: ThreadPoolExecutor,
        *,
        retry: bool,
    ) -> list[PutReport | StoreError]:
        """Commit a batch that `_send` planned and uploaded; with `retry`, files whose upload
        failed (an expired URL) or whose blob was missing at commit go once more, freshly
        planned."""
        if not chunk:
            return []
        items = [item for _, item in chunk]
        plans, outcomes = uploads
        failed = {k: o for k, o in enumerate(outcomes) if isinstance(o, StoreError)}
        sent = {k: o for k, o in enumerate(outcomes) if isinstance(o, int)}
        if retry and failed:  # an expired URL: plan those again, with fresh URLs
            again = self._put_chunk([chunk[k] for k in failed], pool, no_progress, retry=False)
            redone = dict(zip(failed, again, strict=True))
            results = self._commit(items, plans, sent, {k: StoreError("redone") for k in failed})
            return [redone.get(k, r) for k, r in enumerate(results)]
        results = self._commit(items, plans, sent, failed)
        missing = [k for k, r in enumerate(results) if isinstance(r, NotFoundError)]
        if retry and missing:  # the blob was not there at commit: once more from the plan
            again = self._put_chunk([chunk[k] for k in missing], pool, no_progress, retry=False)
            redone = dict(zip(missing, again, strict=True))
            return [redone.get(k, r) for k, r in enumerate(results)]
        return results

    def _plan(self, items: list[NewPath]) -> list[JSON]:
        body = {
            "action": "plan",
            "files": [{"path": i.path, "digest": i.digest, "size": i.size} for i in items],
        }
        plans: list[JSON] = self._call("POST", "create", body=body)["files"]
        return plans

    def _commit(
        self,
        items: list[NewPath],
        plans: list[JSON],
        sent: dict[int, int],
        failed: dict[int, StoreError] | None = None,
    ) -> list[PutReport | StoreError]:
        failed = failed or {}
        results: list[PutReport | StoreError | None] = [None] * len(items)
        todo: list[int] = []
        for k, (item, plan) in enumerate(zip(items, plans, strict=True)):
            if k in failed:
                results[k] = failed[k]
            elif plan["action"] == "conflict":
                results[k] = StoreError(plan.get("message") or f"bx://{item.path}: conflict")
            elif plan["action"] == "unchanged":
                results[k] = PutReport(
                    Entry(item.path, item.digest, item.size, ""), Outcome.UNCHANGED, 0
                )
            else:
                todo.append(k)
        if todo:
            body = {
                "action": "commit",
                "files": [
                    {
                        "path": items[k].path,
                        "digest": items[k].digest,
                        "size": items[k].size,
                        "uploaded": sent.get(k, 0) > 0,
                    }
                    for k in todo
                ],
            }
            answers = self._call("POST", "create", body=body)["files"]
            for k, answer in zip(todo, answers, strict=True):
                item = items[k]
                if "outcome" in answer:
                    entry = Entry(item.path, item.digest, item.size, "")
                    results[k] = PutReport(entry, Outcome(answer["outcome"]), sent.get(k, 0))
                elif answer.get("error") == "NotFoundError":
                    results[k] = NotFoundError(answer["message"])
                else:
                    results[k] = StoreError(answer.get("message") or "refused")
        return [r for r in results if r is not None]


def _describe(item: LocalFile) -> NewPath | OSError:
    try:
        size = os.stat(item.local).st_size
        return NewPath(item.path, item.digest_hint or hash_file(item.local), size)
    except OSError as exc:
        return exc


_local = threading.local()


def _connection(url: str) -> tuple[http.client.HTTPConnection, str]:
    """A kept-alive connection to the URL's server, one per thread (S3 answers many small
    uploads much faster without a TCP handshake each)."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    pool: dict[str, http.client.HTTPConnection] = _local.__dict__.setdefault("pool", {})
    key = f"{parts.scheme}://{parts.netloc}"
    conn = pool.get(key)
    if conn is None:
        kind = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        conn = pool[key] = kind(parts.netloc, timeout=300, blocksize=BLOCK)
    return conn, target


def _drop(url: str) -> None:
    parts = urlsplit(url)
    pool: dict[str, http.client.HTTPConnection] = _local.__dict__.get("pool", {})
    conn = pool.pop(f"{parts.scheme}://{parts.netloc}", None)
    if conn is not None:
        conn.close()


def _upload(url: str, headers: dict[str, str], local: Path, size: int) -> int:
    """PUT the file; the HTTP status. A kept-alive connection the server had closed is
    replaced once (the request never reached it)."""
    for attempt in (1, 2):
        conn, target = _connection(url)
        try:
            with open(local, "rb") as source:
                conn.request(
                    "PUT", target, body=source, headers={**headers, "Content-Length": str(size)}
                )
                response = conn.getresponse()
                response.read()
        except (ConnectionError, http.client.HTTPException):
            _drop(url)
            if attempt == 2:
                raise
            continue
        if response.will_close:
            _drop(url)
        return response.status
    raise AssertionError("unreachable")


def _download(url: str, entry: Entry, dest: Path, progress: Progress) -> None:
    """Fetch, verify (SHA-256 and size) and only then put the file in place. From `PART`
    bytes on, ranged GETs of one URL run in parallel, each writing its part at its offset,
    hashed in order as they land (`batchx.store.digests.verify_parts`)."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.bx-{uuid.uuid4().hex[:8]}.partial")
    fd = os.open(tmp, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        count = max(1, (entry.size + PART - 1) // PART)
        os.ftruncate(fd, entry.size)
        if count == 1:
            _fetch(url, entry, fd, (0, entry.size), progress, ranged=False)
            verify_parts(fd, [_done()], PART, entry.size, entry.digest)
        else:
            with ThreadPoolExecutor(PARTS_AT_ONCE, thread_name_prefix="bx-get") as pool:
                parts = [
                    pool.submit(
                        _fetch,
                        url,
                        entry,
                        fd,
                        (i * PART, min(entry.size, (i + 1) * PART)),
                        progress,
                    )
                    for i in range(count)
                ]
                verify_parts(fd, parts, PART, entry.size, entry.digest)
        os.replace(tmp, dest)
    finally:
        os.close(fd)
        if tmp.exists():
            tmp.unlink()


def _done() -> Future[None]:
    future: Future[None] = Future()
    future.set_result(None)
    return future


def _fetch(
    url: str,
    entry: Entry,
    fd: int,
    span: tuple[int, int],
    progress: Progress,
    *,
    ranged: bool = True,
) -> None:
    """GET bytes `span` (start, end) of the URL into `fd` at their offset."""
    start, end = span
    parts = urlsplit(url)
    kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
    conn = kind(parts.netloc, timeout=300, blocksize=BLOCK)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    try:
        conn.request("GET", target, headers={"Range": f"bytes={start}-{end - 1}"} if ranged else {})
        response = conn.getresponse()
        if response.status not in (200, 206):
            raise StoreError(f"bx://{entry.path}: download refused (HTTP {response.status})")
        offset = start
        while chunk := response.read(BLOCK):
            if offset + len(chunk) > end:
                raise IntegrityError(entry.digest, "the server sent more bytes than asked for")
            os.pwrite(fd, chunk, offset)
            offset += len(chunk)
            progress(len(chunk))
        if offset != end:
            raise IntegrityError(entry.digest, f"received {offset - start} of {end - start} bytes")
    finally:
        conn.close()
