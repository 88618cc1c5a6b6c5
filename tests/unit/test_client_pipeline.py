"""`batchx.client` inside a pipeline: its children name it, and an identity that may not read
Images leaves the check to the operator. The Kube stub is our own boundary."""

from __future__ import annotations

from typing import Any

import pytest

from batchx.client import Client
from batchx.client.errors import Forbidden

JSON = dict[str, Any]


class Kube:
    """A pipeline's view of the API: Jobs yes, Images forbidden."""

    def __init__(self, *, in_cluster: bool) -> None:
        self.namespace = "lab"
        self.in_cluster = in_cluster
        self.created: list[JSON] = []

    def list(self, plural: str, namespace: str | None, selector: str | None = None) -> JSON:
        if plural == "images":
            raise Forbidden("list", "images.batchx.io", namespace, "no")
        return {"items": []}

    def get(self, plural: str, namespace: str, name: str) -> JSON:
        assert (plural, name) == ("jobs", "count-all")
        return {"metadata": {"name": name, "uid": "uid-p"}}

    def create(self, plural: str, namespace: str, body: JSON) -> JSON:
        self.created.append(body)
        return body

    def close(self) -> None:
        pass


def test_in_a_pipeline_pod_children_carry_the_parent_label_and_owner(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BX_JOB", "count-all")
    kube = Kube(in_cluster=True)
    with Client(kube=kube) as bx:  # type: ignore[arg-type]
        assert (bx.env, bx.parent) == ("lab", "count-all")
        bx.submit("examples/wordcount", {"text": "bx://jobs/a/output/counts.txt"}, name="c1")
    (body,) = kube.created
    assert body["metadata"]["labels"] == {"batchx.io/parent": "count-all"}
    assert body["metadata"]["ownerReferences"] == [
        {"apiVersion": "batchx.io/v1alpha1", "kind": "Job", "name": "count-all", "uid": "uid-p"}
    ]
    assert body["spec"]["input"] == {"text": "bx://jobs/a/output/counts.txt"}  # as it is


def test_outside_a_pod_jobs_have_no_parent(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BX_JOB", "count-all")  # e.g. a user's shell that has it by accident
    kube = Kube(in_cluster=False)
    with Client(kube=kube) as bx:  # type: ignore[arg-type]
        assert bx.parent is None
        with pytest.raises(Forbidden):  # a user who may not list Images is told so
            bx.submit("examples/wordcount", {}, name="c1")
