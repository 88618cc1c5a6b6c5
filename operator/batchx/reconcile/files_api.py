"""The files API's calls: authorize the forwarded user, then answer from the store.

Served as the aggregated API `files.batchx.io/v1alpha1` (`batchx.handlers.files_api` is the HTTP
glue). The kube-apiserver authenticates the user however their kubeconfig does and forwards the
identity; every call is then authorized here with a SubjectAccessReview on resource `files` of
group `files.batchx.io` in the environment's namespace (verbs get, list, create, delete), which
the shipped roles grant (viewer reads, member also writes, admin also deletes). The API server
already checked the same attributes before forwarding; the review here is what an aggregated
server must not skip (anyone who reaches its port with the front-proxy certificate is trusted
for the identity, not for the permission).

Bytes never pass through the operator: answers carry presigned URLs (`batchx.store.transfer`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from batchx.reconcile.context import Context
from batchx.store import transfer
from batchx.store.digests import is_digest
from batchx.store.errors import NotFoundError, StoreError
from batchx.store.index import Entry, NewPath

GROUP = "files.batchx.io"
VERSION = "v1alpha1"
RESOURCE = "files"
MAX_FILES = 1000
"""Files per plan or commit call (the client batches); bounds one request's work and answer."""
ROLE_FOR = {"get": "viewer", "list": "viewer", "create": "member", "delete": "admin"}

JSON = dict[str, Any]


class ApiRefusal(Exception):
    """A call answered with a Kubernetes Status of `code` (403 Forbidden, 400 BadRequest...)."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message


@dataclass(frozen=True)
class Identity:
    """Who the kube-apiserver says is calling (the front-proxy headers)."""

    user: str
    groups: tuple[str, ...] = ()
    extra: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


async def authorize(ctx: Context, who: Identity, namespace: str, verb: str) -> None:
    """ApiRefusal 403, naming the permission that is missing, unless `who` may `verb` files."""
    review = {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {
            "user": who.user,
            "groups": list(who.groups),
            "extra": {k: list(v) for k, v in who.extra.items()},
            "resourceAttributes": {
                "namespace": namespace,
                "verb": verb,
                "group": GROUP,
                "resource": RESOURCE,
            },
        },
    }
    answer = await ctx.kube.review_access(review)
    if (answer.get("status") or {}).get("allowed"):
        return
    raise ApiRefusal(
        403,
        "Forbidden",
        f'user "{who.user}" cannot {verb} resource "{RESOURCE}" in API group "{GROUP}" in the '
        f'namespace "{namespace}": it needs the batchx-{ROLE_FOR[verb]} role of environment '
        f"{namespace!r}",
    )


def _store(ctx: Context) -> Any:
    if ctx.store is None:
        raise ApiRefusal(503, "ServiceUnavailable", "the operator has no store configured")
    return ctx.store


def parse_items(body: Any) -> list[NewPath]:
    """`{"files": [{"path", "digest", "size"}, ...]}`; ApiRefusal 400 naming the bad field."""
    files = body.get("files") if isinstance(body, dict) else None
    if not isinstance(files, list) or not files:
        raise ApiRefusal(400, "BadRequest", "files: expected a non-empty list")
    if len(files) > MAX_FILES:
        raise ApiRefusal(
            400, "BadRequest", f"files: {len(files)} items, at most {MAX_FILES} per call"
        )
    items = []
    for i, raw in enumerate(files):
        where = f"files[{i}]"
        if not isinstance(raw, dict):
            raise ApiRefusal(400, "BadRequest", f"{where}: expected an object")
        path, digest, size = raw.get("path"), raw.get("digest"), raw.get("size")
        if not isinstance(path, str) or not path:
            raise ApiRefusal(400, "BadRequest", f"{where}.path: expected a path")
        if not isinstance(digest, str) or not is_digest(digest):
            raise ApiRefusal(400, "BadRequest", f"{where}.digest: expected 64 hex digits")
        if not isinstance(size, int) or isinstance(size, bool) or size < 0:
            raise ApiRefusal(400, "BadRequest", f"{where}.size: expected a size in bytes >= 0")
        items.append(NewPath(path, digest, size))
    return items


def _error(exc: StoreError) -> JSON:
    return {"error": type(exc).__name__, "message": str(exc)}


async def plan(ctx: Context, namespace: str, items: list[NewPath]) -> JSON:
    store = _store(ctx)
    try:
        plans = await asyncio.to_thread(transfer.plan_uploads, store.env(namespace), items)
    except StoreError as exc:  # the quota, checked before any byte moves
        raise ApiRefusal(422, "Invalid", str(exc)) from None
    return {
        "files": [
            {"path": p.path, "action": p.action}
            | ({"url": p.url, "headers": p.headers} if p.url else {})
            | ({"message": p.message} if p.message else {})
            for p in plans
        ]
    }


def uploaded_digests(body: Any) -> frozenset[str]:
    """The digests a commit's items mark `"uploaded": true` (see `transfer.commit`)."""
    files = body.get("files") if isinstance(body, dict) else None
    return frozenset(
        f["digest"] for f in files or () if isinstance(f, dict) and f.get("uploaded") is True
    )


