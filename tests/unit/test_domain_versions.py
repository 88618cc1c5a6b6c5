"""Version parsing and resolution: tables and the "max of the matching set" property."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from semver import Version

from batchx.domain.versions import (
    VersionError,
    VersionSelector,
    latest,
    latest_per_major,
    parse_selector,
    parse_version,
    resolve,
)


@pytest.mark.parametrize("text", ["0.0.0", "1.2.3", "10.20.30", "999999999.0.0"])
def test_strict_versions(text: str) -> None:
    assert str(parse_version(text)) == text


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("1", "exactly three numbers"),
        ("1.2", "exactly three numbers"),
        ("1.2.3.4", "exactly three numbers"),
        ("1.02.3", "minor '02' has a leading zero"),
        ("1.2.x", "patch 'x' is not a non-negative integer"),
        ("1.2.3-beta", "pre-release"),
        ("1.2.٣", "not a non-negative integer"),
        ("1234567890.1.1234", "the limit is 15"),
    ],
)
def test_bad_versions(text: str, reason: str) -> None:
    with pytest.raises(VersionError) as info:
        parse_version(text)
    assert reason in str(info.value)


AVAILABLE = ["0.0.1", "0.0.2", "0.1.0", "0.1.1", "1.0.0", "1.2.0", "1.2.5", "1.10.0", "2.0.0"]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("", "2.0.0"),
        ("1.2.0", "1.2.0"),
        ("1.2.1", None),
        ("^1.2", "1.10.0"),
        ("^1.2.6", "1.10.0"),
        ("^1.11", None),
        ("^0.1.0", "0.1.1"),
        ("^0.0.1", "0.0.1"),
        ("^0", "0.1.1"),
        ("~1.2.3", "1.2.5"),
        ("~1.2", "1.2.5"),
        ("~1", "1.10.0"),
        ("1.x", "1.10.0"),
        ("1.2.x", "1.2.5"),
        ("0.x", "0.1.1"),
        ("*", "2.0.0"),
        ("3.x", None),
    ],
)
def test_resolution(selector: str, expected: str | None) -> None:
    found = resolve(parse_selector(selector), AVAILABLE)
    assert (None if found is None else str(found)) == expected


def test_semantic_not_string_order() -> None:
    assert str(latest(["1.9.0", "1.10.0", "1.2.0"])) == "1.10.0"
    assert latest([]) is None


def test_latest_per_major() -> None:
    assert {k: str(v) for k, v in latest_per_major(AVAILABLE).items()} == {
        0: "0.1.1",
        1: "1.10.0",
        2: "2.0.0",
    }


_V = st.tuples(st.integers(0, 4), st.integers(0, 4), st.integers(0, 4)).map(lambda t: Version(*t))
_SELECTOR_TEXT = st.one_of(
    st.just(""),
    _V.map(str),
    _V.map(lambda v: f"^{v}"),
    _V.map(lambda v: f"~{v}"),
    _V.map(lambda v: f"^{v.major}.{v.minor}"),
    _V.map(lambda v: f"~{v.major}.{v.minor}"),
    _V.map(lambda v: f"{v.major}.x"),
    _V.map(lambda v: f"{v.major}.{v.minor}.x"),
)


@given(_SELECTOR_TEXT, st.lists(_V, max_size=20))
def test_resolution_picks_the_max_of_the_matching_set(text: str, versions: list[Version]) -> None:
    selector = parse_selector(text)
    matching = [v for v in versions if selector.matches(v)]
    assert resolve(selector, versions) == (max(matching) if matching else None)


@given(_V, _V)
def test_caret_matches_npm_semantics(base: Version, candidate: Version) -> None:
    selector = parse_selector(f"^{base}")
    if base.major > 0:
        expected = candidate >= base and candidate.major == base.major
    elif base.minor > 0:
        expected = candidate >= base and (candidate.major, candidate.minor) == (0, base.minor)
    else:
        expected = candidate == base
    assert selector.matches(candidate) == expected


@given(st.text(max_size=30))
def test_selector_parsing_never_crashes(text: str) -> None:
    outcome: object
    try:
        outcome = parse_selector(text)
    except VersionError as err:
        outcome = err
    if isinstance(outcome, VersionError):
        assert str(outcome)
    else:
        assert isinstance(outcome, VersionSelector)
        assert outcome.lower < (outcome.upper or Version(10**9, 0, 0))
