"""BatchX coordinates `environment@name:version`, base names and job image references.

Coordinates are monomorphic: one image has exactly one spelling. So parsing is strict (no
whitespace trimming, no case folding, no leading zeros) and `format(parse(s)) == s` for every
valid `s`. Job references are looser: `name`, `name:1.2.3`, `name:^1.2`, `name:~1.2.3`,
`name:1.x`, each optionally `env@`-qualified; they resolve to coordinates (see versions.py).

Grammar (seed 001/002, limits from the manifest schema):
- environment: a Kubernetes namespace name (DNS label: `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, <= 63);
- name: <= 60 characters, `/`-separated segments of letters, digits, `.`, `_`, `-` that start
  and end with a letter or digit (e.g. `tutorial/hello-world`);
- version: strict `MAJOR.MINOR.PATCH`, <= 15 characters.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from semver import Version

from batchx.domain.versions import (
    LATEST,
    SelectorKind,
    VersionError,
    VersionSelector,
    parse_selector,
    parse_version,
    resolve,
)

__all__ = [
    "MAX_ENVIRONMENT_LENGTH",
    "MAX_NAME_LENGTH",
    "BaseName",
    "Coordinates",
    "CoordinatesError",
    "ImageRef",
    "check_environment",
    "check_name",
    "default_listing",
    "parse_base_name",
    "parse_coordinates",
    "parse_image_ref",
    "resolve_ref",
]

MAX_ENVIRONMENT_LENGTH = 63
MAX_NAME_LENGTH = 60
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME_SEGMENT = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$")
# Looks like a registry host (`docker.io/...`, `localhost:5000/...`) or a digest: a container
# image reference given where BatchX coordinates are expected. Only used to enrich errors.
_CONTAINER_HINT = re.compile(r"@sha256:|^([a-z0-9-]+\.[a-z0-9.-]+|localhost)(:[0-9]+)?/")


class CoordinatesError(ValueError):
    """A malformed coordinate string; `value` is the input, `reason` the precise problem."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"invalid image reference {value!r}: {reason}")
        self.value = value
        self.reason = reason


def check_environment(environment: str) -> str | None:
    """Why `environment` is not a valid environment name, or None when it is."""
    if environment == "":
        return "the environment (before '@') is empty"
    if len(environment) > MAX_ENVIRONMENT_LENGTH:
        return (
            f"the environment {environment[:20]!r}... is {len(environment)} characters long, "
            f"the limit is {MAX_ENVIRONMENT_LENGTH}"
        )
    if not _DNS_LABEL.match(environment):
        return (
            f"the environment {environment!r} must be a namespace name: lowercase letters, "
            "digits and '-', starting and ending with a letter or digit"
        )
    return None


def check_name(name: str) -> str | None:
    """Why `name` is not a valid image name, or None when it is."""
    if name == "":
        return "the image name is empty"
    if len(name) > MAX_NAME_LENGTH:
        return f"the image name is {len(name)} characters long, the limit is {MAX_NAME_LENGTH}"
    for index, segment in enumerate(name.split("/")):
        if segment == "":
            return (
                f"the image name {name!r} has an empty segment {index} (leading, trailing or '//')"
            )
        if not _NAME_SEGMENT.match(segment):
            return (
                f"the image name {name!r}: segment {segment!r} may only contain letters, digits, "
                "'.', '_' and '-', and must start and end with a letter or digit"
            )
    return None


@dataclass(frozen=True, slots=True, order=True)
class BaseName:
    """`environment@name`: all versions of one image."""

    environment: str
    name: str

    def __str__(self) -> str:
        return f"{self.environment}@{self.name}"


