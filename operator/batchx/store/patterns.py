"""Path patterns for `bx cp`/`ls`/`rm`: `?` one character, `*` any run within a segment, `**` any
run across segments (`a/**/b` also matches `a/b`). Only these are special, so every other
character of a path matches itself."""

from __future__ import annotations

import re

WILDCARDS = "*?"


def has_wildcards(pattern: str) -> bool:
    return any(c in pattern for c in WILDCARDS)


def literal_prefix(pattern: str) -> str:
    """The longest leading part without wildcards, cut back to a whole folder (`a/b*` -> `a/`),
    so that listing can start there instead of at the root."""
    cut = min((pattern.index(c) for c in WILDCARDS if c in pattern), default=len(pattern))
    head = pattern[:cut]
    return head if cut == len(pattern) else head[: head.rfind("/") + 1]


def compile_pattern(pattern: str) -> re.Pattern[str]:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def single_level(pattern: str) -> bool:
    """True when matches can only sit directly in the literal prefix's folder (no `/` and no
    `**` after it): listing can then use a delimiter instead of descending."""
    rest = pattern[len(literal_prefix(pattern)) :]
    return "/" not in rest and "**" not in rest
