"""`bx://` paths: the one validator every layer shares (store, job inputs, CLI).

A BatchX path names immutable content inside an environment's file system, e.g.
`bx://samples/a.fastq.gz`. The store maps the *relative* part (`samples/a.fastq.gz`) to a blob key
or a local file, so anything that could escape that root or alias another path is refused here,
once, with a message that says which rule was broken.

Rules (each violation raises `BxPathError` with a precise reason):
- the value starts with the lowercase scheme `bx://`;
- the relative part is not empty (unless `allow_root`) and does not start with `/`
  (`bx:///etc/passwd` would be an absolute escape);
- no segment is empty (`a//b`), `.` or `..`;
- no control characters (C0, DEL, C1) and no backslash (a Windows separator in disguise);
- at most `MAX_PATH_BYTES` (1024) bytes of UTF-8 in the relative part, and at most
  `MAX_SEGMENT_BYTES` (255) per segment: the S3 key limit and the POSIX NAME_MAX, so every
  backend can hold every valid path.
- a single trailing `/` (a folder) is allowed only with `allow_dir=True` and is kept.

No other normalisation happens: two different strings are two different paths.
"""

from __future__ import annotations

import re

__all__ = [
    "BX_SCHEME",
    "MAX_PATH_BYTES",
    "MAX_SEGMENT_BYTES",
    "BxPathError",
    "format_bx_path",
    "is_bx_path",
    "join_relative",
    "parse_bx_path",
    "validate_bx_path",
    "validate_relative_path",
]

BX_SCHEME = "bx://"
MAX_PATH_BYTES = 1024
MAX_SEGMENT_BYTES = 255

# C0 controls, DEL and C1 controls: invisible in listings and dangerous in logs and terminals.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


class BxPathError(ValueError):
    """A malformed `bx://` path; `reason` is the human message, `value` the offending input."""

    def __init__(self, value: str, reason: str) -> None:
        super().__init__(f"invalid bx:// path {value!r}: {reason}")
        self.value = value
        self.reason = reason


def is_bx_path(value: object) -> bool:
    """True when `value` is a string that *claims* to be a bx:// path (scheme check only)."""
    return isinstance(value, str) and value.startswith(BX_SCHEME)


def parse_bx_path(value: str, *, allow_dir: bool = False, allow_root: bool = False) -> str:
    """Return the relative part of `bx://<relative>` after checking every rule above.

    `allow_dir`: accept (and keep) one trailing `/`, for folder references and listing prefixes.
    `allow_root`: accept `bx://` alone (returns ""), for listing the whole file system.
    """
    if not isinstance(value, str):
        raise BxPathError(repr(value), f"expected a string, got {type(value).__name__}")
    if not value.startswith(BX_SCHEME):
        raise BxPathError(value, f"must start with {BX_SCHEME!r}")
    return _check_relative(value, value[len(BX_SCHEME) :], allow_dir, allow_root)


def validate_relative_path(
    relative: str, *, allow_dir: bool = False, allow_root: bool = False
) -> str:
    """Same rules as `parse_bx_path` for a path already stripped of `bx://`; returns it."""
    if not isinstance(relative, str):
        raise BxPathError(repr(relative), f"expected a string, got {type(relative).__name__}")
    return _check_relative(relative, relative, allow_dir, allow_root)


def validate_bx_path(
    value: str, *, allow_dir: bool = False, allow_root: bool = False
) -> str | None:
    """The reason `value` is not a valid bx:// path, or None when it is (non-raising form)."""
    try:
        parse_bx_path(value, allow_dir=allow_dir, allow_root=allow_root)
    except BxPathError as err:
        return err.reason
    return None


def format_bx_path(relative: str, *, allow_dir: bool = False) -> str:
    """`bx://<relative>` after validating `relative` (the inverse of `parse_bx_path`)."""
    return BX_SCHEME + validate_relative_path(relative, allow_dir=allow_dir)


def join_relative(*parts: str) -> str:
    """Join relative path pieces with `/` and validate the result (e.g. job output keys).

    Each piece may itself contain `/`; the join is strict (no segment may be empty), so a
    stray leading or trailing slash in a piece is an error rather than silently collapsed.
    """
    joined = "/".join(parts)
    return validate_relative_path(joined)


def _check_relative(original: str, relative: str, allow_dir: bool, allow_root: bool) -> str:
    if relative == "":
        if allow_root:
            return ""
        raise BxPathError(original, "the path after bx:// is empty")
    if relative.startswith("/"):
        raise BxPathError(original, "absolute paths are not allowed (no '/' right after bx://)")
    control = _CONTROL.search(relative)
    if control is not None:
        raise BxPathError(
            original, f"control character U+{ord(control.group()):04X} at offset {control.start()}"
        )
    if "\\" in relative:
        raise BxPathError(original, "backslash is not allowed; use '/' to separate segments")
    encoded = len(relative.encode("utf-8"))
    if encoded > MAX_PATH_BYTES:
        raise BxPathError(original, f"path is {encoded} bytes long, the limit is {MAX_PATH_BYTES}")
    body = relative
    if relative.endswith("/"):
        if not allow_dir:
            raise BxPathError(original, "trailing '/' is only allowed for folders")
        body = relative[:-1]
    for index, segment in enumerate(body.split("/")):
        _check_segment(original, index, segment)
    return relative


def _check_segment(original: str, index: int, segment: str) -> None:
    if segment == "":
        raise BxPathError(original, f"segment {index} is empty ('//' or trailing '/')")
    if segment in (".", ".."):
        raise BxPathError(original, f"segment {index} is {segment!r}; relative segments escape")
    size = len(segment.encode("utf-8"))
    if size > MAX_SEGMENT_BYTES:
        raise BxPathError(
            original, f"segment {index} is {size} bytes long, the limit is {MAX_SEGMENT_BYTES}"
        )
