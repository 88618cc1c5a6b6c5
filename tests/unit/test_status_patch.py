"""`batchx.planning.status_patch`: a status write is judged by what the object would hold.

The merge is RFC 7386's (its appendix A examples); a write that changes nothing but a
condition's transition time is no change.
"""

from __future__ import annotations

from typing import Any

import pytest

from batchx.planning.status_patch import merged, status_changes

RFC_7386_EXAMPLES: list[tuple[Any, Any, Any]] = [
    ({"a": "b"}, {"a": "c"}, {"a": "c"}),
    ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
    ({"a": "b"}, {"a": None}, {}),
    ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
    ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
    ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
    ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
    ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
    (["a", "b"], ["c", "d"], ["c", "d"]),
    ({"a": "b"}, ["c"], ["c"]),
    ({"a": "foo"}, None, None),
    ({"a": "foo"}, "bar", "bar"),
    ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
    ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
    ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
]


@pytest.mark.parametrize(("target", "patch", "result"), RFC_7386_EXAMPLES)
def test_merged_is_rfc_7386(target: Any, patch: Any, result: Any) -> None:
    assert merged(target, patch) == result


def _condition(status: str, at: str) -> dict[str, Any]:
    return {"type": "Ready", "status": status, "reason": "Running", "lastTransitionTime": at}


STORED = {
    "state": "RUNNING",
    "admission": {"cacheKey": "k", "rate": 1.0},  # written once, left out of later plans
    "credits": {"reserved": 1.5, "charged": 0.0},
    "conditions": [_condition("False", "2026-12-03T06:00:00Z")],
}


def test_a_plan_without_the_fields_written_once_changes_nothing() -> None:
    plan = {k: v for k, v in STORED.items() if k != "admission"}
    assert status_changes(STORED, plan) == []
    assert merged(STORED, plan) == STORED  # the stored object keeps `admission`


def test_a_condition_stamped_again_is_no_change_but_its_new_status_is() -> None:
    stamped = {**STORED, "conditions": [_condition("False", "2026-12-03T07:00:00Z")]}
    assert status_changes(STORED, stamped) == []
    moved = {**STORED, "conditions": [_condition("True", "2026-12-03T07:00:00Z")]}
    assert status_changes(STORED, moved) == ["conditions"]


def test_the_fields_that_change_are_named() -> None:
    plan = {**STORED, "state": "UPLOADING_OUTPUT", "credits": {"charged": 0.5}}
    assert status_changes(STORED, plan) == ["credits", "state"]
    assert status_changes(None, {"state": "SUBMITTED"}) == ["state"]
    assert status_changes(STORED, {"exitCode": None, "admission": None}) == ["admission"]
