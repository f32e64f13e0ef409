"""When an alert fires: the pure rules, no I/O.

- usage:           the meter's total for the billing period so far >= threshold (the meter's unit).
- spend:           the period's charges so far, as the invoice would rate them (each line converted
                   and rounded, before credits and tax), in the tenant's invoice currency >= threshold.
- spend_forecast:  the period's charges projected to its end (usage so far plus the usage
                   forecast's median for each day left) >= threshold; the event names the projected
                   amount and the first day whose projection reaches the threshold.
- credits_balance: the credit balance < threshold.
- credits_expiring: a grant with more than `threshold` left expires within 7 days.
Each fires once per occurrence: the billing period, or for expiring credits the grant.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol

from pricing.credits import CreditLedger, GrantBalance
from pricing.errors import InvalidField
from pricing.fx import FxRate
from pricing.meters import METERS
from pricing.money import Currency, Money
from pricing.rating import Rating

EXPIRY_NOTICE = timedelta(days=7)
MAX_THRESHOLD = Decimal(10) ** 15
MAX_FRACTION_DIGITS = 12
METER_NAMES = tuple(meter.value for meter in METERS)


class AlertKind(StrEnum):
    USAGE = "usage"
    SPEND = "spend"
    SPEND_FORECAST = "spend_forecast"
    CREDITS_BALANCE = "credits_balance"
    CREDITS_EXPIRING = "credits_expiring"


MONEY_KINDS = frozenset(AlertKind) - {AlertKind.USAGE}
FIELDS = {"kind", "meter", "threshold", "currency"}


@dataclass(frozen=True)
class AlertSpec:
    kind: AlertKind
    meter: str | None
    threshold: Decimal
    currency: str | None


def parse_alert(request: Mapping[str, Any], tenant_currency: str) -> AlertSpec:
    """An alert from `{"kind", "meter"?, "threshold", "currency"?}`; InvalidField names the field."""
    unknown = sorted(set(request) - FIELDS)
    if unknown:
        raise InvalidField(unknown[0], "is not a field of an alert")
    raw_kind = request.get("kind")
    if raw_kind not in {kind.value for kind in AlertKind}:
        raise InvalidField("kind", f"must be one of {', '.join(kind.value for kind in AlertKind)}")
    kind = AlertKind(raw_kind)
    meter = request.get("meter")
    if kind is AlertKind.USAGE:
        if meter not in METER_NAMES:
            raise InvalidField("meter", f"a usage alert needs one of {', '.join(METER_NAMES)}")
    elif meter is not None:
        raise InvalidField("meter", f"only usage alerts name a meter, not {kind.value}")
    default = "0" if kind is AlertKind.CREDITS_EXPIRING else None
    threshold = parse_threshold(request.get("threshold", default), allow_zero=kind is AlertKind.CREDITS_EXPIRING)
    currency = request.get("currency")
    if kind is AlertKind.USAGE:
        if currency is not None:
            raise InvalidField("currency", "a usage alert counts a meter's units, not money")
        return AlertSpec(kind, meter, threshold, None)
    if currency is None:
        currency = tenant_currency
    if not isinstance(currency, str) or currency.lower() != tenant_currency.lower():
        raise InvalidField("currency", f"must be the tenant's invoice currency, {tenant_currency}")
    digits = Currency.of(tenant_currency).digits
    if -threshold.as_tuple().exponent > digits:  # type: ignore[operator]
        raise InvalidField("threshold", f"{tenant_currency} amounts have at most {digits} decimal places")
    return AlertSpec(kind, None, threshold, tenant_currency.lower())


def parse_threshold(value: object, *, allow_zero: bool = False) -> Decimal:
    """A decimal string (or an exact JSON number read as Decimal), never a float."""
    if isinstance(value, bool) or not isinstance(value, str | Decimal | int):
        raise InvalidField("threshold", 'must be a decimal string such as "150.00"')
    try:
        threshold = Decimal(value.strip() if isinstance(value, str) else value)
    except InvalidOperation:
        raise InvalidField("threshold", f"{value!r} is not a decimal number") from None
    if not threshold.is_finite():
        raise InvalidField("threshold", "must be a finite number")
    if threshold < 0 or (threshold == 0 and not allow_zero):
        raise InvalidField("threshold", "must be greater than zero")
    if threshold > MAX_THRESHOLD:
        raise InvalidField("threshold", f"must be at most {MAX_THRESHOLD}")
    if -threshold.as_tuple().exponent > MAX_FRACTION_DIGITS:  # type: ignore[operator]
        raise InvalidField("threshold", f"at most {MAX_FRACTION_DIGITS} decimal places")
    return threshold


class InvoiceLines(Protocol):
    """invoicing/composition.py `invoice_lines`: a rating's lines converted with `fx` and each
    rounded once, as its invoice shows them (given by the composition root: notifications is
    called by invoicing, so it does not import it)."""

    def __call__(self, rating: Rating, fx: FxRate | None, /) -> Sequence[Any]: ...


def invoiced_amount(lines_of: InvoiceLines, rating: Rating, fx: FxRate | None, currency: Currency) -> Money:
    """The rating's charges as its invoice lines would be, before credits and tax."""
    return Money.total((line.amount for line in lines_of(rating, fx)), currency)


def reached(value: Decimal, threshold: Decimal) -> bool:
    return value >= threshold


def projected_totals(
    today: date,
    month_end: date,
    month_to_date: Mapping[str, Decimal],
    daily: Mapping[date, Mapping[str, Decimal]],
) -> list[tuple[date, dict[str, Decimal]]]:
    """For today and each day left in the month (to `month_end`, exclusive): the month's totals
    by the end of that day if the forecast's medians come true. Today's usage so far stands for
    today; each later day adds its forecast, or (beyond the forecast's horizon) the forecast of
    the same weekday a week before, as forecasting/projection.py does, else nothing."""
    totals = {meter: Decimal(month_to_date.get(meter, 0)) for meter in METER_NAMES}
    days = [(today, dict(totals))]
    day = today + timedelta(days=1)
    while day < month_end:
        forecast = _forecast_for(day, daily)
        for meter in METER_NAMES:
            totals[meter] += max(forecast.get(meter, Decimal(0)), Decimal(0))
        days.append((day, dict(totals)))
        day += timedelta(days=1)
    return days


def _forecast_for(day: date, daily: Mapping[date, Mapping[str, Decimal]]) -> Mapping[str, Decimal]:
    earlier = day
    for _ in range(5):
        if earlier in daily:
            return daily[earlier]
        earlier -= timedelta(days=7)
    return {}


def first_crossing(amounts: Sequence[tuple[date, Money]], threshold: Money) -> date | None:
    """The first day whose amount reaches the threshold."""
    for day, amount in amounts:
        if threshold <= amount:
            return day
    return None


def balance_low(ledger: CreditLedger, now: datetime, threshold: Decimal) -> Money | None:
    """The balance when it is under the threshold (major units), else None."""
    balance = ledger.balance(now)
    return balance if balance < Money.from_major(threshold, ledger.currency) else None


def expiring_grants(ledger: CreditLedger, now: datetime, threshold: Decimal) -> Iterable[GrantBalance]:
    """Usable grants with more than `threshold` (major units) left that expire within 7 days."""
    floor = Money.from_major(threshold, ledger.currency).minor_units
    for balance in ledger.grant_balances(now):
        expires = balance.grant.expires_at
        if expires is not None and expires - now <= EXPIRY_NOTICE and balance.remaining > floor:
            yield balance
