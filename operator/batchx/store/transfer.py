"""The files API's decisions, on the store: who sends which bytes, and when a path is recorded.

A client without store credentials copies files in two calls per batch of files:

1. `plan_uploads(paths with their digest and size)`: per file, `unchanged` (the path already
   names this content), `conflict` (it names other content; paths are immutable), `stored` (the
   blob is in the store already: dedup before transfer, nothing to send) or `upload` with a
   presigned URL for exactly that blob (`batchx.store.presign`; below `CHECK_FIRST` bytes the
   blob is not looked up: the URL is create-only, so a stored blob answers 412 and costs the
   client a few KiB sent instead of a round trip per file). The storage quota is checked
   here, before any transfer, against the blobs the environment does not hold yet.
2. after the uploads, `commit(the same items)`: each blob is verified (size and the SHA-256 S3
   checked on upload, by a HEAD) and the paths are recorded in one batch (one usage update);
   the quota is enforced again there, atomically (`refs.reference`), since usage may have moved
   between the calls. A blob that is not there (an upload that failed or whose URL expired)
   is answered per file and the client asks for a fresh plan.

Downloads: `download_urls(paths)`, presigned GETs for the blobs, which the client verifies.
Transport and authorization are the caller's (the operator's aggregated API).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from batchx.store.errors import NotFoundError, QuotaExceededError, StoreError
from batchx.store.fs import EnvFiles
from batchx.store.index import Entry, NewPath, Outcome, compare
from batchx.store.presign import download_url, upload_url, verified_size
from batchx.store.s3 import S3Backend

CHECK_FIRST = 256 * 1024
"""Blobs from this size on are looked up before an upload URL is issued (dedup before transfer)."""
URL_SECONDS = 900
"""How long a presigned URL is valid: long enough for one 5 GiB PUT at ~10 MB/s."""


@dataclass(frozen=True)
class Planned:
    """What the client does for one file of an upload plan."""

    path: str
    action: str
    """`unchanged`, `conflict`, `stored` or `upload` (see module docstring)."""
    url: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None


@dataclass(frozen=True)
class Download:
    entry: Entry
    url: str


def _s3(files: EnvFiles) -> S3Backend:
    backend = files.backend
    if not isinstance(backend, S3Backend):
        raise StoreError(f"the files API needs an S3 store, not {backend.description}")
    return backend


def plan_uploads(
    files: EnvFiles, items: list[NewPath], expires: int = URL_SECONDS
) -> list[Planned]:
    """Step 1 (see module docstring); QuotaExceededError when the new content cannot fit."""
    backend = _s3(files)
    keys: list[str | None] = []
    answers: list[Planned | None] = []
    for item in items:
        try:
            keys.append(files.index.key(item.path))
            answers.append(None)
        except StoreError as exc:
            keys.append(None)
            answers.append(Planned(item.path, "conflict", message=str(exc)))
    looked = iter(files.index.lookup([k for k in keys if k is not None]))
    todo: list[int] = []
    for i, key in enumerate(keys):
        got = next(looked) if key is not None else None
        if answers[i] is not None:
            continue
        if got is not None and got[0]:
            result = compare(Entry.from_bytes(items[i].path, got[0]), items[i])
            answers[i] = (
                Planned(items[i].path, "conflict", message=str(result))
                if isinstance(result, StoreError)
                else Planned(items[i].path, "unchanged")
            )
        else:
            todo.append(i)
    # Small blobs are not looked up: their create-only upload URL is the existence check (the
    # client's PUT answers 412 when the store holds them), one round trip instead of two.
    digests = sorted({items[i].digest for i in todo if items[i].size >= CHECK_FIRST})
    stored = dict(zip(digests, files.store.pool.map(backend.blob_size, digests), strict=True))
    _check_quota(files, {items[i].digest: items[i].size for i in todo})
    for i in todo:
        item = items[i]
        size = stored.get(item.digest)
        if size == item.size:
            answers[i] = Planned(item.path, "stored")
        elif size is None:
            url, headers = upload_url(backend, item.digest, item.size, expires)
            answers[i] = Planned(item.path, "upload", url, headers)
        else:
            answers[i] = Planned(
                item.path,
                "conflict",
                message=f"blob sha256:{item.digest} is stored with {size} bytes, not {item.size}",
            )
    return [a for a in answers if a is not None]


def _check_quota(files: EnvFiles, sizes: dict[str, int]) -> None:
    usage = files.usage()
    if usage.quota is None or not sizes or usage.bytes + sum(sizes.values()) <= usage.quota:
        return  # fits even if none of it is held: no count to read
    counts = files.refs.counts(sizes)
    adding = sum(size for digest, size in sizes.items() if counts[digest] <= 0)
    if adding and usage.bytes + adding > usage.quota:
        raise QuotaExceededError(files.name, usage.bytes, adding, usage.quota)


def commit(
    files: EnvFiles, items: list[NewPath], uploaded: frozenset[str] = frozenset()
) -> list[tuple[Entry, Outcome] | StoreError]:
    """Step 2: record the paths whose blobs are verified; an answer per item, in order.

    `uploaded`: digests the client says its own upload created (its create-only PUT got 200),
    so no environment can count them yet: they are counted in the commit's one batch record,
    without a read (`batchx.store.refs`). A wrong claim harms only the claimer's environment:
    its count and charge for content it held already go one too high (a leaked blob, never
    one collected in use)."""
    backend = _s3(files)
    # The writer lease before the blobs are verified: no collection can run between "it is
    # there" and "it is counted" (batchx.store.leases), as for every writer.
    files.store.writer_lease()
    digests = sorted({item.digest for item in items})
    sizes = dict(
        zip(
            digests, files.store.pool.map(lambda d: verified_size(backend, d), digests), strict=True
        )
    )
    results: list[tuple[Entry, Outcome] | StoreError | None] = [None] * len(items)
    ready: list[int] = []
    for i, item in enumerate(items):
        size = sizes[item.digest]
        if size == item.size:
            ready.append(i)
        else:
            results[i] = NotFoundError(
                f"bx://{item.path}: blob sha256:{item.digest} of {item.size} bytes is not in the "
                "store (its upload failed or its URL expired): plan the upload again"
            )
    _commit(files, items, ready, results, set(uploaded))
    return [r for r in results if r is not None]


def _commit(
    files: EnvFiles,
    items: list[NewPath],
    ready: list[int],
    results: list[tuple[Entry, Outcome] | StoreError | None],
    fresh: set[str],
) -> None:
    if not ready:
        return
    try:
        outcomes = files.commit([items[i] for i in ready], None, fresh)
    except QuotaExceededError as exc:
        if len(ready) == 1:
            results[ready[0]] = exc
            return
        for i in ready:  # some of the batch may fit: each file gets its own answer
            _commit(files, items, [i], results, set())
        return
    for i, outcome in zip(ready, outcomes, strict=True):
        results[i] = outcome


def download_urls(
    files: EnvFiles, paths: list[str], expires: int = URL_SECONDS
) -> list[Download | StoreError]:
    """Presigned GETs for the blobs the paths name; NotFoundError for an absent path."""
    backend = _s3(files)

    def one(path: str) -> Download | StoreError:
        try:
            entry = files.require(path)
            return Download(entry, download_url(backend, entry.digest, expires))
        except StoreError as exc:
            return exc

    return list(files.store.pool.map(one, paths))
