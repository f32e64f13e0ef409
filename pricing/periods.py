"""Billing periods: half-open UTC intervals, and how many calendar months one spans.

Monthly terms (the lite base fee and quota, the enterprise minimum) scale with the period: a
calendar month counts 1, and a part of a month counts its share of that month's hours, so a
period from 10 March to 1 April counts 22/31 of a month.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import pairwise

from pricing.errors import InvalidField, InvalidSettings
from pricing.json_fields import as_instant, as_object, child, instant_text
from pricing.money import exact


def check_utc(instant: datetime, field: str) -> None:
    if instant.tzinfo is None or instant.utcoffset() != timedelta(0):
        raise InvalidField(field, "must be an aware datetime in UTC")


def on_whole_hour(instant: datetime) -> bool:
    """Whether an aware instant falls on a whole UTC hour (usage is kept per hour)."""
    offset = instant.utcoffset()
    return not (instant.minute or instant.second or instant.microsecond) and (
        offset is None or offset.total_seconds() % 3600 == 0
    )


def month_start(instant: datetime) -> datetime:
    return instant.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def next_month(start: datetime) -> datetime:
    return (start + timedelta(days=32)).replace(day=1)


@dataclass(frozen=True, slots=True)
class Period:
    """[start, end) in UTC."""

    start: datetime
    end: datetime

    def __post_init__(self) -> None:
        check_utc(self.start, "period_start")
        check_utc(self.end, "period_end")
        if self.end <= self.start:
            raise InvalidField("period_end", "must be after period_start")

    @classmethod
    def calendar_month(cls, year: int, month: int) -> Period:
        start = datetime(year, month, 1, tzinfo=UTC)
        return cls(start, next_month(start))

    def contains(self, instant: datetime) -> bool:
        return self.start <= instant < self.end

    def overlap(self, other: Period) -> Period | None:
        start, end = max(self.start, other.start), min(self.end, other.end)
        return Period(start, end) if start < end else None

    @exact
    def months(self) -> Decimal:
        """Calendar months covered, each partial month by its share of that month's time."""
        total = Decimal(0)
        for month in self.calendar_months():
            covered = self.overlap(month)
            assert covered is not None  # calendar_months yields overlapping months only
            total += _seconds(covered) / _seconds(month)
        return total

    def calendar_months(self) -> Iterator[Period]:
        start = month_start(self.start)
        while start < self.end:
            end = next_month(start)
            yield Period(start, end)
            start = end

    def split_at(self, instants: Iterable[datetime]) -> list[Period]:
        """This period cut at each instant strictly inside it, in order."""
        cuts = sorted({i for i in instants if self.start < i < self.end})
        bounds = [self.start, *cuts, self.end]
        return [Period(a, b) for a, b in pairwise(bounds)]

    def to_json(self) -> dict[str, object]:
        return {"start": instant_text(self.start), "end": instant_text(self.end)}

    @classmethod
    def from_json(cls, document: object, field: str = "period") -> Period:
        period = as_object(document, field, InvalidSettings)
        start = as_instant(period.get("start"), child(field, "start"), InvalidSettings)
        end = as_instant(period.get("end"), child(field, "end"), InvalidSettings)
        try:
            return cls(start, end)
        except InvalidField as error:
            raise InvalidSettings(child(field, "end"), error.message) from None


def _seconds(period: Period) -> Decimal:
    length = period.end - period.start  # exact, unlike timedelta.total_seconds()
    return Decimal(length.days * 86400 + length.seconds) + Decimal(length.microseconds).scaleb(-6)
