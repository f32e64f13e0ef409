"""Airgapped tenants: a one-time perpetual licence and yearly support, billed in advance.

Support runs in support years that start on the licence's renewal date (1 January unless the
licence says otherwise). A licence that starts between renewal dates pays support for the rest
of that support year, prorated by days (a licence from 15 March with 1 January renewals pays
292/365 of a year), then a full year on each renewal date until support ends. The licence fee
and the support fee default to the catalog's airgapped plan; a negotiated licence sets its own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from pricing.errors import InvalidSettings
from pricing.json_fields import (
    as_decimal,
    as_instant,
    as_object,
    as_string,
    child,
    instant_text,
    reject_unknown_keys,
)
from pricing.lines import LineKind, RatedLine
from pricing.money import Currency, Money, plain
from pricing.periods import Period
from pricing.plans import Plan
from pricing.price_spec import AMOUNT_PLACES

_KEYS = frozenset(
    {"licence_id", "starts", "licence_fee_decimal", "support_yearly_decimal"} | {"renews_on", "support_ends"}
)


@dataclass(frozen=True)
class Licence:
    licence_id: str
    starts: datetime
    # Minor units; None takes the catalog's ($50,000 and $10,000 a year by default).
    licence_fee: Decimal | None = None
    support_yearly: Decimal | None = None
    # (month, day) on which support years start, in UTC.
    renews_on: tuple[int, int] = (1, 1)
    support_ends: datetime | None = None  # no support year starts at or after this

    def __post_init__(self) -> None:
        month, day = self.renews_on
        try:  # a year without 29 February: a renewal date every year has
            datetime(2023, month, day)
        except ValueError:
            raise InvalidSettings("renews_on", "must be a month and day that every year has") from None

    def next_renewal(self, after: datetime) -> datetime:
        """The first renewal date strictly after `after`."""
        month, day = self.renews_on
        candidate = datetime(after.year, month, day, tzinfo=UTC)
        return candidate if candidate > after else candidate.replace(year=after.year + 1)

    def support_terms(self, until: datetime) -> Iterator[Period]:
        """Support terms that start before `until`: a first, possibly short one, then years."""
        start = self.starts
        while start < until and (self.support_ends is None or start < self.support_ends):
            end = self.next_renewal(start)
            yield Period(start, end)
            start = end

    def to_json(self) -> dict[str, object]:
        month, day = self.renews_on
        document: dict[str, object] = {
            "licence_id": self.licence_id,
            "starts": instant_text(self.starts),
            "renews_on": f"{month:02d}-{day:02d}",
            "support_ends": None if self.support_ends is None else instant_text(self.support_ends),
        }
        if self.licence_fee is not None:
            document["licence_fee_decimal"] = plain(self.licence_fee)
        if self.support_yearly is not None:
            document["support_yearly_decimal"] = plain(self.support_yearly)
        return document

    @classmethod
    def from_json(cls, document: object, path: str = "licence") -> Licence:
        licence = as_object(document, path, InvalidSettings)
        reject_unknown_keys(licence, _KEYS, path, InvalidSettings)
        ends = licence.get("support_ends")
        return cls(
            licence_id=as_string(licence.get("licence_id"), child(path, "licence_id"), InvalidSettings),
            starts=as_instant(licence.get("starts"), child(path, "starts"), InvalidSettings),
            licence_fee=_amount(licence.get("licence_fee_decimal"), child(path, "licence_fee_decimal")),
            support_yearly=_amount(
                licence.get("support_yearly_decimal"),
                child(path, "support_yearly_decimal"),
            ),
            renews_on=_month_day(licence.get("renews_on", "01-01"), child(path, "renews_on")),
            support_ends=None
            if ends is None
            else as_instant(ends, child(path, "support_ends"), InvalidSettings),
        )


def _amount(value: object, field: str) -> Decimal | None:
    if value is None:
        return None
    return as_decimal(value, field, InvalidSettings, max_places=AMOUNT_PLACES)


def _month_day(value: object, field: str) -> tuple[int, int]:
    text = as_string(value, field, InvalidSettings)
    month, _, day = text.partition("-")
    try:
        datetime(2023, int(month), int(day))  # a year without 29 February
    except ValueError:
        raise InvalidSettings(field, 'must be "MM-DD" that every year has, such as "01-01"') from None
    return int(month), int(day)


def licence_lines(
    licence: Licence,
    period: Period,
    plan_at: Callable[[datetime], Plan],
    currency: Currency,
) -> list[RatedLine]:
    """The licence fee if the licence starts in `period`, and every support term starting in it."""
    lines = []
    if period.contains(licence.starts):
        fee = _or_default(licence.licence_fee, plan_at(licence.starts).licence_fee)
        lines.append(
            RatedLine(
                kind=LineKind.LICENCE,
                description=f"Perpetual licence {licence.licence_id}",
                period=Period(licence.starts, period.end),
                quantity=Decimal(1),
                unit="licence",
                unit_price=fee,
                amount=Money(fee, currency),
                details=(("licence", licence.licence_id),),
            )
        )
    for term in licence.support_terms(until=period.end):
        if period.contains(term.start):
            yearly = _or_default(licence.support_yearly, plan_at(term.start).support_yearly)
            lines.append(_support_line(licence, term, yearly, currency))
    return lines


def _support_line(licence: Licence, term: Period, yearly: Decimal, currency: Currency) -> RatedLine:
    days = (term.end.date() - term.start.date()).days
    year_days = (term.end.date() - term.end.date().replace(year=term.end.year - 1)).days
    share = "" if days == year_days else f", prorated {days}/{year_days} of a year"
    last_day = term.end.date().toordinal() - 1
    return RatedLine(
        kind=LineKind.SUPPORT,
        description=(
            f"Support for licence {licence.licence_id}, {term.start.date()} to "
            f"{datetime.fromordinal(last_day).date()}{share}"
        ),
        period=term,
        quantity=Decimal(days) / Decimal(year_days),
        unit="year",
        unit_price=yearly,
        # Multiply before dividing, so a share such as 292/365 gives an exact amount.
        amount=Money(yearly * days / year_days, currency),
        details=(
            ("licence", licence.licence_id),
            ("start", term.start.date().isoformat()),
            ("end", datetime.fromordinal(last_day).date().isoformat()),
            ("days", str(days)),
            ("year_days", str(year_days)),
        ),
    )


def _or_default(negotiated: Decimal | None, catalog: Decimal) -> Decimal:
    return catalog if negotiated is None else negotiated
