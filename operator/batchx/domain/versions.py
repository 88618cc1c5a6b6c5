"""Versions: strict MAJOR.MINOR.PATCH, version selectors and resolution (with `semver`).

A Job names its image with a *selector*: nothing (latest), an exact version, a caret range
(`^1.2`), a tilde range (`~1.2.3`) or a wildcard (`1.x`, `1.2.x`). Resolution picks the highest
available version the selector matches. Caret ranges follow npm/Cargo practice on 0.x: the
left-most non-zero component is the one that may not change (`^0.1.2` = `>=0.1.2 <0.2.0`,
`^0.0.3` = `>=0.0.3 <0.0.4`), because on 0.x every minor bump may break.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from semver import Version

__all__ = [
    "MAX_VERSION_LENGTH",
    "SelectorKind",
    "VersionError",
    "VersionSelector",
    "latest",
    "latest_per_major",
    "parse_selector",
    "parse_version",
    "resolve",
]

MAX_VERSION_LENGTH = 15
# No leading zeros: coordinates are monomorphic, so `01.0.0` must not alias `1.0.0`.
_NUM = r"(?:0|[1-9][0-9]*)"
_VERSION_RE = re.compile(rf"^({_NUM})\.({_NUM})\.({_NUM})$")
_PARTIAL_RE = re.compile(rf"^({_NUM})(?:\.({_NUM}))?(?:\.({_NUM}))?$")
_WILDCARD_RE = re.compile(rf"^(?:[xX*]|({_NUM})\.[xX*](?:\.[xX*])?|({_NUM})\.({_NUM})\.[xX*])$")


class VersionError(ValueError):
    """A malformed version or version selector; the message says what is wrong."""


def parse_version(text: str) -> Version:
    """Parse a strict `MAJOR.MINOR.PATCH` (at most 15 characters, no leading zeros, no suffix)."""
    if not isinstance(text, str):
        raise VersionError(f"version must be a string, got {type(text).__name__}")
    if text == "":
        raise VersionError("version is empty; expected MAJOR.MINOR.PATCH such as 1.0.0")
    if len(text) > MAX_VERSION_LENGTH:
        raise VersionError(
            f"version {text!r} is {len(text)} characters long, the limit is {MAX_VERSION_LENGTH}"
        )
    match = _VERSION_RE.match(text)
    if match is None:
        raise VersionError(_explain_bad_version(text))
    major, minor, patch = (int(g) for g in match.groups())
    return Version(major, minor, patch)


def _explain_bad_version(text: str) -> str:
    if "-" in text or "+" in text:
        return (
            f"version {text!r} has a pre-release or build suffix; BatchX versions are "
            "plain MAJOR.MINOR.PATCH"
        )
    parts = text.split(".")
    if len(parts) != 3:
        return f"version {text!r} must have exactly three numbers, MAJOR.MINOR.PATCH (e.g. 1.0.0)"
    for label, part in zip(("major", "minor", "patch"), parts, strict=True):
        if not part.isdigit() or not part.isascii():
            return f"version {text!r}: {label} {part!r} is not a non-negative integer"
        if len(part) > 1 and part.startswith("0"):
            return f"version {text!r}: {label} {part!r} has a leading zero"
    return f"version {text!r} is not MAJOR.MINOR.PATCH"


class SelectorKind(StrEnum):
    """How a job reference chooses among an image's versions."""

    LATEST = "latest"
    EXACT = "exact"
    CARET = "caret"
    TILDE = "tilde"
    WILDCARD = "wildcard"


@dataclass(frozen=True, slots=True)
class VersionSelector:
    """A set of versions: `lower <= v < upper` (`upper` None = unbounded); `text` as written."""

    kind: SelectorKind
    text: str
    lower: Version
    upper: Version | None

    def matches(self, version: Version) -> bool:
        """True when `version` belongs to the selected set."""
        return self.lower <= version and (self.upper is None or version < self.upper)

    def __str__(self) -> str:
        return self.text


LATEST = VersionSelector(SelectorKind.LATEST, "", Version(0, 0, 0), None)


