"""Spot prices: a meter's unit price as a time series, one price per hour.

Rating charges each hour's usage at that hour's spot price, so a period's spot charge is the sum
over hours of usage x price: the integral of usage times price over the period. Hours the
series does not cover fall back to the tenant's contract or catalog price.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from pricing.errors import InvalidSettings
from pricing.json_fields import (
    as_currency,
    as_decimal,
    as_instant,
    as_list,
    as_object,
    as_string,
    child,
    instant_text,
    reject_unknown_keys,
)
from pricing.meters import Meter
from pricing.money import Currency, plain
from pricing.price_spec import AMOUNT_PLACES, meter_key

_KEYS = frozenset({"name", "meter", "currency", "prices"})
_POINT_KEYS = frozenset({"hour", "unit_amount_decimal"})


@dataclass(frozen=True)
class SpotSeries:
    meter: Meter
    currency: Currency
    # Hour start (UTC) -> minor units per billing unit (per CPU-hour for cpu_seconds).
    unit_amounts: Mapping[datetime, Decimal]
    name: str = "spot"

    def unit_amount_at(self, hour: datetime) -> Decimal | None:
        return self.unit_amounts.get(hour)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "meter": self.meter.value,
            "currency": self.currency.code,
            "prices": [
                {"hour": instant_text(hour), "unit_amount_decimal": plain(amount)}
                for hour, amount in sorted(self.unit_amounts.items())
            ],
        }

    @classmethod
    def from_json(cls, document: object, path: str = "spot") -> SpotSeries:
        series = as_object(document, path, InvalidSettings)
        reject_unknown_keys(series, _KEYS, path, InvalidSettings)
        meter_field = child(path, "meter")
        return cls(
            meter=meter_key(
                as_string(series.get("meter"), meter_field, InvalidSettings),
                meter_field,
                InvalidSettings,
            ),
            currency=as_currency(series.get("currency"), child(path, "currency"), InvalidSettings),
            unit_amounts=_points(series.get("prices"), child(path, "prices")),
            name=as_string(series.get("name", "spot"), child(path, "name"), InvalidSettings),
        )


def _points(document: object, field: str) -> dict[datetime, Decimal]:
    points: dict[datetime, Decimal] = {}
    for index, raw in enumerate(as_list(document, field, InvalidSettings)):
        where = child(field, index)
        point = as_object(raw, where, InvalidSettings)
        reject_unknown_keys(point, _POINT_KEYS, where, InvalidSettings)
        hour = as_instant(point.get("hour"), child(where, "hour"), InvalidSettings)
        if hour.minute or hour.second or hour.microsecond:
            raise InvalidSettings(child(where, "hour"), "must be the start of an hour")
        if hour in points:
            raise InvalidSettings(child(where, "hour"), "repeats an hour already priced")
        points[hour] = as_decimal(
            point.get("unit_amount_decimal"),
            child(where, "unit_amount_decimal"),
            InvalidSettings,
            max_places=AMOUNT_PLACES,
        )
    return points
