"""The files API's checks that need no server: bad requests name the field, and a refusal names
the permission and the role that grants it (the SubjectAccessReview is faked at our boundary)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from batchx.client.files import RemoteFiles
from batchx.reconcile import files_api
from batchx.reconcile.context import Context
from batchx.reconcile.files_api import ApiRefusal, Identity
from batchx.settings import Settings
from batchx.store import LocalFile, PutReport, open_store

GOOD = {"path": "a/b.txt", "digest": "ab" * 32, "size": 3}


@pytest.mark.parametrize(
    ("body", "where"),
    [
        ({}, "files: expected a non-empty list"),
        ({"files": []}, "files: expected a non-empty list"),
        ({"files": [GOOD, 7]}, "files[1]: expected an object"),
        ({"files": [{**GOOD, "path": ""}]}, "files[0].path"),
        ({"files": [{**GOOD, "digest": "xyz"}]}, "files[0].digest: expected 64 hex digits"),
        ({"files": [{**GOOD, "size": -1}]}, "files[0].size"),
        ({"files": [{**GOOD, "size": True}]}, "files[0].size"),
        ({"files": [GOOD] * (files_api.MAX_FILES + 1)}, f"at most {files_api.MAX_FILES} per call"),
    ],
)
def test_bad_requests_name_the_field(body: Any, where: str) -> None:
    with pytest.raises(ApiRefusal) as caught:
        files_api.parse_items(body)
    assert caught.value.code == 400
    assert where in caught.value.message


def test_good_items_parse() -> None:
    [item] = files_api.parse_items({"files": [GOOD]})
    assert (item.path, item.digest, item.size) == ("a/b.txt", "ab" * 32, 3)


class Reviews:
    """A Kube whose SubjectAccessReviews answer `allowed` and are kept for inspection."""

    def __init__(self, allowed: bool) -> None:
        self.allowed, self.seen = allowed, list[dict[str, Any]]()

    async def review_access(self, body: dict[str, Any]) -> dict[str, Any]:
        self.seen.append(body)
        return {**body, "status": {"allowed": self.allowed}}


def _ctx(kube: Reviews) -> Context:
    return Context(settings=Settings.load({}), kube=kube)  # type: ignore[arg-type]


def test_the_review_carries_the_forwarded_identity() -> None:
    kube = Reviews(allowed=True)
    who = Identity("alice", ("devs", "system:authenticated"), {"scopes": ("a", "b")})
    asyncio.run(files_api.authorize(_ctx(kube), who, "lab", "create"))
    [review] = kube.seen
    assert review["spec"] == {
        "user": "alice",
        "groups": ["devs", "system:authenticated"],
        "extra": {"scopes": ["a", "b"]},
        "resourceAttributes": {
            "namespace": "lab",
            "verb": "create",
            "group": "files.batchx.io",
            "resource": "files",
        },
    }


@pytest.mark.parametrize(
    ("verb", "role"), [("list", "viewer"), ("create", "member"), ("delete", "admin")]
)
def test_a_refusal_names_the_permission_and_the_role(verb: str, role: str) -> None:
    with pytest.raises(ApiRefusal) as caught:
        asyncio.run(files_api.authorize(_ctx(Reviews(allowed=False)), Identity("bob"), "lab", verb))
    assert caught.value.code == 403
    assert caught.value.message == (
        f'user "bob" cannot {verb} resource "files" in API group "files.batchx.io" in the '
        f"namespace \"lab\": it needs the batchx-{role} role of environment 'lab'"
    )


def test_listings_carry_the_provenance_the_client_reads_back(tmp_path: Path) -> None:
    """A job's output answers with its provenance record; `RemoteFiles` (what `bx ls -l` and
    `bx provenance` read on a cluster) gets the same Entry as the embedded store."""
    record = {"job": {"name": "count", "uid": "u-1"}, "inputs": [{"path": "bx://in.txt"}]}
    with open_store(f"file://{tmp_path}") as store:
        files = store.env("lab")
        files.put_bytes("in.txt", b"words")
        files.put_bytes("jobs/count/output/n.txt", b"1", job="count", provenance=record)
        ctx = Context(settings=Settings.load({}), kube=Reviews(True), store=store)  # type: ignore[arg-type]
        answer = asyncio.run(files_api.list_files(ctx, "lab", ""))
        by_path = {f["path"]: f for f in answer["files"]}
        assert by_path["jobs/count/output/n.txt"]["provenance"] == record
        assert "provenance" not in by_path["in.txt"]  # an upload: the chain ends there
        remote = RemoteFiles(Answers(answer), "lab")  # type: ignore[arg-type]
        assert remote.stat("jobs/count/output/n.txt") == files.stat("jobs/count/output/n.txt")
        assert remote.stat("in.txt") == files.stat("in.txt")


class Answers:
    """A Kube whose files API answers every call with `answer` (the client's boundary)."""

    def __init__(self, answer: dict[str, Any]) -> None:
        self.answer = answer

    def files(self, *_: Any, **__: Any) -> dict[str, Any]:
        return self.answer


class Batches:
    """A Kube whose files API plans every file as stored and commits it, counting the calls."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, int]] = []

    def files(self, method: str, verb: str, *_: Any, body: Any = None, **__: Any) -> Any:
        self.calls.append((body["action"], len(body["files"])))
        if body["action"] == "plan":
            return {"files": [{"path": f["path"], "action": "stored"} for f in body["files"]]}
        return {"files": [{"path": f["path"], "outcome": "created"} for f in body["files"]]}


def test_the_client_sends_batches_of_a_thousand_and_answers_in_order(tmp_path: Path) -> None:
    """2,500 files and a missing one: three plans and three commits (pipelined: a batch's
    commit may run while the next is planned), a report per file in the order given; the
    missing local file is answered in its place and never sent."""
    local = []
    for i in range(2500):
        (tmp_path / f"f{i}").write_bytes(f"file {i}".encode())
        local.append(LocalFile(f"many/f{i}", tmp_path / f"f{i}"))
    local.insert(1200, LocalFile("many/missing", tmp_path / "missing"))
    kube = Batches()
    results = RemoteFiles(kube, "lab").put_files(local)  # type: ignore[arg-type]
    sizes = [1000, 999, 501]  # the missing file leaves the second batch one short
    assert sorted(kube.calls) == sorted(
        [("plan", n) for n in sizes] + [("commit", n) for n in sizes]
    )
    assert isinstance(results[1200], OSError)
    reports = [r for r in results if isinstance(r, PutReport)]
    assert [r.entry.path for r in reports] == [f"many/f{i}" for i in range(2500)]
