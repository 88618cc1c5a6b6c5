"""The generated CRDs on a real API server: they install, and bad objects are refused at apply.

Everything the CRD schema and its CEL rules promise is checked here against the API server
itself (not a re-implementation): immutable Image specs, Job specs immutable except `cancel`,
`cancel` only false -> true, limits on numbers and strings, quantity patterns, members unique.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.rest import ApiException

pytestmark = pytest.mark.cluster

GROUP, VERSION = "batchx.io", "v1alpha1"
DIGEST = "sha256:" + "0" * 64
MANIFEST: dict[str, Any] = {
    "name": "tools/echo",
    "version": "1.0.0",
    "title": "Echo",
    "author": "tests",
    "changeLog": "first",
    "schema": {
        "input": {
            "type": "object",
            "properties": {"f": {"type": "string", "format": "file", "required": True}},
        },
        "output": {"type": "object"},
    },
    "runtime": {"minMem": 64},
    "errorCodes": {"3": "bad input"},
}


@pytest.fixture
def objects(kube_api: client.ApiClient, batchx_crds: list[str]) -> client.CustomObjectsApi:
    """The API with the generated CRDs installed (the session's `batchx_crds`)."""
    return client.CustomObjectsApi(kube_api)


@pytest.fixture
def environment_name(objects: client.CustomObjectsApi) -> Iterator[str]:
    name = f"t-env-{uuid.uuid4().hex[:8]}"
    yield name
    try:
        objects.delete_cluster_custom_object(GROUP, VERSION, "environments", name)
    except ApiException as err:
        if err.status != 404:
            raise


def _refused(call: Callable[[], Any], *fragments: str) -> str:
    with pytest.raises(ApiException) as info:
        call()
    assert info.value.status == 422, info.value.body
    body = str(info.value.body)
    for fragment in fragments:
        assert fragment in body, body
    return body


def _job(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"image": "tools/echo:^1.0", "input": {"f": "bx://in.txt"}, **spec},
    }


def _image(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Image",
        "metadata": {"name": name},
        "spec": {"image": f"registry.local/echo@{DIGEST}", "manifest": MANIFEST, **spec},
    }


def _patch_job(objects: client.CustomObjectsApi, ns: str, name: str, spec: dict[str, Any]) -> Any:
    return objects.patch_namespaced_custom_object(GROUP, VERSION, ns, "jobs", name, {"spec": spec})


def test_job_cancel_only_false_to_true(objects: client.CustomObjectsApi, namespace: str) -> None:
    created = objects.create_namespaced_custom_object(GROUP, VERSION, namespace, "jobs", _job("j1"))
    assert created["spec"]["cancel"] is False
    assert created["spec"]["cache"] is True
    patched = _patch_job(objects, namespace, "j1", {"cancel": True})
    assert patched["spec"]["cancel"] is True
    _refused(
        lambda: _patch_job(objects, namespace, "j1", {"cancel": False}),
        "spec.cancel may only change",
    )


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"image": "tools/echo:2.0.0"}, "spec.image"),
        ({"input": {"f": "bx://other.txt"}}, "spec.input"),
        ({"vcpus": 2}, "spec.vcpus"),
        ({"memory": 128}, "spec.memory"),
        ({"cache": False}, "spec.cache"),
        ({"timeout": 60}, "spec.timeout"),
    ],
)
def test_job_spec_is_immutable_except_cancel(
    objects: client.CustomObjectsApi, namespace: str, change: dict[str, Any], field: str
) -> None:
    objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "jobs", _job("j1", memory=64)
    )
    _refused(lambda: _patch_job(objects, namespace, "j1", change), f"{field} is immutable")


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"memory": -1}, "spec.memory"),
        ({"vcpus": 0}, "spec.vcpus"),
        ({"gpus": -1}, "spec.gpus"),
        ({"gpuType": "not a label"}, "spec.gpuType"),
        ({"timeout": 0}, "spec.timeout"),
        ({"image": ""}, "spec.image"),
        ({"image": "x" * 161}, "spec.image"),
    ],
)
def test_bad_job_specs_are_refused_at_apply(
    objects: client.CustomObjectsApi, namespace: str, spec: dict[str, Any], fragment: str
) -> None:
    _refused(
        lambda: objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "jobs", _job("bad", **spec)
        ),
        fragment,
    )