@dataclass(frozen=True, slots=True)
class Coordinates:
    """`environment@name:version`: exactly one image."""

    environment: str
    name: str
    version: Version

    @property
    def base_name(self) -> BaseName:
        return BaseName(self.environment, self.name)

    def sort_key(self) -> tuple[str, str, Version]:
        """Order by environment, name, then semantic version (not string order)."""
        return (self.environment, self.name, self.version)

    def __str__(self) -> str:
        return f"{self.environment}@{self.name}:{self.version}"

    @classmethod
    def of(cls, environment: str, name: str, version: str) -> Coordinates:
        """Validated constructor from the three parts (e.g. environment + manifest fields)."""
        return parse_coordinates(f"{environment}@{name}:{version}")


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A job's image reference: optional environment, name, version selector."""

    environment: str | None
    name: str
    selector: VersionSelector

    def qualified(self, default_environment: str) -> ImageRef:
        """The same reference with `default_environment` when none was written."""
        if self.environment is not None:
            return self
        return ImageRef(default_environment, self.name, self.selector)

    def base_name(self, default_environment: str) -> BaseName:
        return BaseName(self.environment or default_environment, self.name)

    @property
    def is_exact(self) -> bool:
        return self.selector.kind is SelectorKind.EXACT

    def __str__(self) -> str:
        prefix = "" if self.environment is None else f"{self.environment}@"
        suffix = "" if self.selector.kind is SelectorKind.LATEST else f":{self.selector}"
        return f"{prefix}{self.name}{suffix}"


def _fail(value: str, reason: str) -> CoordinatesError:
    if _CONTAINER_HINT.search(value):
        reason += (
            " (this looks like a container image reference; BatchX references are "
            "[env@]name[:version], e.g. lab@tools/bwa:1.0.0)"
        )
    return CoordinatesError(value, reason)


def _split(value: str) -> tuple[str | None, str, str | None]:
    """Split into (environment, name, version part) checking only the separators."""
    if not isinstance(value, str):
        raise CoordinatesError(repr(value), f"expected a string, got {type(value).__name__}")
    if value == "":
        raise _fail(value, "it is empty")
    if value != value.strip() or any(c.isspace() for c in value):
        raise _fail(value, "it contains whitespace")
    environment: str | None = None
    rest = value
    if "@" in value:
        environment, rest = value.split("@", 1)
        if "@" in rest:
            raise _fail(value, "it contains more than one '@'")
        reason = check_environment(environment)
        if reason:
            raise _fail(value, reason)
    version: str | None = None
    name = rest
    if ":" in rest:
        name, version = rest.split(":", 1)
        if ":" in version:
            raise _fail(value, "it contains more than one ':'")
        if version == "":
            raise _fail(value, "the version after ':' is empty")
    reason = check_name(name)
    if reason:
        raise _fail(value, reason)
    return environment, name, version


def parse_coordinates(value: str) -> Coordinates:
    """Parse full coordinates `environment@name:version` (all three parts required)."""
    environment, name, version = _split(value)
    if environment is None:
        raise _fail(value, "the environment is missing; coordinates are environment@name:version")
    if version is None:
        raise _fail(value, "the version is missing; coordinates are environment@name:version")
    try:
        return Coordinates(environment, name, parse_version(version))
    except VersionError as err:
        raise _fail(value, str(err)) from None


def parse_base_name(value: str) -> BaseName:
    """Parse a base name `environment@name` (no version)."""
    environment, name, version = _split(value)
    if environment is None:
        raise _fail(value, "the environment is missing; a base name is environment@name")
    if version is not None:
        raise _fail(value, "a base name has no version; drop ':" + version + "'")
    return BaseName(environment, name)


def parse_image_ref(value: str) -> ImageRef:
    """Parse a job's image reference: `[env@]name[:version|:^x.y|:~x.y.z|:x.x]`."""
    environment, name, version = _split(value)
    try:
        selector = LATEST if version is None else parse_selector(version)
    except VersionError as err:
        raise _fail(value, str(err)) from None
    return ImageRef(environment, name, selector)


def default_listing(images: Iterable[Coordinates]) -> list[Coordinates]:
    """BatchX's default image listing: the latest version of each major of each base name.

    Sorted by base name, then by version from newest to oldest major. Duplicates collapse.
    """
    best: dict[tuple[BaseName, int], Coordinates] = {}
    for coords in images:
        key = (coords.base_name, coords.version.major)
        current = best.get(key)
        if current is None or coords.version > current.version:
            best[key] = coords
    return sorted(best.values(), key=lambda c: (c.base_name, -c.version.major))


def resolve_ref(
    ref: ImageRef, available: Iterable[Coordinates], default_environment: str
) -> Coordinates | None:
    """The coordinates `ref` resolves to among `available` (any base names), or None.

    `default_environment` qualifies a reference written without `env@` (the job's own).
    """
    base = ref.base_name(default_environment)
    candidates = {c.version: c for c in available if c.base_name == base}
    version = resolve(ref.selector, candidates)
    return None if version is None else candidates[version]
