"""The terms in force for one tenant over one period: which price applies to each hour.

Precedence for a meter in an hour: the spot price for that hour if the caller supplied one,
then the rate of the tenant's contract in force, then the catalog version in force for the
tenant's tier. Monthly terms (base fee, quota, minimum) come from the `parts` of the period,
cut wherever a catalog version or a contract starts or ends.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from functools import cached_property

from pricing.billing_units import BillingUnit
from pricing.catalog import Catalog, CatalogVersion
from pricing.contracts import Contract, contract_at
from pricing.errors import CurrencyMismatch
from pricing.meters import Meter
from pricing.per_unit import PerUnitPrice
from pricing.periods import Period
from pricing.plans import Plan
from pricing.price import Price
from pricing.spot import SpotSeries
from pricing.tenant_pricing import TenantPricing


@dataclass(frozen=True)
class PriceSource:
    label: str  # where the price comes from, as the invoice line says it
    price: Price
    # The contract in force: its discount applies to this charge.
    contract: Contract | None
    # The label's parts, for invoices worded in other languages: ("source", "catalog"|"contract"|
    # "spot") and the tier, version, contract or series name.
    details: tuple[tuple[str, str], ...] = ()

    @property
    def key(self) -> tuple[str, str | None]:
        """Charges with the same key share an invoice line."""
        return self.label, None if self.contract is None else self.contract.contract_id


@dataclass(frozen=True)
class TermsPart:
    period: Period
    version: CatalogVersion
    contract: Contract | None

    @cached_property  # asked for each meter's quota and the base fee: counted once
    def months(self) -> Decimal:
        return self.period.months()


class Terms:
    def __init__(
        self,
        tenant: TenantPricing,
        catalog: Catalog,
        period: Period,
        spot: Mapping[Meter, SpotSeries],
    ) -> None:
        self.tenant = tenant
        self.catalog = catalog
        self.period = period
        self.spot = spot
        self.currency = catalog.currency
        self.parts = self._parts()
        self._check_currencies()
        self._standing_prices: dict[tuple[Meter, str | None, str | None], PriceSource | None] = {}
        self._included: dict[Meter, Decimal] = {}

    def _parts(self) -> list[TermsPart]:
        cuts = [version.effective_from for version in self.catalog.versions]
        for contract in self.tenant.contracts:
            cuts.append(contract.effective_from)
            if contract.effective_to is not None:
                cuts.append(contract.effective_to)
        return [
            TermsPart(
                part,
                self.catalog.version_at(part.start),
                contract_at(self.tenant.contracts, part.start),
            )
            for part in self.period.split_at(cuts)
        ]

    def _check_currencies(self) -> None:
        currencies = [series.currency for series in self.spot.values()]
        for contract in self.tenant.contracts:
            currencies += [price.currency for price in contract.rates.values()]
        for currency in currencies:
            if currency != self.currency:
                raise CurrencyMismatch(f"{currency} price for a catalog in {self.currency}")

    def unit(self, meter: Meter) -> BillingUnit:
        return self.catalog.units[meter]

    def plan(self, version: CatalogVersion) -> Plan:
        return version.plan(self.tenant.tier)

    def plan_at(self, instant: datetime) -> Plan:
        return self.plan(self.catalog.version_at(instant))

    def price_at(self, meter: Meter, hour: datetime) -> PriceSource | None:
        """The price of `meter` for the hour starting at `hour`; None if the meter is unpriced."""
        contract = contract_at(self.tenant.contracts, hour)
        series = self.spot.get(meter)
        spot_amount = None if series is None else series.unit_amount_at(hour)
        if series is not None and spot_amount is not None:
            return PriceSource(
                f"{series.name} price",
                PerUnitPrice(series.currency, spot_amount),
                contract,
                (("source", "spot"), ("series", series.name)),
            )
        if contract is not None and meter in contract.rates:
            return self._standing(meter, contract, None)
        return self._standing(meter, contract, self.catalog.version_at(hour))

    def _standing(
        self, meter: Meter, contract: Contract | None, version: CatalogVersion | None
    ) -> PriceSource | None:
        """The contract's rate (no `version`) or the catalog version's price, the same for every
        hour they are in force: made once per Terms, as rating asks for it every hour."""
        key = (
            meter,
            None if contract is None else contract.contract_id,
            None if version is None else version.version,
        )
        if key not in self._standing_prices:
            self._standing_prices[key] = self._source(meter, contract, version)
        return self._standing_prices[key]

    def _source(
        self, meter: Meter, contract: Contract | None, version: CatalogVersion | None
    ) -> PriceSource | None:
        if version is None:
            assert contract is not None
            return PriceSource(
                f"contract {contract.contract_id}",
                contract.rates[meter],
                contract,
                (("source", "contract"), ("contract", contract.contract_id)),
            )
        price = version.prices(self.tenant.tier).get(meter)
        label = f"{self.tenant.tier} tier, catalog {version.version}"
        details = (("source", "catalog"), ("tier", str(self.tenant.tier)), ("version", version.version))
        return None if price is None else PriceSource(label, price, contract, details)

    def included(self, meter: Meter) -> Decimal:
        """The reserved quota of `meter` for the period, in billing units, prorated by month."""
        if meter not in self._included:
            self._included[meter] = sum(
                (
                    self.plan(part.version).included.get(meter, Decimal(0)) * part.months
                    for part in self.parts
                ),
                Decimal(0),
            )
        return self._included[meter]

    def minimum(self) -> Decimal:
        """The minimum commitment for the period, minor units: the contract's, else the plan's."""
        total = Decimal(0)
        for part in self.parts:
            monthly = None if part.contract is None else part.contract.minimum_monthly
            if monthly is None:
                monthly = self.plan(part.version).minimum_monthly
            total += monthly * part.months
        return total
