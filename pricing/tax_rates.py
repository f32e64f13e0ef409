"""Dated tax rate tables: which percentage was in force in a jurisdiction on a given day.

The rates are data, not code: `tax_data/rates.json` beside this module holds EU standard VAT rates
for the 27 member states and US state-level sales tax rates, each as a history of periods, so an
invoice for an old period uses the rate in force then (issue 4). Its `about` entry says where the
numbers come from and what is out of scope (reduced rates, local US taxes).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from itertools import pairwise

from pricing.errors import InvalidField

_HUNDRED = Decimal(100)


def check_percent(value: Decimal, field: str) -> Decimal:
    """`value` if it is a finite percentage in [0, 100]; otherwise `InvalidField(field, ...)`."""
    if not value.is_finite() or not Decimal(0) <= value <= _HUNDRED:
        raise InvalidField(field, f"a tax rate is a percentage from 0 to 100, not {value}")
    return value


@dataclass(frozen=True, slots=True)
class RatePeriod:
    """`rate` percent is in force from `start` (inclusive) until the next period starts."""

    start: date
    rate: Decimal


@dataclass(frozen=True, slots=True)
class RateHistory:
    """The rate periods of one jurisdiction, oldest first."""

    jurisdiction: str
    periods: tuple[RatePeriod, ...]

    def rate_on(self, day: date) -> Decimal:
        """The percentage in force on `day`; `InvalidField("date", ...)` before the first period."""
        in_force = [period for period in self.periods if period.start <= day]
        if not in_force:
            first = self.periods[0].start.isoformat()
            raise InvalidField("date", f"no tax rate on record for {self.jurisdiction} before {first}")
        return in_force[-1].rate


@dataclass(frozen=True, slots=True)
class TaxRates:
    """EU standard VAT by member state and US sales tax by state, each with its history."""

    eu_vat: Mapping[str, RateHistory]
    us_sales_tax: Mapping[str, RateHistory]


@cache
def load_tax_rates() -> TaxRates:
    """The packaged rate tables from `pricing/tax_data/rates.json`, parsed once per process."""
    text = resources.files("pricing").joinpath("tax_data", "rates.json").read_text("utf-8")
    return parse_tax_rates(json.loads(text))


def parse_tax_rates(document: Mapping[str, object]) -> TaxRates:
    """Rate tables from the JSON shape of `tax_data/rates.json`; bad data names its JSON path."""
    return TaxRates(
        eu_vat=_parse_table(document.get("eu_vat_standard"), "eu_vat_standard"),
        us_sales_tax=_parse_table(document.get("us_state_sales_tax"), "us_state_sales_tax"),
    )


def _parse_table(table: object, field: str) -> dict[str, RateHistory]:
    if not isinstance(table, dict) or not table:
        raise InvalidField(field, "must be a non-empty object of jurisdiction -> rate periods")
    return {code: _parse_history(code, periods, f"{field}.{code}") for code, periods in table.items()}


def _parse_history(code: str, periods: object, field: str) -> RateHistory:
    if not isinstance(periods, list) or not periods:
        raise InvalidField(field, "must be a non-empty list of {from, rate} periods")
    parsed = tuple(_parse_period(period, f"{field}[{index}]") for index, period in enumerate(periods))
    if any(later.start <= earlier.start for earlier, later in pairwise(parsed)):
        raise InvalidField(field, "periods must be in strictly increasing `from` order")
    return RateHistory(code, parsed)


def _parse_period(period: object, field: str) -> RatePeriod:
    if not isinstance(period, dict):
        raise InvalidField(field, "must be an object {from, rate}")
    try:
        start = date.fromisoformat(str(period["from"]))
        rate = Decimal(str(period["rate"]))
    except (KeyError, ValueError, InvalidOperation) as error:
        raise InvalidField(field, f"needs `from` (YYYY-MM-DD) and `rate` (decimal string): {error}") from None
    return RatePeriod(start, check_percent(rate, f"{field}.rate"))
