"""bx:// path validation: the table of accepted and refused paths, and properties."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from batchx.domain.paths import (
    MAX_PATH_BYTES,
    MAX_SEGMENT_BYTES,
    BxPathError,
    format_bx_path,
    is_bx_path,
    join_relative,
    parse_bx_path,
    validate_bx_path,
    validate_relative_path,
)

VALID = [
    ("bx://a", "a"),
    ("bx://samples/a.fastq.gz", "samples/a.fastq.gz"),
    ("bx://jobs/job-1/output/x y.txt", "jobs/job-1/output/x y.txt"),
    ("bx://ünïcode/файл", "ünïcode/файл"),
    ("bx://a/.hidden/..x/...", "a/.hidden/..x/..."),
    ("bx://" + "a" * MAX_SEGMENT_BYTES, "a" * MAX_SEGMENT_BYTES),
]

INVALID = [
    ("", "must start with 'bx://'"),
    ("a/b", "must start with 'bx://'"),
    ("BX://a", "must start with 'bx://'"),
    ("s3://bucket/a", "must start with 'bx://'"),
    ("bx://", "empty"),
    ("bx:///etc/passwd", "absolute"),
    ("bx://a//b", "segment 1 is empty"),
    ("bx://a/", "trailing '/'"),
    ("bx://..", "segment 0 is '..'"),
    ("bx://a/../../b", "segment 1 is '..'"),
    ("bx://a/./b", "segment 1 is '.'"),
    ("bx://a\\..\\b", "backslash"),
    ("bx://a\nb", "control character U+000A"),
    ("bx://a\x00", "control character U+0000"),
    ("bx://a\x85", "control character U+0085"),
    ("bx://" + "a" * (MAX_SEGMENT_BYTES + 1), "segment 0 is 256 bytes"),
    ("bx://" + "/".join(["abcdefg"] * 130), f"the limit is {MAX_PATH_BYTES}"),
]


@pytest.mark.parametrize(("value", "relative"), VALID)
def test_valid_paths_return_the_relative_part(value: str, relative: str) -> None:
    assert parse_bx_path(value) == relative
    assert validate_bx_path(value) is None
    assert format_bx_path(relative) == value


@pytest.mark.parametrize(("value", "reason"), INVALID)
def test_invalid_paths_say_which_rule_broke(value: str, reason: str) -> None:
    with pytest.raises(BxPathError) as info:
        parse_bx_path(value)
    assert reason in info.value.reason
    assert value in str(info.value) or repr(value) in str(info.value)
    assert validate_bx_path(value) == info.value.reason


def test_folders_and_root_only_when_asked() -> None:
    assert parse_bx_path("bx://reads/", allow_dir=True) == "reads/"
    assert parse_bx_path("bx://", allow_root=True) == ""
    assert validate_bx_path("bx://reads//", allow_dir=True) is not None
    assert validate_bx_path("bx:///", allow_dir=True, allow_root=True) is not None


def test_non_string_is_refused_not_crashed() -> None:
    with pytest.raises(BxPathError, match="expected a string"):
        parse_bx_path(42)  # type: ignore[arg-type]
    assert is_bx_path(42) is False
    assert is_bx_path("bx://x") is True


def test_relative_helpers() -> None:
    assert validate_relative_path("a/b") == "a/b"
    assert join_relative("jobs/j1/output", "sub/file.txt") == "jobs/j1/output/sub/file.txt"
    with pytest.raises(BxPathError):
        join_relative("jobs/j1/output/", "x")
    with pytest.raises(BxPathError):
        join_relative("jobs", "..", "x")


_SEGMENT = st.text(
    alphabet=st.characters(blacklist_categories=["Cc", "Cs"], blacklist_characters="/\\"),
    min_size=1,
    max_size=20,
).filter(lambda s: s not in (".", ".."))


@given(st.lists(_SEGMENT, min_size=1, max_size=8))
def test_format_parse_round_trip(segments: list[str]) -> None:
    relative = "/".join(segments)
    assert parse_bx_path(format_bx_path(relative)) == relative


@given(st.text(max_size=60))
def test_any_string_is_accepted_or_refused_with_bx_path_error(value: str) -> None:
    reason = validate_bx_path("bx://" + value)
    if reason is None:
        rel = parse_bx_path("bx://" + value)
        assert ".." not in rel.split("/")
        assert not rel.startswith("/")
        assert "" not in rel.split("/")