async def commit(
    ctx: Context, namespace: str, items: list[NewPath], uploaded: frozenset[str] = frozenset()
) -> JSON:
    store = _store(ctx)
    results = await asyncio.to_thread(transfer.commit, store.env(namespace), items, uploaded)
    return {
        "files": [
            {"path": item.path}
            | (_error(r) if isinstance(r, StoreError) else {"outcome": r[1].value})
            for item, r in zip(items, results, strict=True)
        ]
    }


def _entry(e: Entry) -> JSON:
    """An index entry as the API answers it; a file a job wrote also carries its provenance
    record (the job, its image, its inputs' digests: `batchx.planning.provenance`), so that
    `bx ls -l` and `bx provenance` work with only a kubeconfig."""
    answer: JSON = {
        "path": e.path,
        "digest": e.digest,
        "size": e.size,
        "created": e.created,
        "job": e.job,
    }
    if e.provenance is not None:
        answer["provenance"] = e.provenance
    return answer


async def list_files(
    ctx: Context, namespace: str, prefix: str, *, urls: bool = False, children: bool = False
) -> JSON:
    """The entries under `prefix` (a folder ending in `/`, a path, or a pattern), with
    download URLs when `urls`; with `children`, a folder's direct children (sub-folders end
    with `/` and have no entry)."""
    store = _store(ctx)

    def read() -> JSON:
        files = store.env(namespace)
        if children:
            names = list(files.listdir(prefix))
            folders = [{"path": n} for n in names if n.endswith("/")]
            found = files.entries(n for n in names if not n.endswith("/"))
            return {"files": folders + [_entry(e) for e in found]}
        paths = list(files.find(prefix))
        if not urls:
            return {"files": [_entry(e) for e in files.entries(paths)]}
        downloads = transfer.download_urls(files, paths)
        return {
            "files": [
                _entry(d.entry) | {"url": d.url}
                for d in downloads
                if not isinstance(d, StoreError)  # removed meanwhile
            ]
        }

    try:
        return await asyncio.to_thread(read)
    except StoreError as exc:
        raise ApiRefusal(400, "BadRequest", str(exc)) from None


async def delete(ctx: Context, namespace: str, path: str) -> JSON:
    store = _store(ctx)
    try:
        entry = await asyncio.to_thread(lambda: store.env(namespace).delete(path))
    except NotFoundError as exc:
        raise ApiRefusal(404, "NotFound", str(exc)) from None
    except StoreError as exc:
        raise ApiRefusal(400, "BadRequest", str(exc)) from None
    return {"path": entry.path, "digest": entry.digest, "size": entry.size}
