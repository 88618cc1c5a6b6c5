"""Small builders of API bodies for planner tests: `make_image().version("1.2.3").tagged()`."""

from __future__ import annotations

import copy
from typing import Any, Self

JSON = dict[str, Any]
DIGEST = "sha256:" + "ab" * 32
PINNED = f"registry.example/tools/hello@{DIGEST}"  # a digest-pinned container reference


def manifest(name: str = "tutorial/hello", version: str = "1.0.0", **extra: Any) -> JSON:
    return {
        "name": name,
        "version": version,
        "title": "Says hello",
        "author": "batchx",
        "changeLog": "first",
        "schema": {"input": {"type": "object"}, "output": {"type": "object"}},
        "runtime": {"minMem": 64},
        **extra,
    }


class _Builder:
    def __init__(self, body: JSON) -> None:
        self.body = body

    def build(self) -> JSON:
        return copy.deepcopy(self.body)

    def _meta(self) -> JSON:
        meta: JSON = self.body["metadata"]
        return meta

    def uid(self, uid: str) -> Self:
        self._meta()["uid"] = uid
        return self

    def generation(self, generation: int) -> Self:
        self._meta()["generation"] = generation
        return self

    def label(self, key: str, value: str) -> Self:
        self._meta().setdefault("labels", {})[key] = value
        return self

    def status(self, **status: Any) -> Self:
        self.body.setdefault("status", {}).update(status)
        return self


class EnvironmentBuilder(_Builder):
    def quota(self, **quota: Any) -> Self:
        self.body["spec"]["quota"] = quota
        return self

    def credits(self, credits: float) -> Self:
        self.body["spec"]["credits"] = credits
        return self

    def member(self, name: str, role: str, kind: str = "User") -> Self:
        self.body["spec"].setdefault("members", []).append(
            {"kind": kind, "name": name, "role": role}
        )
        return self


def make_environment(name: str = "lab") -> EnvironmentBuilder:
    return EnvironmentBuilder(
        {
            "apiVersion": "batchx.io/v1alpha1",
            "kind": "Environment",
            "metadata": {"name": name, "uid": f"uid-{name}", "generation": 1},
            "spec": {},
        }
    )


class ImageBuilder(_Builder):
    def version(self, version: str) -> Self:
        self.body["spec"]["manifest"]["version"] = version
        return self

    def named(self, manifest_name: str) -> Self:
        self.body["spec"]["manifest"]["name"] = manifest_name
        return self

    def created(self, timestamp: str) -> Self:
        self._meta()["creationTimestamp"] = timestamp
        return self

    def tagged(self, reference: str = "registry.example/tools/hello:1.0") -> Self:
        self.body["spec"]["image"] = reference
        return self

    def public(self) -> Self:
        self.body["spec"]["public"] = True
        return self

    def manifest(self, **fields: Any) -> Self:
        self.body["spec"]["manifest"].update(fields)
        return self

    def without(self, field: str) -> Self:
        del self.body["spec"]["manifest"][field]
        return self


def make_image(
    name: str = "hello-1-0-0", namespace: str = "lab", version: str = "1.0.0"
) -> ImageBuilder:
    return ImageBuilder(
        {
            "apiVersion": "batchx.io/v1alpha1",
            "kind": "Image",
            "metadata": {
                "name": name,
                "namespace": namespace,
                "uid": f"uid-{name}",
                "generation": 1,
                "creationTimestamp": "2026-01-01T00:00:00Z",
            },
            "spec": {
                "image": PINNED,
                "manifest": manifest(version=version),
            },
        }
    )


class JobBuilder(_Builder):
    def state(self, state: str) -> Self:
        self.body.setdefault("status", {})["state"] = state
        return self

    def reserved(self, amount: float) -> Self:
        self.body.setdefault("status", {}).setdefault("credits", {})["reserved"] = amount
        return self

    def charged(self, amount: float) -> Self:
        self.body.setdefault("status", {}).setdefault("credits", {})["charged"] = amount
        return self


def make_job(name: str = "job-1", namespace: str = "lab") -> JobBuilder:
    return JobBuilder(
        {
            "apiVersion": "batchx.io/v1alpha1",
            "kind": "Job",
            "metadata": {"name": name, "namespace": namespace, "uid": f"uid-{name}"},
            "spec": {"image": "tutorial/hello:1.0.0", "input": {}},
        }
    )


def make_record(job_uid: str, amount: str, namespace: str = "lab") -> JSON:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": f"bx-charge-{job_uid}", "namespace": namespace},
        "data": {"job": job_uid.removeprefix("uid-"), "jobUid": job_uid, "charged": amount},
    }
