"""Coordinates, base names and job image references: tables and round-trip properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from semver import Version

from batchx.domain.coordinates import (
    BaseName,
    Coordinates,
    CoordinatesError,
    default_listing,
    parse_base_name,
    parse_coordinates,
    parse_image_ref,
    resolve_ref,
)
from batchx.domain.versions import SelectorKind

VALID_COORDINATES = [
    ("batchx@tutorial/hello-world:1.0.1", "batchx", "tutorial/hello-world", "1.0.1"),
    ("my-org@foo:0.0.1", "my-org", "foo", "0.0.1"),
    ("a@b:0.0.0", "a", "b", "0.0.0"),
    ("lab1@Tools/BWA_mem.2:10.20.30", "lab1", "Tools/BWA_mem.2", "10.20.30"),
    ("e@" + "n" * 60 + ":1.2.3", "e", "n" * 60, "1.2.3"),
    ("e@x:123456.1234.12", "e", "x", "123456.1234.12"),
]

INVALID_COORDINATES = [
    ("", "empty"),
    ("tutorial/hello-world:1.0.1", "environment is missing"),
    ("batchx@tutorial/hello-world", "version is missing"),
    ("@foo:1.0.0", "environment (before '@') is empty"),
    ("Batchx@foo:1.0.0", "namespace name"),
    ("-env@foo:1.0.0", "namespace name"),
    ("e" * 64 + "@foo:1.0.0", "the limit is 63"),
    ("a@b@c:1.0.0", "more than one '@'"),
    ("env@:1.0.0", "image name is empty"),
    ("env@/foo:1.0.0", "empty segment 0"),
    ("env@foo/:1.0.0", "empty segment 1"),
    ("env@foo//bar:1.0.0", "empty segment 1"),
    ("env@fo o:1.0.0", "whitespace"),
    (" env@foo:1.0.0", "whitespace"),
    ("env@-foo:1.0.0", "segment '-foo'"),
    ("env@foo$:1.0.0", "segment 'foo$'"),
    ("env@" + "n" * 61 + ":1.0.0", "the limit is 60"),
    ("env@foo:", "version after ':' is empty"),
    ("env@foo:1.0", "exactly three numbers"),
    ("env@foo:1.0.0.0", "exactly three numbers"),
    ("env@foo:v1.0.0", "not a non-negative integer"),
    ("env@foo:01.0.0", "leading zero"),
    ("env@foo:1.0.0-rc.1", "pre-release or build suffix"),
    ("env@foo:1.0.0+build", "pre-release or build suffix"),
    ("env@foo:1.0.0:2", "more than one ':'"),
    ("env@foo:1234567.12345.12", "the limit is 15"),
    ("env@foo:^1.2", "exactly three numbers"),
]


@pytest.mark.parametrize(("text", "env", "name", "version"), VALID_COORDINATES)
def test_valid_coordinates_parse_and_format_identically(
    text: str, env: str, name: str, version: str
) -> None:
    coords = parse_coordinates(text)
    assert (coords.environment, coords.name, str(coords.version)) == (env, name, version)
    assert str(coords) == text
    assert str(coords.base_name) == f"{env}@{name}"
    assert Coordinates.of(env, name, version) == coords


@pytest.mark.parametrize(("text", "reason"), INVALID_COORDINATES)
def test_invalid_coordinates_get_a_precise_reason(text: str, reason: str) -> None:
    with pytest.raises(CoordinatesError) as info:
        parse_coordinates(text)
    assert reason in info.value.reason
    assert repr(text) in str(info.value)


def test_base_names() -> None:
    assert parse_base_name("batchx@tutorial/word-count") == BaseName(
        "batchx", "tutorial/word-count"
    )
    with pytest.raises(CoordinatesError, match="has no version"):
        parse_base_name("batchx@tutorial/word-count:1.0.1")
    with pytest.raises(CoordinatesError, match="environment is missing"):
        parse_base_name("tutorial/word-count")


REFS = [
    ("foo", None, "foo", SelectorKind.LATEST, "0.0.0", None),
    ("foo:latest", None, "foo", SelectorKind.LATEST, "0.0.0", None),
    ("foo:1.2.3", None, "foo", SelectorKind.EXACT, "1.2.3", "1.2.4"),
    ("lab@foo:^1.2", "lab", "foo", SelectorKind.CARET, "1.2.0", "2.0.0"),
    ("foo:^1.2.3", None, "foo", SelectorKind.CARET, "1.2.3", "2.0.0"),
    ("foo:^0.1.2", None, "foo", SelectorKind.CARET, "0.1.2", "0.2.0"),
    ("foo:^0.0.3", None, "foo", SelectorKind.CARET, "0.0.3", "0.0.4"),
    ("foo:^0", None, "foo", SelectorKind.CARET, "0.0.0", "1.0.0"),
    ("foo:^0.0", None, "foo", SelectorKind.CARET, "0.0.0", "0.1.0"),
    ("foo:~1.2.3", None, "foo", SelectorKind.TILDE, "1.2.3", "1.3.0"),
    ("foo:~1.2", None, "foo", SelectorKind.TILDE, "1.2.0", "1.3.0"),
    ("foo:~1", None, "foo", SelectorKind.TILDE, "1.0.0", "2.0.0"),
    ("foo:1.x", None, "foo", SelectorKind.WILDCARD, "1.0.0", "2.0.0"),
    ("foo:1.x.x", None, "foo", SelectorKind.WILDCARD, "1.0.0", "2.0.0"),
    ("foo:1.2.x", None, "foo", SelectorKind.WILDCARD, "1.2.0", "1.3.0"),
    ("foo:1.*", None, "foo", SelectorKind.WILDCARD, "1.0.0", "2.0.0"),
    ("foo:x", None, "foo", SelectorKind.WILDCARD, "0.0.0", None),
]


@pytest.mark.parametrize(("text", "env", "name", "kind", "lower", "upper"), REFS)
def test_image_references(  # noqa: PLR0917 (one row of the table)
    text: str, env: str | None, name: str, kind: SelectorKind, lower: str, upper: str | None
) -> None:
    ref = parse_image_ref(text)
    assert (ref.environment, ref.name, ref.selector.kind) == (env, name, kind)
    assert str(ref.selector.lower) == lower
    assert (None if ref.selector.upper is None else str(ref.selector.upper)) == upper


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("foo:1.2", "incomplete: write the full MAJOR.MINOR.PATCH, or a range such as ^1.2"),
        ("foo:>=1.0.0", "not supported"),
        ("foo:^1.x", "plain numbers"),
        ("foo:~", "plain numbers"),
        ("docker.io/library/ubuntu:22.04", "looks like a container image reference"),
        ("reg.io/bwa@sha256:abcd", "looks like a container image reference"),
        ("Lab@foo", "namespace name"),
    ],
)
def test_bad_image_references(text: str, reason: str) -> None:
    with pytest.raises(CoordinatesError) as info:
        parse_image_ref(text)
    assert reason in info.value.reason


def test_reference_qualification_and_format() -> None:
    ref = parse_image_ref("tools/bwa:^1.2")
    assert str(ref) == "tools/bwa:^1.2"
    assert str(ref.qualified("lab")) == "lab@tools/bwa:^1.2"
    assert str(parse_image_ref("x@tools/bwa").qualified("lab")) == "x@tools/bwa"


def _c(text: str) -> Coordinates:
    return parse_coordinates(text)


SEED_EXAMPLE = [
    _c(t)
    for t in [
        "my-org@foo:0.1.1",
        "my-org@foo:0.1.0",
        "my-org@foo:0.0.2",
        "my-org@foo:0.0.1",
        "my-org@bar:1.0.1",
        "my-org@bar:1.0.0",
        "my-org@bar:0.0.1",
        "other@foo:9.0.0",
    ]
]


def test_default_listing_keeps_latest_of_each_major_per_base_name() -> None:
    assert [str(c) for c in default_listing(SEED_EXAMPLE)] == [
        "my-org@bar:1.0.1",
        "my-org@bar:0.0.1",
        "my-org@foo:0.1.1",
        "other@foo:9.0.0",
    ]


@pytest.mark.parametrize(
    ("ref", "expected"),
    [
        ("foo", "my-org@foo:0.1.1"),
        ("foo:^0.0.1", "my-org@foo:0.0.1"),
        ("foo:^0.0", "my-org@foo:0.0.2"),
        ("foo:^0.1.0", "my-org@foo:0.1.1"),
        ("foo:~0.0.1", "my-org@foo:0.0.2"),
        ("foo:0.0.1", "my-org@foo:0.0.1"),
        ("bar:^0.0.1", "my-org@bar:0.0.1"),
        ("bar:1.x", "my-org@bar:1.0.1"),
        ("bar:^2", None),
        ("foo:0.0.3", None),
        ("baz", None),
        ("other@foo", "other@foo:9.0.0"),
    ],
)
def test_resolution_against_the_seed_example(ref: str, expected: str | None) -> None:
    found = resolve_ref(parse_image_ref(ref), SEED_EXAMPLE, "my-org")
    assert (None if found is None else str(found)) == expected


_ENV = st.from_regex(r"\A[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?\Z")
_SEGMENT = st.from_regex(r"\A[A-Za-z0-9]([A-Za-z0-9._-]{0,8}[A-Za-z0-9])?\Z")
_NAME = st.lists(_SEGMENT, min_size=1, max_size=4).map("/".join).filter(lambda n: len(n) <= 60)
_VERSION = st.tuples(*[st.integers(0, 9999)] * 3).map(lambda t: Version(*t))


@given(_ENV, _NAME, _VERSION)
def test_format_parse_round_trip(env: str, name: str, version: Version) -> None:
    coords = Coordinates(env, name, version)
    assert parse_coordinates(str(coords)) == coords
    assert parse_base_name(str(coords.base_name)) == coords.base_name


@given(st.text(max_size=80))
def test_any_string_parses_or_raises_coordinates_error(text: str) -> None:
    for parse in (parse_coordinates, parse_image_ref, parse_base_name):
        outcome: object
        try:
            outcome = parse(text)
        except CoordinatesError as err:
            outcome = err
        if isinstance(outcome, CoordinatesError):
            assert outcome.reason
        elif parse is not parse_image_ref:
            assert str(outcome) == text
