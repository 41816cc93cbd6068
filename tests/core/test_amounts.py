"""Token amounts: whole tokens typed by people and smallest units sent by programs, both ways."""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Context, Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cairn.core.amounts import (
    MAX_AMOUNT,
    TOKEN,
    TOKEN_DECIMALS,
    parse_smallest_units,
    parse_units,
    units,
)
from cairn.core.errors import InvalidInput

amounts = st.integers(min_value=1, max_value=MAX_AMOUNT)
decimals = st.integers(min_value=0, max_value=36)


def test_one_token_is_ten_to_the_eighteen_smallest_units() -> None:
    assert TOKEN_DECIMALS == 18 and TOKEN == 10**18
    assert parse_units("1") == TOKEN and parse_units("2.5") == 5 * TOKEN // 2
    assert parse_units("0.000000000000000001") == 1  # the smallest unit
    assert units(TOKEN) == "1" and units(1) == "0.000000000000000001"


def test_the_ways_a_person_writes_a_number_are_read_alike() -> None:
    for text in ("1.5", " 1.5 ", "+1.5", "1.50", "15e-1", "0.15E1", "1.500000000000000000000"):
        assert parse_units(text) == 3 * TOKEN // 2, text
    assert parse_units(".5") == parse_units("0.5") == parse_units("5e-1") == TOKEN // 2
    assert parse_units("5.") == 5 * TOKEN


def test_zero_is_an_amount_only_where_the_caller_allows_it() -> None:
    for text in ("0", "0.0", "-0", "0e1000000"):
        assert parse_units(text, zero=True) == 0
        with pytest.raises(InvalidInput, match=r"must be positive with at most 18 decimals"):
            parse_units(text)


@pytest.mark.parametrize(
    ("text", "zero", "message"),
    [
        ("abc", False, "amount 'abc' is not a number"),
        ("", False, "amount '' is not a number"),
        ("NaN", False, "amount 'NaN' is not a number"),
        ("-Infinity", True, "amount '-Infinity' is not a number"),
        ("1,000", False, "amount '1,000' is not a number"),  # "1,5" means 1.5 in half the world
        ("1_000", False, "amount '1_000' is not a number"),
        ("١٢", False, "amount '١٢' is not a number"),  # digits of another script
        ("1.5.2", False, "amount '1.5.2' is not a number"),
        ("-1", False, "amount '-1' must be positive with at most 18 decimals"),
        ("-1", True, "amount '-1' must be zero or more with at most 18 decimals"),
        ("-1e100", True, "amount '-1e100' must be zero or more with at most 18 decimals"),
        ("1e-19", False, "amount '1e-19' must be positive with at most 18 decimals"),
        ("1.0000000000000000001", True, "must be zero or more with at most 18 decimals"),
        ("1e-1000000", True, "amount '1e-1000000' must be zero or more with at most 18 decimals"),
    ],
)
def test_bad_amounts_say_what_is_wrong(text: str, zero: bool, message: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_units(text, zero=zero)
    assert message in caught.value.message


def test_the_error_names_the_field() -> None:
    with pytest.raises(InvalidInput, match=r"^price per call 'lots' is not a number$"):
        parse_units("lots", what="price per call", zero=True)
    with pytest.raises(InvalidInput, match=r"^budget '-2' must be positive with at most 6 dec"):
        parse_units("-2", 6, what="budget")


def test_an_amount_is_bounded_by_a_uint256() -> None:
    most = units(MAX_AMOUNT)  # 115792089237316195423570985008687907853269984665640564039457.58...
    assert parse_units(most) == MAX_AMOUNT
    assert parse_units(str(MAX_AMOUNT), 0) == MAX_AMOUNT
    past = units(MAX_AMOUNT + 1)
    for text in (past, str(MAX_AMOUNT + 1) + "e-18", "9" * 79, "1e100", "1e1000000"):
        with pytest.raises(InvalidInput, match="is too large: the most a token amount can be is"):
            parse_units(text)
    with pytest.raises(InvalidInput) as caught:
        parse_units("9" * 200)
    assert caught.value.message.startswith(f"amount '{'9' * 37}...' is too large")  # quoted short


@given(amounts, decimals)
def test_an_amount_written_out_reads_back_the_same(amount: int, places: int) -> None:
    assert parse_units(units(amount, places), places) == amount


@given(amounts, decimals)
def test_grouped_text_is_the_exact_text_with_commas(amount: int, places: int) -> None:
    exact = units(amount, places)
    whole, _, fraction = exact.partition(".")
    grouped = units(amount, places, grouped=True)
    assert grouped == f"{int(whole):,}" + (f".{fraction}" if fraction else "")


@given(st.integers(min_value=-MAX_AMOUNT, max_value=MAX_AMOUNT), st.integers(0, 18))
def test_rounded_amounts_round_half_to_even_like_decimal(amount: int, places: int) -> None:
    exact = Decimal(amount).scaleb(-18, Context(prec=100))
    expected = exact.quantize(Decimal(1).scaleb(-places), ROUND_HALF_EVEN, Context(prec=100))
    shown = units(amount, places=places)
    assert Decimal(shown) == expected
    assert "." not in shown or not shown.endswith("0")  # no trailing zeros


def test_rounding_to_places_for_a_page() -> None:
    # 1.00005 is half-way between 1.0000 and 1.0001: half to even keeps 1.0000 -> "1"
    assert units(TOKEN + 5 * 10**13, places=4) == "1"
    # 1.00015 -> 1.0002 (the even neighbour), 1234567.89 -> "1,234,567.89" grouped
    assert units(TOKEN + 15 * 10**13, places=4) == "1.0002"
    assert units(123_456_789 * 10**16, places=2, grouped=True) == "1,234,567.89"
    assert units(-1, places=4) == "0"  # a rounded-away negative is no "-0"
    assert units(-15 * 10**17) == "-1.5"


def test_smallest_units_are_digits_up_to_a_uint256() -> None:
    assert parse_smallest_units("0", "amount") == 0
    assert parse_smallest_units("007", "amount") == 7
    assert parse_smallest_units(str(MAX_AMOUNT), "amount") == MAX_AMOUNT
    for bad in ("", "-1", "1.5", "1e3", " 1", "9" * 79):
        with pytest.raises(InvalidInput, match=r"^budget must be a non-negative integer"):
            parse_smallest_units(bad, "budget")
    with pytest.raises(InvalidInput, match=r"^budget must be at most 2\^256-1 = "):
        parse_smallest_units(str(MAX_AMOUNT + 1), "budget")
