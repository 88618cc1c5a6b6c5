"""Kopf's last-handled configuration stays small whatever a Job's input holds."""

from __future__ import annotations

import json

import kopf

from batchx.diffbase import DigestedDiffBase


def _job(input_: dict[str, object]) -> kopf.Body:
    raw = {
        "apiVersion": "batchx.io/v1alpha1",
        "kind": "Job",
        "metadata": {"name": "big", "namespace": "lab"},
        "spec": {"image": "examples/napper", "input": input_, "timeout": 60},
    }
    return kopf.Body(raw)


def test_a_large_input_is_kept_as_its_digest_and_small_fields_as_they_are() -> None:
    storage = DigestedDiffBase(prefix="batchx.io", key="last-handled-configuration")
    big = storage.build(body=_job({"s": "x" * 300 * 1024}))
    assert len(json.dumps(big)) < 1024  # was over 300 KiB: more than an object's annotations hold
    assert big["spec"]["input"].startswith("sha256:")
    assert big["spec"]["image"] == "examples/napper"
    assert big["spec"]["timeout"] == 60
    other = storage.build(body=_job({"s": "y" * 300 * 1024}))
    assert other["spec"]["input"] != big["spec"]["input"]  # a change is still a change
    small = storage.build(body=_job({"seconds": 1}))
    assert small["spec"]["input"] == {"seconds": 1}


def test_the_finished_labels_are_no_change_to_kopf() -> None:
    storage = DigestedDiffBase(prefix="batchx.io", key="last-handled-configuration")
    plain = _job({"seconds": 1})
    before = storage.build(body=plain)
    raw = dict(plain)
    raw["metadata"] = {
        **plain["metadata"],
        "labels": {"batchx.io/finished": "SUCCEEDED", "batchx.io/cache-key": "ab" * 31},
    }
    assert storage.build(body=kopf.Body(raw)) == before  # no diff: Kopf writes nothing
    raw["metadata"]["labels"] = {**raw["metadata"]["labels"], "team": "x"}
    assert storage.build(body=kopf.Body(raw))["metadata"] == {"labels": {"team": "x"}}
