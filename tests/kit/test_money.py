"""Currencies and their minor units."""

from __future__ import annotations

from decimal import Decimal

import pytest

from shelfkeeper.kit import money


@pytest.mark.parametrize(
    ("currency", "unit"),
    [("USD", "0.01"), ("EUR", "0.01"), ("GBP", "0.01"), ("JPY", "1"), ("KWD", "0.001")],
)
def test_minor_units(currency: str, unit: str) -> None:
    assert money.minor_unit(currency) == Decimal(unit)


def test_an_amount_fits_when_it_has_no_more_decimals_than_the_currency() -> None:
    assert money.fits(Decimal("19.99"), "USD")
    assert money.fits(Decimal("19.990"), "USD")
    assert not money.fits(Decimal("19.999"), "USD")
    assert money.fits(Decimal("1500"), "JPY")
    assert not money.fits(Decimal("1500.5"), "JPY")
    assert money.fits(Decimal("1.125"), "KWD")
    assert not money.fits(Decimal("1.1255"), "KWD")


def test_amounts_are_written_with_exactly_the_currencys_decimals() -> None:
    assert money.text(Decimal("19.9"), "USD") == "19.90"
    assert money.text(Decimal("1500.0000"), "JPY") == "1500"
    assert money.text(Decimal("1.25"), "KWD") == "1.250"
    assert money.text(Decimal("0"), "EUR") == "0.00"


def test_only_known_currencies() -> None:
    assert money.is_known("USD")
    assert not money.is_known("XYZ")
    assert not money.is_known("usd")
    with pytest.raises(KeyError):
        money.minor_unit("XYZ")
