"""Kubernetes resource quantities ("3920m", "16Gi", "1e3") parsed into exact Decimals.

Decimals, not floats: summing container requests must not turn 100m + 200m into
0.30000000000000004 and reject a pod that exactly fits.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from functools import lru_cache

_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {
    "n": Decimal("1e-9"),
    "u": Decimal("1e-6"),
    "m": Decimal("1e-3"),
    "": Decimal(1),
    "k": Decimal("1e3"),
    "M": Decimal("1e6"),
    "G": Decimal("1e9"),
    "T": Decimal("1e12"),
    "P": Decimal("1e15"),
    "E": Decimal("1e18"),
}
_QUANTITY = re.compile(
    r"^(?P<number>[+-]?(?:\d+\.?\d*|\.\d+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|(?P<exponent>[eE][+-]?\d+)|(?P<decimal>[numkMGTPE]?))$"
)


class QuantityError(ValueError):
    """A string is not a Kubernetes quantity."""


@lru_cache(maxsize=4096)
def parse_quantity(text: str | int | float) -> Decimal:
    """Return the value of a quantity in base units (cores for cpu, bytes for memory).

    Accepts the strings the API server emits and plain numbers (humans write ``cpu: 4``).
    Cached: a cluster has few distinct quantity strings and the parse is on the hot path.
    """
    if isinstance(text, bool):
        raise QuantityError(f"not a quantity: {text!r}")
    if isinstance(text, (int, float)):
        return Decimal(str(text))
    match = _QUANTITY.match(text.strip())
    if match is None:
        raise QuantityError(f"not a quantity: {text!r}")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid numbers
        raise QuantityError(f"not a quantity: {text!r}") from exc
    if match["binary"]:
        return number * _BINARY[match["binary"]]
    if match["exponent"]:
        return number * (Decimal(10) ** int(match["exponent"][1:]))
    return number * _DECIMAL[match["decimal"] or ""]