def test_image_spec_is_immutable(objects: client.CustomObjectsApi, namespace: str) -> None:
    objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "images", _image("echo-1-0-0")
    )

    def patch(spec: dict[str, Any]) -> Any:
        return objects.patch_namespaced_custom_object(
            GROUP, VERSION, namespace, "images", "echo-1-0-0", {"spec": spec}
        )

    _refused(lambda: patch({"public": True}), "spec is immutable")
    _refused(lambda: patch({"manifest": {"title": "changed"}}), "spec is immutable")
    _refused(lambda: patch({"manifest": {"runtime": {"minMem": 65}}}), "spec is immutable")


@pytest.mark.parametrize(
    ("change", "fragment"),
    [
        ({"image": "Not An Image Ref"}, "spec.image"),
        ({"manifest": {**MANIFEST, "version": "1.0"}}, "spec.manifest.version"),
        ({"manifest": {**MANIFEST, "name": "n" * 61}}, "spec.manifest.name"),
        ({"manifest": {**MANIFEST, "runtime": {"minMem": "lots"}}}, "spec.manifest.runtime.minMem"),
        (
            {"manifest": {k: v for k, v in MANIFEST.items() if k != "schema"}},
            "spec.manifest.schema",
        ),
    ],
)
def test_bad_images_are_refused_at_apply(
    objects: client.CustomObjectsApi, namespace: str, change: dict[str, Any], fragment: str
) -> None:
    _refused(
        lambda: objects.create_namespaced_custom_object(
            GROUP, VERSION, namespace, "images", _image("bad", **change)
        ),
        fragment,
    )


def test_manifest_unknown_fields_are_kept_for_the_operator(
    objects: client.CustomObjectsApi, namespace: str
) -> None:
    # Pruning them would hide a mistake the operator reports with its JSON path.
    created = objects.create_namespaced_custom_object(
        GROUP, VERSION, namespace, "images", _image("extra", manifest={**MANIFEST, "sdk": "x"})
    )
    assert created["spec"]["manifest"]["sdk"] == "x"
    assert created["spec"]["manifest"]["schema"]["input"]["properties"]["f"]["required"] is True


def _environment(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Environment",
        "metadata": {"name": name},
        "spec": spec,
    }


def test_environment_defaults_and_quantities(
    objects: client.CustomObjectsApi, environment_name: str
) -> None:
    created = objects.create_cluster_custom_object(
        GROUP,
        VERSION,
        "environments",
        _environment(
            environment_name,
            quota={"cpu": "500m", "memory": "4Gi", "storage": 10**9, "gpus": 1, "jobs": 2},
            credits=10.5,
            members=[{"name": "alice", "role": "admin"}],
        ),
    )
    assert created["spec"]["members"] == [{"kind": "User", "name": "alice", "role": "admin"}]
    assert created["spec"]["quota"]["storage"] == 10**9


@pytest.mark.parametrize(
    ("spec", "fragment"),
    [
        ({"quota": {"cpu": "-1"}}, "spec.quota.cpu"),
        ({"quota": {"memory": "4 GB"}}, "spec.quota.memory"),
        ({"quota": {"jobs": -1}}, "spec.quota.jobs"),
        ({"credits": -5}, "spec.credits"),
        ({"members": [{"name": "a", "role": "owner"}]}, "spec.members[0].role"),
        (
            {"members": [{"name": "a", "role": "admin"}, {"name": "a", "role": "viewer"}]},
            "Duplicate",
        ),
    ],
)
def test_bad_environments_are_refused_at_apply(
    objects: client.CustomObjectsApi, environment_name: str, spec: dict[str, Any], fragment: str
) -> None:
    _refused(
        lambda: objects.create_cluster_custom_object(
            GROUP, VERSION, "environments", _environment(environment_name, **spec)
        ),
        fragment,
    )


def test_environment_name_must_be_a_namespace_name(objects: client.CustomObjectsApi) -> None:
    _refused(
        lambda: objects.create_cluster_custom_object(
            GROUP, VERSION, "environments", _environment(f"lab.{uuid.uuid4().hex[:6]}")
        ),
        "namespace name",
    )