def parse_selector(text: str | None) -> VersionSelector:
    """Parse the part after `:` of a job's image reference (None or "" = latest)."""
    if text is None or text in {"", "latest"}:
        return LATEST
    if len(text) > 40:
        raise VersionError(f"version selector {text[:40]!r}... is longer than 40 characters")
    if text[0] == "^":
        return _caret(text)
    if text[0] == "~":
        return _tilde(text)
    if _WILDCARD_RE.match(text):
        return _wildcard(text)
    if _VERSION_RE.match(text):
        exact = parse_version(text)
        return VersionSelector(SelectorKind.EXACT, text, exact, exact.bump_patch())
    if _PARTIAL_RE.match(text):
        raise VersionError(
            f"version {text!r} is incomplete: write the full MAJOR.MINOR.PATCH, "
            f"or a range such as ^{text} or {text}.x"
        )
    if any(op in text for op in ("<", ">", "=", " ", "||")):
        raise VersionError(
            f"version selector {text!r} is not supported: use an exact version (1.2.3), "
            "^1.2, ~1.2.3 or 1.x"
        )
    raise VersionError(parse_version_error(text))


def parse_version_error(text: str) -> str:
    """The message `parse_version` would raise for `text` (used for precise selector errors)."""
    try:
        parse_version(text)
    except VersionError as err:
        return str(err)
    return f"version {text!r} is valid"


def _partial(text: str, body: str) -> tuple[int, int | None, int | None]:
    match = _PARTIAL_RE.match(body)
    if match is None:
        raise VersionError(
            f"range {text!r}: {body!r} must be MAJOR[.MINOR[.PATCH]] with plain numbers"
        )
    major, minor, patch = match.groups()
    return (
        int(major),
        None if minor is None else int(minor),
        None if patch is None else int(patch),
    )


def _caret(text: str) -> VersionSelector:
    major, minor, patch = _partial(text, text[1:])
    lower = Version(major, minor or 0, patch or 0)
    # The left-most non-zero *given* component is fixed; components not given are free.
    if major > 0 or minor is None:
        upper = Version(major + 1, 0, 0)
    elif minor > 0 or patch is None:
        upper = Version(0, minor + 1, 0)
    else:
        upper = Version(0, 0, patch + 1)
    return VersionSelector(SelectorKind.CARET, text, lower, upper)


def _tilde(text: str) -> VersionSelector:
    major, minor, patch = _partial(text, text[1:])
    lower = Version(major, minor or 0, patch or 0)
    upper = Version(major + 1, 0, 0) if minor is None else Version(major, minor + 1, 0)
    return VersionSelector(SelectorKind.TILDE, text, lower, upper)


def _wildcard(text: str) -> VersionSelector:
    parts = text.split(".")
    if parts[0] in ("x", "X", "*"):
        return VersionSelector(SelectorKind.WILDCARD, text, Version(0, 0, 0), None)
    major = int(parts[0])
    if parts[1] in ("x", "X", "*"):
        return VersionSelector(
            SelectorKind.WILDCARD, text, Version(major, 0, 0), Version(major + 1, 0, 0)
        )
    minor = int(parts[1])
    return VersionSelector(
        SelectorKind.WILDCARD, text, Version(major, minor, 0), Version(major, minor + 1, 0)
    )


def _as_versions(available: Iterable[Version | str]) -> list[Version]:
    out: list[Version] = []
    for item in available:
        out.append(item if isinstance(item, Version) else parse_version(item))
    return out


def resolve(selector: VersionSelector, available: Iterable[Version | str]) -> Version | None:
    """The highest available version the selector matches, or None when none does."""
    matching = [v for v in _as_versions(available) if selector.matches(v)]
    return max(matching) if matching else None


def latest(available: Iterable[Version | str]) -> Version | None:
    """The highest of `available`, or None when it is empty."""
    return resolve(LATEST, available)


def latest_per_major(available: Iterable[Version | str]) -> dict[int, Version]:
    """For each major version present, its highest version (BatchX's default listing rule)."""
    best: dict[int, Version] = {}
    for version in _as_versions(available):
        current = best.get(version.major)
        if current is None or version > current:
            best[version.major] = version
    return dict(sorted(best.items()))
