"""Storing many local files at once (`bx cp` of a folder, stage-out of a job's outputs).

Why a part of its own: the per-file cost is what makes 10,000 small files slow, so everything
that can be paid once per batch is: existence of the target paths is one listing (`Index.lookup`),
quota and usage are one compare-and-swap per `BATCH` files, the writer lease is the store's.
Per file at most: a blob HEAD (only when a digest hint or a big inline blob asks for it), the blob
upload and the index entry write; the counts of the blobs a batch created are one batch record
(`refs`), a count write per file only for content the environment may hold already.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batchx.store.backend import Progress, no_progress
from batchx.store.cas import Current
from batchx.store.errors import QuotaExceededError, StoreError
from batchx.store.index import Entry, NewPath, Outcome, compare

if TYPE_CHECKING:
    from batchx.store.fs import EnvFiles

BATCH = 256
"""put_files commits this many files at once: one usage update (compare-and-swap) per batch."""


@dataclass(frozen=True)
class LocalFile:
    """One file for `EnvFiles.put_files`."""

    path: str
    local: Path
    digest_hint: str | None = None
    """A trusted digest of the file (the CLI's digest cache): lets known content skip reading."""


@dataclass
class PutReport:
    entry: Entry
    outcome: Outcome
    uploaded_bytes: int
    """Bytes actually sent to the store (0 when the content was already stored)."""


Result = PutReport | StoreError | OSError
Pending = tuple[int, NewPath, int, bool]
"""(position in the batch, what to commit, bytes sent, the blob is new)."""


def put_files(
    files: EnvFiles,
    items: Sequence[LocalFile],
    *,
    job: str | None,
    progress: Progress = no_progress,
    workers: int = 8,
) -> list[Result]:
    """`EnvFiles.put_files`: a result (report or error) per file, in order. A path that exists
    is never uploaded to: its content is compared by digest (hashed locally when no hint is
    given). `progress` also receives the size of files that moved no bytes, so that a bar
    reaches its total."""
    results: list[Result | None] = [None] * len(items)
    keys: dict[int, str] = {}
    for i, item in enumerate(items):
        try:
            keys[i] = files.index.key(item.path)
        except StoreError as exc:
            results[i] = exc
    if not keys:
        return [r for r in results if r is not None]
    lease = files.store.writer_lease()

    def tick(n: int) -> None:
        lease.keepalive()
        progress(n)

    seen = dict(zip(keys, files.index.lookup(list(keys.values())), strict=True))
    pending: list[Pending] = []
    with ThreadPoolExecutor(max(1, workers), thread_name_prefix="bx-put") as pool:
        running: dict[Future[PutReport | tuple[NewPath, int, bool]], int] = {
            pool.submit(_prepare, files, items[i], seen[i], job, tick): i for i in keys
        }
        while running:
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in done:
                i = running.pop(future)
                try:
                    got = future.result()
                except (StoreError, OSError) as exc:
                    results[i] = exc
                    continue
                if isinstance(got, PutReport):
                    results[i] = got
                else:
                    pending.append((i, *got))
            if len(pending) >= BATCH or (pending and not running):
                _commit(files, pending, seen, results)
                pending = []
    return [r for r in results if r is not None]


def _prepare(
    files: EnvFiles, item: LocalFile, seen: Current, job: str | None, tick: Progress
) -> PutReport | tuple[NewPath, int, bool]:
    """A final report (the path exists), or (what to commit, bytes sent, blob is new)."""
    size = os.stat(item.local).st_size
    if seen is not None and seen[0]:
        current = Entry.from_bytes(item.path, seen[0])
        digest = item.digest_hint or hash_file(item.local)
        result = compare(current, NewPath(item.path, digest, size, job))
        if isinstance(result, StoreError):
            raise result
        tick(size)
        return PutReport(result[0], result[1], 0)
    hint = item.digest_hint
    if hint is not None and files.backend.blob_size(hint) == size:
        tick(size)
        return NewPath(item.path, hint, size, job), 0, False
    with open(item.local, "rb", buffering=0) as source:
        put = files.backend.put_blob(source, tick)
    if not put.uploaded:
        tick(put.size)
    new = NewPath(item.path, put.digest, put.size, job)
    return new, (put.size if put.uploaded else 0), put.uploaded


def _commit(
    files: EnvFiles,
    pending: list[Pending],
    seen: dict[int, Current],
    results: list[Result | None],
) -> None:
    items = [p[1] for p in pending]
    fresh = {p[1].digest for p in pending if p[3]}
    try:
        outcomes = files.commit(items, [seen[p[0]] for p in pending], fresh)
    except QuotaExceededError:
        if len(pending) == 1:
            raise
        # Some of the batch may fit: commit one by one so each file gets its own answer.
        for one in pending:
            try:
                _commit(files, [one], seen, results)
            except QuotaExceededError as exc:
                results[one[0]] = exc
        return
    for (i, _, sent, _), outcome in zip(pending, outcomes, strict=True):
        results[i] = (
            outcome if isinstance(outcome, StoreError) else PutReport(outcome[0], outcome[1], sent)
        )


def hash_file(path: Path) -> str:
    with open(path, "rb", buffering=0) as source:
        return hashlib.file_digest(source, "sha256").hexdigest()
