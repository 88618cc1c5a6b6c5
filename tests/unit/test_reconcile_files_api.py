"""The files API's checks that need no server: bad requests name the field, and a refusal names
the permission and the role that grants it (the SubjectAccessReview is faked at our boundary)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from batchx.reconcile import files_api
from batchx.reconcile.context import Context
from batchx.reconcile.files_api import ApiRefusal, Identity
from batchx.settings import Settings

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
