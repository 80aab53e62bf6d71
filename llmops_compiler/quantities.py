"""Kubernetes resource quantities (``500m``, ``32Gi``, ``1.5G``, ``2e3``) as exact numbers.

The suffixes are those of ``k8s.io/apimachinery/pkg/api/resource`` (``Quantity``): binary ``Ki`` … ``Ei``
(powers of 1024), decimal ``n``, ``u``, ``m``, ``k``, ``M``, ``G``, ``T``, ``P``, ``E`` (powers of 1000) and a
decimal exponent ``e<n>``/``E<n>``.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction
from functools import lru_cache

_QUANTITY = re.compile(r"^(?P<number>[+]?(\d+(\.\d*)?|\.\d+))(?P<suffix>Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE]|[eE][+-]?\d+)?$")
_BINARY = {"Ki": 1, "Mi": 2, "Gi": 3, "Ti": 4, "Pi": 5, "Ei": 6}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


@lru_cache(maxsize=4096)
def quantity_value(text: str) -> Fraction:
    """The exact value of a quantity (cores for ``cpu``, bytes for ``memory``); raises ValueError if malformed."""
    found = _QUANTITY.fullmatch(text)
    if found is None:
        raise ValueError(f"`{text}` is not a Kubernetes quantity")
    number = Fraction(Decimal(found["number"]))
    suffix = found["suffix"] or ""
    if suffix in _BINARY:
        return number * Fraction(1024) ** _BINARY[suffix]
    if suffix in _DECIMAL:
        return number * Fraction(10) ** _DECIMAL[suffix]
    if suffix:
        return number * Fraction(10) ** int(suffix[1:])
    return number
