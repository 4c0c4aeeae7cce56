"""Kubernetes resource quantities ("100m", "1Gi", "1e3"), parsed as apimachinery's
resource.ParseQuantity does, to exact fractions; `milli_value`/`value` round up as
Quantity.MilliValue/Value do."""

from __future__ import annotations

import functools
import math
import re
from fractions import Fraction

# parseQuantityString: sign, digits, optional "." and digits, then a suffix made of the
# letters "eEinumkKMGTP" optionally followed by a signed integer (a decimal exponent).
_QUANTITY = re.compile(r"([+-]?)([0-9]*)(?:\.([0-9]*))?([eEinumkKMGTP]*[+-]?[0-9]*)")

_DECIMAL_SI = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}
_BINARY_SI = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_INT64 = re.compile(r"[+-]?[0-9]+")


class QuantityError(ValueError):
    """Not a Kubernetes quantity; the message reads like apimachinery's."""


def _multiplier(suffix: str, text: str) -> Fraction:
    # suffixHandler.interpret: the SI tables first, then "e<int>"/"E<int>" ("E" alone is exa).
    if suffix in _DECIMAL_SI:
        return Fraction(10) ** _DECIMAL_SI[suffix]
    if suffix in _BINARY_SI:
        return Fraction(2 ** _BINARY_SI[suffix])
    if len(suffix) > 1 and suffix[0] in "eE" and _INT64.fullmatch(suffix[1:]):
        exponent = int(suffix[1:])
        if -(2**31) <= exponent < 2**31 and abs(exponent) <= 1000:
            return Fraction(10) ** exponent
    raise QuantityError(f"quantities must match the regular expression "
                        f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}")


def parse_quantity(value: str | int | float) -> Fraction:
    """The exact value of a quantity. JSON numbers are read as their text, as
    Quantity.UnmarshalJSON does. Raises QuantityError."""
    if isinstance(value, bool):
        raise QuantityError(f"not a quantity: {value!r}")
    if isinstance(value, int):
        return Fraction(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(f"not a quantity: {value!r}")
        value = repr(value)
    text = value
    if not text:
        raise QuantityError("quantities must match the regular expression "
                            "'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'")
    m = _QUANTITY.fullmatch(text)
    if m is None:
        raise QuantityError(f"quantities must match the regular expression "
                            f"'^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {text!r}")
    sign, whole, frac, suffix = m.groups()
    number = Fraction(int(whole or "0"))
    if frac:
        number += Fraction(int(frac), 10 ** len(frac))
    if sign == "-":
        number = -number
    return number * _multiplier(suffix, text)


# Every pod of a workload repeats the same few quantities; the scheduler parses each
# pod on every watch event, so the parsed values are remembered.
@functools.lru_cache(maxsize=4096, typed=True)
def milli_value(value: str | int | float) -> int:
    """ceil(q * 1000), e.g. CPU in millicores ("100m" -> 100, "0.5" -> 500)."""
    return math.ceil(parse_quantity(value) * 1000)


@functools.lru_cache(maxsize=4096, typed=True)
def int_value(value: str | int | float) -> int:
    """ceil(q), e.g. memory in bytes ("1Gi" -> 1073741824) or a pod count."""
    return math.ceil(parse_quantity(value))
