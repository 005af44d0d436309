"""Money: ISO 4217 currencies and their minor units, amounts as `Decimal`.

An amount in a currency may carry at most as many decimals as the currency's minor unit
(two cents for USD, none for JPY, three fils for KWD). Amounts are exact `Decimal`s in code,
`numeric` in the database and decimal strings in JSON, written with exactly the currency's
number of decimals (`"19.99"`, `"1500"`, `"1.250"`).
"""

from __future__ import annotations

from decimal import Decimal

MINOR_UNITS: dict[str, int] = {
    # The currencies Shelfkeeper accepts (ISO 4217 code → digits of the minor unit).
    "AED": 2,
    "AUD": 2,
    "BHD": 3,
    "BRL": 2,
    "CAD": 2,
    "CHF": 2,
    "CLP": 0,
    "CNY": 2,
    "CZK": 2,
    "DKK": 2,
    "EUR": 2,
    "GBP": 2,
    "HKD": 2,
    "HUF": 2,
    "IDR": 2,
    "ILS": 2,
    "INR": 2,
    "ISK": 0,
    "JOD": 3,
    "JPY": 0,
    "KRW": 0,
    "KWD": 3,
    "MXN": 2,
    "NOK": 2,
    "NZD": 2,
    "OMR": 3,
    "PHP": 2,
    "PLN": 2,
    "RON": 2,
    "SAR": 2,
    "SEK": 2,
    "SGD": 2,
    "THB": 2,
    "TND": 3,
    "TRY": 2,
    "TWD": 2,
    "UGX": 0,
    "USD": 2,
    "VND": 0,
    "ZAR": 2,
}

MAX_AMOUNT = Decimal("999999999999999")
"""The largest amount (an order's total included) the database's `numeric(19, 4)` holds
with room to spare."""


def is_known(currency: str) -> bool:
    return currency in MINOR_UNITS


def minor_unit(currency: str) -> Decimal:
    """The currency's smallest unit: `Decimal("0.01")` for USD, `Decimal("1")` for JPY.

    Raises KeyError for a currency not in `MINOR_UNITS`.
    """
    return Decimal(1).scaleb(-MINOR_UNITS[currency])


def fits(amount: Decimal, currency: str) -> bool:
    """Whether `amount` has no more decimals than the currency's minor unit allows."""
    return amount == amount.quantize(minor_unit(currency))


def in_currency(amount: Decimal, currency: str) -> Decimal:
    """`amount` written with exactly the currency's decimals (it must fit, see `fits`)."""
    return amount.quantize(minor_unit(currency))


def text(amount: Decimal, currency: str) -> str:
    """The decimal string of `amount` in `currency`: `"19.99"`, `"1500"`, `"1.250"`."""
    return format(in_currency(amount, currency), "f")
