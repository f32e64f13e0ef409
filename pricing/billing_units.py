"""The units the tier table prices in, and how a meter's own quantity converts to them.

The kernel reports `cpu_seconds`; the price sheet charges per CPU-hour, so a CPU-hour is 3600
of the meter's units. The conversion is exact decimal division, done once per period total.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from pricing.errors import InvalidCatalog
from pricing.json_fields import (
    as_decimal,
    as_object,
    as_string,
    child,
    reject_unknown_keys,
)
from pricing.money import plain

_KEYS = frozenset({"unit", "plural", "divide_by"})


@dataclass(frozen=True, slots=True)
class BillingUnit:
    name: str  # "CPU-hour"
    plural: str  # "CPU-hours"
    divide_by: Decimal = Decimal(1)  # meter units per billing unit

    def from_meter(self, quantity: Decimal) -> Decimal:
        return quantity if self.divide_by == 1 else quantity / self.divide_by

    def to_json(self) -> dict[str, object]:
        return {
            "unit": self.name,
            "plural": self.plural,
            "divide_by": plain(self.divide_by),
        }

    @classmethod
    def from_json(cls, document: object, field: str) -> BillingUnit:
        unit = as_object(document, field, InvalidCatalog)
        reject_unknown_keys(unit, _KEYS, field, InvalidCatalog)
        name = as_string(unit.get("unit"), child(field, "unit"), InvalidCatalog)
        plural = as_string(unit.get("plural", name + "s"), child(field, "plural"), InvalidCatalog)
        divide_by = as_decimal(unit.get("divide_by", 1), child(field, "divide_by"), InvalidCatalog)
        if divide_by <= 0:
            raise InvalidCatalog(child(field, "divide_by"), "must be positive")
        return cls(name, plural, divide_by)
