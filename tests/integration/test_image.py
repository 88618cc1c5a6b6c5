"""Images on the real cluster: coordinates, duplicates, immutability, invalid manifests, tags,
the `latest` label across versions and deletions, and the base-name selector."""

from __future__ import annotations

from typing import Any

import pytest
from kopf.testing import KopfRunner
from kubernetes.client.rest import ApiException

from tests.builders import PINNED, manifest
from tests.fixtures_operator import StartOperator
from tests.helpers import eventually
from tests.integration.bx import Bx, condition

pytestmark = pytest.mark.cluster


def spec(version: str = "1.0.0", name: str = "tutorial/hello", **extra: Any) -> dict[str, Any]:
    return {"image": PINNED, "manifest": manifest(name=name, version=version), **extra}


@pytest.fixture
def env(bx: Bx) -> str:
    name = bx.create_environment()
    bx.wait_ready(name)
    return name


def latest_names(bx: Bx, env: str) -> list[str]:
    return sorted(i["metadata"]["name"] for i in bx.images(env, "batchx.io/latest=true"))


def test_valid_image_gets_coordinates_labels_and_event(
    operator: KopfRunner, bx: Bx, env: str
) -> None:
    bx.create_image(env, "hello-1-0-0", spec(public=True))
    image = bx.wait_image(env, "hello-1-0-0", "True", "Accepted")
    assert image["status"]["coordinates"] == f"{env}@tutorial/hello:1.0.0"
    assert image["status"]["baseName"] == f"{env}@tutorial/hello"
    assert image["status"]["observedGeneration"] == 1
    eventually(
        lambda: (
            bx.image(env, "hello-1-0-0")["metadata"].get("labels", {}).get("batchx.io/latest")
            == "true"
        ),
        timeout=30,
        what="latest label",
    )
    labels = bx.image(env, "hello-1-0-0")["metadata"]["labels"]
    assert labels["batchx.io/base-name"] == "tutorial.hello"
    assert labels["batchx.io/public"] == "true"
    bx.wait_event(env, "hello-1-0-0", "Accepted", "Normal")


def test_duplicate_coordinates_refused_until_the_owner_goes(
    operator: KopfRunner, bx: Bx, env: str
) -> None:
    bx.create_image(env, "first", spec())
    bx.wait_image(env, "first", "True", "Accepted")
    bx.create_image(env, "second", spec())
    dup = bx.wait_image(env, "second", "False", "DuplicateCoordinates")
    assert "first" in condition(dup, "Ready")["message"]  # type: ignore[index]
    assert "coordinates" not in dup["status"]
    bx.wait_event(env, "second", "DuplicateCoordinates", "Warning")
    assert latest_names(bx, env) == ["first"]

    bx.delete_image(env, "first")  # level-triggered: the survivor takes the coordinates over
    bx.wait_image(env, "second", "True", "Accepted")
    eventually(lambda: latest_names(bx, env) == ["second"], timeout=30, what="latest moved")


def test_spec_is_immutable(operator: KopfRunner, bx: Bx, env: str) -> None:
    bx.create_image(env, "hello", spec())
    with pytest.raises(ApiException) as refused:
        bx.custom.patch_namespaced_custom_object(
            "batchx.io", "v1alpha1", env, "images", "hello", {"spec": {"public": True}}
        )
    assert refused.value.status == 422
    assert "immutable" in refused.value.body


def test_invalid_manifest_reports_json_path(operator: KopfRunner, bx: Bx, env: str) -> None:
    bad = spec()
    bad["manifest"]["errorCodes"] = {"oops": "not an integer key"}
    bx.create_image(env, "bad", bad)
    image = bx.wait_image(env, "bad", "False", "InvalidManifest")
    message = condition(image, "Ready")["message"]  # type: ignore[index]
    assert "$.spec.manifest.errorCodes" in message
    bx.wait_event(env, "bad", "InvalidManifest", "Warning")
    assert (
        "labels" not in image["metadata"] or "batchx.io/latest" not in image["metadata"]["labels"]
    )


def test_malformed_manifest_refused_at_apply(operator: KopfRunner, bx: Bx, env: str) -> None:
    with pytest.raises(ApiException) as refused:
        bx.create_image(env, "bad-version", spec(version="1.0"))
    assert refused.value.status == 422
    assert "manifest.version" in refused.value.body


def test_tags_refused_unless_allowed(start_operator: StartOperator, bx: Bx) -> None:
    tagged = {**spec(), "image": "registry.example/tools/hello:1.0"}
    with start_operator():
        env = bx.create_environment()
        bx.wait_ready(env)
        bx.create_image(env, "tagged", tagged)
        image = bx.wait_image(env, "tagged", "False", "ImageNotPinned")
        assert "$.spec.image" in condition(image, "Ready")["message"]  # type: ignore[index]
    with start_operator(BATCHX_ALLOW_TAGS="true"):
        bx.wait_image(env, "tagged", "True", "Accepted")


def test_image_outside_an_environment(operator: KopfRunner, bx: Bx, namespace: str) -> None:
    bx.create_image(namespace, "stray", spec())
    bx.wait_image(namespace, "stray", "False", "EnvironmentNotFound")
    # an Environment of that name in NamespaceConflict does not make the namespace its own
    bx.create_environment(namespace)
    bx.wait_ready(namespace, status="False", reason="NamespaceConflict")
    image = bx.wait_image(namespace, "stray", "False", "EnvironmentNotFound")
    assert "coordinates" not in image["status"]


def test_latest_per_major_follows_creates_and_deletes(
    operator: KopfRunner, bx: Bx, env: str
) -> None:
    for version in ("1.0.0", "1.10.0", "1.2.0", "2.0.0"):
        bx.create_image(env, "v" + version.replace(".", "-"), spec(version))
    bx.create_image(env, "other", spec("0.1.0", name="tutorial/other"))
    eventually(
        lambda: latest_names(bx, env) == ["other", "v1-10-0", "v2-0-0"],
        timeout=60,
        what="latest of each major",
    )

    bx.delete_image(env, "v1-10-0")
    eventually(
        lambda: latest_names(bx, env) == ["other", "v1-2-0", "v2-0-0"],
        timeout=60,
        what="latest after deleting the newest 1.x",
    )

    # one documented selector deletes every version of a base name
    bx.custom.delete_collection_namespaced_custom_object(
        "batchx.io", "v1alpha1", env, "images", label_selector="batchx.io/base-name=tutorial.hello"
    )
    eventually(
        lambda: [i["metadata"]["name"] for i in bx.images(env)] == ["other"],
        timeout=60,
        what="base name deleted",
    )
    assert latest_names(bx, env) == ["other"]
