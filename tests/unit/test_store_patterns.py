"""Path patterns: `?`, `*` stay within a segment, `**` crosses them."""

from __future__ import annotations

import pytest

from batchx.store.local import _decode_segment, encode_key
from batchx.store.patterns import compile_pattern, literal_prefix, single_level


@pytest.mark.parametrize(
    ("pattern", "path", "matches"),
    [
        ("a/*.txt", "a/x.txt", True),
        ("a/*.txt", "a/b/x.txt", False),
        ("a/?.txt", "a/x.txt", True),
        ("a/?.txt", "a/xy.txt", False),
        ("a/**/x.bam", "a/x.bam", True),
        ("a/**/x.bam", "a/b/c/x.bam", True),
        ("a/**", "a/b/c", True),
        ("**", "anything/at/all", True),
        ("a/[x].txt", "a/[x].txt", True),
        ("a.b/*", "aXb/c", False),
    ],
)
def test_pattern_matching(pattern: str, path: str, matches: bool) -> None:
    assert bool(compile_pattern(pattern).match(path)) is matches


@pytest.mark.parametrize(
    ("pattern", "prefix", "single"),
    [
        ("a/b/*.txt", "a/b/", True),
        ("a/b*", "a/", True),
        ("a/**/c", "a/", False),
        ("*", "", True),
        ("a/*/c", "a/", False),
    ],
)
def test_literal_prefix_and_level(pattern: str, prefix: str, single: bool) -> None:
    assert literal_prefix(pattern) == prefix
    assert single_level(pattern) is single


@pytest.mark.parametrize("key", ["a", "a/b", "x@d/y", "x@/y@@", "@d", "a/@d@d/b@"])
def test_local_key_encoding_round_trips_and_never_collides(key: str) -> None:
    encoded = encode_key(key).split("/")
    decoded = [_decode_segment(s) for s in encoded]
    assert "/".join(s for s, _ in decoded) == key
    assert [d for _, d in decoded] == [True] * (len(encoded) - 1) + [False]
