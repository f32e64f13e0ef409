"""Enterprise contracts: a tenant's negotiated terms, overriding the catalog while in force.

A contract may set its own rate for any meter (a meter it leaves out keeps the catalog's
enterprise price), take a percentage off every usage charge, and set the monthly minimum
commitment (unset: the catalog's, $5,000). When usage for a period falls short of the
minimum, rating adds a true-up line for the difference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from itertools import pairwise

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
from pricing.meters import Meter
from pricing.money import plain
from pricing.price import Price
from pricing.price_spec import AMOUNT_PLACES, parse_meter_prices

_KEYS = frozenset(
    {"contract_id", "effective_from", "effective_to", "rates", "discount_percent"}
    | {"minimum_monthly_decimal"}
)


@dataclass(frozen=True)
class Contract:
    contract_id: str
    effective_from: datetime
    effective_to: datetime | None = None  # exclusive; None runs until replaced
    rates: Mapping[Meter, Price] = field(default_factory=dict)
    discount_percent: Decimal = Decimal(0)  # off every usage charge while in force
    minimum_monthly: Decimal | None = None  # minor units; None takes the catalog's

    def in_force(self, instant: datetime) -> bool:
        return self.effective_from <= instant and (self.effective_to is None or instant < self.effective_to)

    def to_json(self) -> dict[str, object]:
        document: dict[str, object] = {
            "contract_id": self.contract_id,
            "effective_from": instant_text(self.effective_from),
            "effective_to": None if self.effective_to is None else instant_text(self.effective_to),
            "rates": {meter.value: price.to_spec() for meter, price in self.rates.items()},
            "discount_percent": plain(self.discount_percent),
        }
        if self.minimum_monthly is not None:
            document["minimum_monthly_decimal"] = plain(self.minimum_monthly)
        return document

    @classmethod
    def from_json(cls, document: object, path: str = "contract") -> Contract:
        contract = as_object(document, path, InvalidSettings)
        reject_unknown_keys(contract, _KEYS, path, InvalidSettings)
        starts = as_instant(
            contract.get("effective_from"),
            child(path, "effective_from"),
            InvalidSettings,
        )
        ends = contract.get("effective_to")
        result = cls(
            contract_id=as_string(contract.get("contract_id"), child(path, "contract_id"), InvalidSettings),
            effective_from=starts,
            effective_to=None
            if ends is None
            else as_instant(ends, child(path, "effective_to"), InvalidSettings),
            rates=parse_meter_prices(contract.get("rates", {}), child(path, "rates"), InvalidSettings),
            discount_percent=_percent(contract.get("discount_percent", 0), child(path, "discount_percent")),
            minimum_monthly=_minimum(
                contract.get("minimum_monthly_decimal"),
                child(path, "minimum_monthly_decimal"),
            ),
        )
        if result.effective_to is not None and result.effective_to <= starts:
            raise InvalidSettings(child(path, "effective_to"), "must be after effective_from")
        return result


def _percent(value: object, field: str) -> Decimal:
    percent = as_decimal(value, field, InvalidSettings)
    if percent > 100:
        raise InvalidSettings(field, "must be between 0 and 100")
    return percent


def _minimum(value: object, field: str) -> Decimal | None:
    if value is None:
        return None
    return as_decimal(value, field, InvalidSettings, max_places=AMOUNT_PLACES)


def check_no_overlap(contracts: Sequence[Contract], field: str) -> None:
    """At most one contract is in force at any instant, so every hour has one set of terms."""
    ordered = sorted(contracts, key=lambda contract: contract.effective_from)
    for earlier, later in pairwise(ordered):
        if earlier.effective_to is None or earlier.effective_to > later.effective_from:
            raise InvalidSettings(
                field,
                f"contracts {earlier.contract_id} and {later.contract_id} overlap",
            )


def contract_at(contracts: Sequence[Contract], instant: datetime) -> Contract | None:
    return next((contract for contract in contracts if contract.in_force(instant)), None)
