"""Image planning: validity, duplicates (the accepted one, else the oldest, wins), `latest`."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from batchx.planning.image import ImageObject, ImagePlan, plan_images
from batchx.planning.labels import base_name_label
from batchx.planning.manifest import check_manifest
from tests.builders import ImageBuilder, make_image

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def plan(
    *builders: ImageBuilder, allow_tags: bool = False, env_exists: bool = True
) -> dict[str, ImagePlan]:
    images = [ImageObject.from_body(b.build()) for b in builders]
    plans = plan_images(
        images, check=check_manifest, allow_tags=allow_tags, env_exists=env_exists, now=NOW
    )
    return {p.image.name: p for p in plans}


def ready(p: ImagePlan) -> tuple[str, str]:
    assert p.status is not None
    condition = p.status.conditions[0]
    return condition.status.value, condition.reason


def latest(plans: dict[str, ImagePlan]) -> list[str]:
    return sorted(n for n, p in plans.items() if (p.labels or {}).get("batchx.io/latest") == "true")


def test_valid_image_gets_coordinates_and_labels() -> None:
    p = plan(make_image("hello").public())["hello"]
    assert ready(p) == ("True", "Accepted")
    assert p.status is not None
    assert (p.status.coordinates, p.status.base_name) == (
        "lab@tutorial/hello:1.0.0",
        "lab@tutorial/hello",
    )
    assert p.labels == {
        "batchx.io/base-name": "tutorial.hello",
        "batchx.io/major": "1",
        "batchx.io/version": "1.0.0",
        "batchx.io/latest": "true",
        "batchx.io/public": "true",
    }
    assert [(e.type, e.reason) for e in p.events] == [("Normal", "Accepted"), ("Normal", "Latest")]


@pytest.mark.parametrize(
    ("builder", "reason", "in_message"),
    [
        (make_image("x").without("name"), "InvalidManifest", "$.spec.manifest.name"),
        (make_image("x").version("1.0"), "InvalidManifest", "1.0"),
        (make_image("x").tagged(), "ImageNotPinned", "$.spec.image"),
    ],
)
def test_refused_images(builder: ImageBuilder, reason: str, in_message: str) -> None:
    p = plan(builder)["x"]
    assert ready(p) == ("False", reason)
    assert p.status is not None
    assert in_message in p.status.conditions[0].message
    assert p.status.coordinates is None
    assert next((e.type, e.reason) for e in p.events) == ("Warning", reason)
    assert "batchx.io/latest" not in (p.labels or {})


def test_tags_allowed_by_setting() -> None:
    assert ready(plan(make_image("x").tagged(), allow_tags=True)["x"]) == ("True", "Accepted")


def test_image_outside_an_environment() -> None:
    assert ready(plan(make_image("x"), env_exists=False)["x"]) == ("False", "EnvironmentNotFound")


def test_duplicate_coordinates_older_wins_whatever_the_order() -> None:
    old = make_image("zz-old").created("2026-01-01T00:00:00Z")
    new = make_image("aa-new").created("2026-01-02T00:00:00Z")
    for builders in ((old, new), (new, old)):
        plans = plan(*builders)
        assert ready(plans["zz-old"]) == ("True", "Accepted")
        assert ready(plans["aa-new"]) == ("False", "DuplicateCoordinates")
        assert latest(plans) == ["zz-old"]
        status = plans["aa-new"].status
        assert status is not None
        assert "zz-old" in status.conditions[0].message


def test_duplicate_tie_broken_by_name() -> None:
    plans = plan(make_image("b"), make_image("a"))
    assert ready(plans["a"]) == ("True", "Accepted")
    assert ready(plans["b"]) == ("False", "DuplicateCoordinates")


def test_an_accepted_image_keeps_its_coordinates_against_a_duplicate_of_the_same_second() -> None:
    """creationTimestamp has one-second resolution: the newcomer's name must not win."""
    second = "2026-01-01T00:00:00Z"
    owner = make_image("zz-owner").created(second)
    accepted = plan(owner)["zz-owner"]
    assert accepted.status is not None
    owner.status(**accepted.status.to_json())
    newcomer = make_image("aa-newcomer").created(second)
    for builders in ((owner, newcomer), (newcomer, owner)):
        plans = plan(*builders)
        assert plans["zz-owner"].status is None  # unchanged: still Ready with its coordinates
        assert ready(plans["aa-newcomer"]) == ("False", "DuplicateCoordinates")
        status = plans["aa-newcomer"].status
        assert status is not None
        assert "zz-owner" in status.conditions[0].message
        assert status.coordinates is None


@pytest.mark.parametrize(
    ("versions", "expected_latest"),
    [
        (["1.0.0"], ["1.0.0"]),
        (["1.0.0", "1.2.0", "1.10.0"], ["1.10.0"]),  # semver order, not string order
        (["0.0.1", "0.1.1", "1.0.1", "1.0.0", "2.0.0"], ["0.1.1", "1.0.1", "2.0.0"]),
    ],
)
def test_latest_per_major(versions: list[str], expected_latest: list[str]) -> None:
    builders = [make_image(f"v{v.replace('.', '-')}").version(v) for v in versions]
    plans = plan(*builders)
    assert latest(plans) == sorted(f"v{v.replace('.', '-')}" for v in expected_latest)


def test_latest_is_per_base_name() -> None:
    plans = plan(make_image("a").named("x/a"), make_image("b").named("x/b"))
    assert latest(plans) == ["a", "b"]
    assert plans["a"].labels is not None
    assert plans["a"].labels["batchx.io/base-name"] == "x.a"


def test_latest_moves_after_deletion_and_stale_labels_are_removed() -> None:
    old = make_image("v1-0-0").version("1.0.0").label("batchx.io/latest", "true")
    plans = plan(old, make_image("v1-1-0").version("1.1.0"))
    assert plans["v1-0-0"].labels == {
        "batchx.io/latest": None,
        "batchx.io/base-name": "tutorial.hello",
        "batchx.io/major": "1",
        "batchx.io/version": "1.0.0",
    }
    assert [e.reason for e in plans["v1-0-0"].events] == ["Accepted", "NotLatest"]
    # the newer one is deleted: the older one is latest again
    assert latest(plan(old)) == []
    assert plan(old)["v1-0-0"].labels is not None


def test_converged_image_plans_no_writes() -> None:
    first = plan(make_image("hello"))["hello"]
    builder = make_image("hello")
    for key, value in (first.labels or {}).items():
        assert value is not None
        builder.label(key, value)
    assert first.status is not None
    builder.status(**first.status.to_json())
    again = plan(builder)["hello"]
    assert (again.labels, again.status, again.events) == (None, None, ())


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("hello", "hello"),
        ("tutorial/hello-world", "tutorial.hello-world"),
        ("a/b/c_d", "a.b.c_d"),
    ],
)
def test_base_name_label_readable(name: str, label: str) -> None:
    assert base_name_label(name) == label


@pytest.mark.parametrize("name", ["a.b", "x" * 64, "a//b", "-a"])
def test_base_name_label_hashed_when_not_reversible(name: str) -> None:
    value = base_name_label(name)
    assert value.startswith("h..")
    assert len(value) <= 63
    assert base_name_label("a/b") != base_name_label("a.b")
