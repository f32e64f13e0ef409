"""Hourly usage, the input of rating: one row of `usage_hourly` (a tenant's meters for an hour)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from operator import attrgetter

from pricing.errors import InvalidField, InvalidUsage
from pricing.json_fields import as_decimal, as_instant, as_object, child, instant_text
from pricing.meters import METERS, Meter
from pricing.money import plain
from pricing.periods import check_utc

_ZERO = Decimal(0)


@dataclass(frozen=True, slots=True)
class HourlyUsage:
    """Quantities for the hour starting at `hour` (UTC), in each meter's own unit."""

    hour: datetime
    cpu_seconds: Decimal = _ZERO
    memory_gb_hours: Decimal = _ZERO
    storage_gb_hours: Decimal = _ZERO
    network_gb: Decimal = _ZERO
    executions: Decimal = _ZERO

    def __post_init__(self) -> None:
        try:
            check_utc(self.hour, "hour")
        except InvalidField as error:
            raise InvalidUsage(error.field, error.message) from None
        if self.hour.minute or self.hour.second or self.hour.microsecond:
            raise InvalidUsage("hour", "must be the start of an hour")
        for meter in METERS:
            # Accepts int as well as Decimal (and refuses floats), then stores a Decimal. A Meter
            # is its own field name (a StrEnum): `meter.value` costs an enum descriptor call, and
            # an invoice run reads hundreds of quantities per invoice.
            value = as_decimal(getattr(self, meter), meter, InvalidUsage)
            object.__setattr__(self, meter, value)

    @classmethod
    def stored(cls, hour: datetime, quantities: Sequence[Decimal]) -> HourlyUsage:
        """An hour as the usage store sums it (`METERS` order): already checked on its way in, one
        event at a time, so not checked again. An invoice run makes hundreds of thousands of
        these, and checking each quantity again was a sixth of rating's time."""
        usage = object.__new__(cls)
        for set_field, value in zip(_FIELD_SETTERS, (hour, *quantities), strict=True):
            set_field(usage, value)
        return usage

    def quantity(self, meter: Meter) -> Decimal:
        value: Decimal = getattr(self, meter)
        return value

    def quantities(self) -> tuple[Decimal, ...]:
        """The quantities in `METERS` order."""
        quantities: tuple[Decimal, ...] = _QUANTITIES(self)
        return quantities

    def to_json(self) -> dict[str, object]:
        """The row shape of `GET /usage` (design.md §4): `start` and one decimal string per meter."""
        row: dict[str, object] = {"start": instant_text(self.hour)}
        row.update((meter.value, plain(self.quantity(meter))) for meter in METERS)
        return row

    @classmethod
    def from_json(cls, document: object, field: str = "usage") -> HourlyUsage:
        row = as_object(document, field, InvalidUsage)
        hour = as_instant(row.get("start"), child(field, "start"), InvalidUsage)
        quantities = {
            meter.value: as_decimal(row.get(meter.value, 0), child(field, meter.value), InvalidUsage)
            for meter in METERS
        }
        try:
            return cls(hour, **quantities)
        except InvalidUsage as error:
            raise error.under(field) from None


# The slots' own setters, "hour" then METERS order: `stored` fills a frozen instance through them
# (object.__setattr__ by a Meter, a StrEnum, was twice the cost).
_FIELD_SETTERS = tuple(HourlyUsage.__dict__[name].__set__ for name in ("hour", *(m.value for m in METERS)))
_QUANTITIES = attrgetter(*(m.value for m in METERS))
