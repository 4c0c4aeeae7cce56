from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from control.scheduler.quantity import QuantityError, int_value, milli_value, parse_quantity


@pytest.mark.parametrize(("text", "value"), [
    ("100m", Fraction(1, 10)), ("1", 1), ("0.5", Fraction(1, 2)), ("1Gi", 2**30),
    ("500Mi", 500 * 2**20), ("1e3", 1000), ("1E3", 1000), ("1e-3", Fraction(1, 1000)),
    ("1e+3", 1000), ("1k", 1000), ("2M", 2_000_000), ("1E", 10**18), ("1Ei", 2**60),
    ("1Ki", 1024), ("5n", Fraction(5, 10**9)), ("3u", Fraction(3, 10**6)), ("+2", 2),
    ("-1", -1), ("1.5Gi", 3 * 2**29), (".5", Fraction(1, 2)), ("1.", 1), ("0", 0),
    ("007", 7), (4, 4), (0.25, Fraction(1, 4)), (1e3, 1000),
])
def test_quantities_parse_to_their_exact_value(text, value):
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", [
    "", "1K", "1Kb", "1 Gi", " 1", "1.2.3", "1e", "1m3", "1Gi3", "abc", "1i", "--1", "1e3.5",
])
def test_malformed_quantities_are_rejected(text):
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_booleans_and_infinities_are_not_quantities():
    for value in (True, float("inf"), float("nan")):
        with pytest.raises(QuantityError):
            parse_quantity(value)


def test_milli_and_int_values_round_up_as_kubernetes_does():
    assert milli_value("100m") == 100
    assert milli_value("0.5") == 500
    assert milli_value("1.0001") == 1001  # ceil
    assert milli_value("1n") == 1
    assert int_value("1Gi") == 1073741824
    assert int_value("1.5") == 2
    assert int_value("128974848") == 128974848
    assert int_value("129e6") == 129000000
    assert int_value("123Mi") == 128974848


_SI = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
       "m": Fraction(1, 10**3), "u": Fraction(1, 10**6), "n": Fraction(1, 10**9),
       "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


@given(st.integers(min_value=0, max_value=10**12), st.sampled_from(sorted(_SI)),
       st.sampled_from(["", "+", "-"]))
def test_an_integer_with_any_suffix_is_that_integer_times_the_suffix(n, suffix, sign):
    expected = n * _SI[suffix] * (-1 if sign == "-" else 1)
    assert parse_quantity(f"{sign}{n}{suffix}") == expected


@given(st.decimals(min_value=-10**9, max_value=10**9, allow_nan=False, allow_infinity=False,
                   places=6), st.integers(min_value=-30, max_value=30))
def test_decimal_numbers_with_an_exponent_parse_exactly(number: Decimal, exponent: int):
    text = f"{number:f}e{exponent}"
    assert parse_quantity(text) == Fraction(number) * Fraction(10) ** exponent


@given(st.text(alphabet="0123456789.+-eEinumkKMGTPi xyz", max_size=12))
def test_any_text_either_parses_or_raises_quantity_error(text):
    try:
        value = parse_quantity(text)
    except QuantityError:
        return
    assert isinstance(value, Fraction)
    # Whatever parses rounds up consistently.
    assert milli_value(text) >= value * 1000
    assert int_value(text) >= value
