"""Kubernetes quantities ('500m', '4Gi', '1e3', 16): the one grammar, and their exact values.

One grammar serves both sides: the CRD's `pattern` (what the API server admits) and the
operator's parser (what a quota means). Before, the CRD pattern and the admission planner each
had a regular expression of their own, and they disagreed: a quota of ``1Ei`` or ``1e1.5``
passed the API server and then raised in the operator, at every admission pass of the
environment. The exponent has at most 3 digits and a quantity at most 64 characters, so no
admitted quantity is too big to compute with (``1e999999999`` would have been a billion-digit
integer at the first comparison).

Non-negative only: a negative quota or memory means nothing. Same suffixes as apimachinery's
parser: binary (Ki..Ei), decimal SI (n, u, m, k, M, G, T, P, E) or a decimal exponent.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation

__all__ = ["MAX_QUANTITY_LENGTH", "QUANTITY_PATTERN", "parse_quantity"]

MAX_QUANTITY_LENGTH = 64
QUANTITY_PATTERN = r"^([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][-+]?[0-9]{1,3}|[KMGTPE]i|[numkMGTPE])?$"
_QUANTITY = re.compile(QUANTITY_PATTERN)
_SUFFIX = {
    "": Decimal(1),
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
    "Ki": Decimal(2**10),
    "Mi": Decimal(2**20),
    "Gi": Decimal(2**30),
    "Ti": Decimal(2**40),
    "Pi": Decimal(2**50),
    "Ei": Decimal(2**60),
}


def parse_quantity(value: int | str) -> Decimal:
    """A quantity as an exact decimal; ValueError (saying what is wrong) if it is not one."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(
            f"a quantity is a number or a string such as '500m' or '4Gi', got {value!r}"
        )
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a quantity must not be negative, got {value}")
        return Decimal(value)
    if len(value) > MAX_QUANTITY_LENGTH:
        raise ValueError(
            f"a quantity has at most {MAX_QUANTITY_LENGTH} characters, got {len(value)}"
        )
    match = _QUANTITY.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a Kubernetes quantity such as '500m', '2', '4Gi'")
    number, suffix = match.group(1), match.group(3) or ""
    try:
        if suffix in _SUFFIX:
            return Decimal(number) * _SUFFIX[suffix]
        return Decimal(number + suffix)  # a decimal exponent
    except InvalidOperation as err:  # pragma: no cover - the pattern admits only numbers
        raise ValueError(f"{value!r} is not a Kubernetes quantity") from err
