"""Evaluates the alerts: a loop in every API replica (beside the delivery worker), every
`notifications_interval_s` (1 s by default), over the alerts that have not fired in this billing
period yet, so a usage or spend alert fires within seconds of the usage that crossed it.

Spend is rated the way the month-to-date quote does (`Invoicer.rate_many`: live usage, including
what the shard actors have not stored yet, at the prices in force) and converted and rounded as
the invoice's lines would be (`invoice_lines`). Both come from the composition root as a
`SpendRating`: invoicing records outbox events, so notifications does not import it. Forecast alerts change only as fast
as forecasts and usage do, so they are evaluated every `FORECAST_EVERY_S`.

Several replicas may evaluate the same alert at once: the firing row, unique per alert and
occurrence, is inserted in the transaction that records the outbox event, so one of them emits.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from infra import alert_store, fx_store, pricing_store
from notifications import metrics, outbox
from notifications.alert_rules import (
    AlertKind,
    InvoiceLines,
    balance_low,
    expiring_grants,
    first_crossing,
    invoiced_amount,
    projected_totals,
    reached,
)
from notifications.events import EventType
from pricing.errors import PricingError
from pricing.fx import ECB_SOURCE, FxRate, RateTable
from pricing.money import Currency, Money
from pricing.periods import Period
from pricing.rating import rate_period
from pricing.usage import HourlyUsage

log = logging.getLogger(__name__)

FORECAST_EVERY_S = 30.0
RATED_KINDS = {AlertKind.USAGE, AlertKind.SPEND, AlertKind.SPEND_FORECAST}
CREDIT_KINDS = {AlertKind.CREDITS_BALANCE, AlertKind.CREDITS_EXPIRING}


class SpendRating(Protocol):
    """What the evaluator asks of invoicing: `Invoicer.rate_many` (tenant -> a TenantRating with
    `usage`, `rating`, `settings`, `generations`, or the tenant's error), the catalog of a
    generation (the pricing cache's), and `invoice_lines`."""

    async def rate_many(self, tenant_ids: list[str], period: Period) -> Mapping[str, Any]: ...

    async def catalog(self, generation: Any) -> Any: ...

    @property
    def invoice_lines(self) -> InvoiceLines: ...


class AlertEvaluator:
    def __init__(self, engine: AsyncEngine, spend: SpendRating, fx_source: str | None, interval_s: float) -> None:
        self.engine, self.spend, self.interval_s = engine, spend, interval_s
        self.fx_source = fx_source or ECB_SOURCE
        self._forecasts_due = 0.0  # monotonic time of the next forecast evaluation

    async def run_forever(self) -> None:
        while True:
            try:
                await self.tick(datetime.now(UTC))
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("alert evaluation failed")
            await asyncio.sleep(self.interval_s)

    async def tick(self, now: datetime, *, forecasts: bool | None = None) -> list[str]:
        """Evaluate every alert not yet fired this period at `now`; the ids of the events fired.
        `forecasts` forces (or skips) the forecast alerts; by default they run every 30 s."""
        period = Period.calendar_month(now.year, now.month)
        occurrence = period.start.isoformat()
        if forecasts is None:
            forecasts = time.monotonic() >= self._forecasts_due
        if forecasts:
            self._forecasts_due = time.monotonic() + FORECAST_EVERY_S
        async with self.engine.connect() as conn:
            alerts = [
                row
                for row in await alert_store.unfired(conn, occurrence)
                if forecasts or row.kind != AlertKind.SPEND_FORECAST
            ]
        if not alerts:
            return []
        fired: list[str] = []
        rated_tenants = sorted({a.tenant_id for a in alerts if a.kind in RATED_KINDS})
        rated = await self.spend.rate_many(rated_tenants, period) if rated_tenants else {}
        fx = _Rates(self.engine, self.fx_source)
        forecast = await self._forecasts(
            [a.tenant_id for a in alerts if a.kind == AlertKind.SPEND_FORECAST], now.date(), period
        )
        credit_rows = [a for a in alerts if a.kind in CREDIT_KINDS]
        ledgers: dict[str, Any] = {}
        if credit_rows:
            async with self.engine.connect() as conn:
                ledgers = await pricing_store.load_ledgers(conn, {a.tenant_id: a.tenant_currency for a in credit_rows})
            grant_firings = await self._grant_firings([a.alert_id for a in credit_rows])
        for alert in alerts:
            kind = AlertKind(alert.kind)
            try:
                if kind in RATED_KINDS:
                    rating = rated.get(alert.tenant_id)
                    if rating is None or isinstance(rating, Exception):  # not found, settling, unpriceable
                        raise _NotRated(repr(rating))
                    found = await self._rated(alert, kind, rating, period, now, fx, forecast)
                elif kind is AlertKind.CREDITS_BALANCE:
                    found = _balance(alert, ledgers[alert.tenant_id], now, occurrence)
                else:
                    found = _expiring(alert, ledgers[alert.tenant_id], now, grant_firings)
            except (PricingError, LookupError, _NotRated) as error:
                metrics.count(metrics.alert_evaluations, tags={"kind": kind.value, "outcome": "error"})
                log.debug("alert %s not evaluated: %s", alert.alert_id, error)
                continue
            if not found:
                metrics.count(metrics.alert_evaluations, tags={"kind": kind.value, "outcome": "quiet"})
            for event_type, key, data in found:
                event_id = await self._fire(alert, key, event_type, data)
                if event_id is not None:
                    fired.append(event_id)
                    metrics.count(metrics.alert_evaluations, tags={"kind": kind.value, "outcome": "fired"})
        return fired

    async def _rated(
        self,
        alert: Any,
        kind: AlertKind,
        rated: Any,
        period: Period,
        now: datetime,
        fx: _Rates,
        forecast: _Forecasts,
    ) -> list[tuple[EventType, str, dict[str, Any]]]:
        occurrence = period.start.isoformat()
        base = _base(alert, period)
        if kind is AlertKind.USAGE:
            quantity = rated.usage.get(alert.meter, Decimal(0))
            if not reached(quantity, alert.threshold):
                return []
            return [(EventType.USAGE_THRESHOLD_CROSSED, occurrence, base | {"quantity": str(quantity)})]
        currency = Currency.of(alert.tenant_currency)
        rate = await fx.rate(rated.rating.currency, currency, min(now.date(), _last_day(period)))
        threshold = Money.from_major(alert.threshold, currency)
        if kind is AlertKind.SPEND:
            amount = invoiced_amount(self.spend.invoice_lines, rated.rating, rate, currency)
            if not threshold <= amount:
                return []
            return [(EventType.SPEND_THRESHOLD_CROSSED, occurrence, base | {"amount": amount.format_major()})]
        daily = forecast.medians.get(alert.tenant_id)
        if forecast.version is None or not daily:
            return []  # no forecast of this tenant to project with
        catalog = await self.spend.catalog(rated.generations.catalog)
        amounts = []
        for day, totals in projected_totals(now.date(), period.end.date(), rated.usage, daily):
            usage = HourlyUsage(period.start, **totals)
            rating = rate_period([usage], rated.settings, catalog, period)
            amounts.append((day, invoiced_amount(self.spend.invoice_lines, rating, rate, currency)))
        projected = amounts[-1][1]
        crossing = first_crossing(amounts, threshold)
        if crossing is None:
            return []
        data = base | {
            "projected_amount": projected.format_major(),
            "amount_to_date": invoiced_amount(self.spend.invoice_lines, rated.rating, rate, currency).format_major(),
            "expected_crossing_date": crossing.isoformat(),
            "model_version": forecast.version,
        }
        return [(EventType.SPEND_FORECAST_EXCEEDS_THRESHOLD, occurrence, data)]

    async def _fire(self, alert: Any, occurrence: str, event_type: EventType, data: dict[str, Any]) -> str | None:
        async with self.engine.begin() as conn:
            if not await alert_store.claim_firing(conn, alert.alert_id, occurrence):
                return None  # another replica fired it a moment ago
            event_id = await outbox.record(conn, event_type, alert.tenant_id, data)
            await alert_store.set_firing_event(conn, alert.alert_id, occurrence, event_id)
        log.info("alert %s fired (%s) for %s", alert.alert_id, event_type, alert.tenant_id)
        return event_id

    async def _forecasts(self, tenant_ids: list[str], today: date, period: Period) -> _Forecasts:
        if not tenant_ids:
            return _Forecasts(None, {})
        async with self.engine.connect() as conn:
            version = await alert_store.latest_usage_model(conn)
            if version is None:
                return _Forecasts(None, {})
            medians = await alert_store.forecast_medians(
                conn, version, sorted(set(tenant_ids)), today - timedelta(days=35), _last_day(period)
            )
        return _Forecasts(version, medians)

    async def _grant_firings(self, alert_ids: list[Any]) -> set[tuple[Any, str]]:
        async with self.engine.connect() as conn:
            return await alert_store.fired_occurrences(conn, alert_ids)


class _NotRated(Exception):
    """The tenant's period could not be rated now (its error is the message)."""


class _Forecasts:
    def __init__(self, version: str | None, medians: Mapping[str, Mapping[date, Mapping[str, Decimal]]]) -> None:
        self.version, self.medians = version, medians


class _Rates:
    """Exchange rates for one evaluation, read once when first needed."""

    def __init__(self, engine: AsyncEngine, source: str) -> None:
        self.engine, self.source = engine, source
        self._table: RateTable | None = None

    async def rate(self, prices: Currency, billing: Currency, on: date) -> FxRate | None:
        if prices == billing:
            return None
        if self._table is None:
            async with self.engine.connect() as conn:
                self._table = await fx_store.load_table(conn, self.source)
        return self._table.rate(prices, billing, on)


def _base(alert: Any, period: Period) -> dict[str, Any]:
    return {
        "alert_id": str(alert.alert_id),
        "tenant_id": alert.tenant_id,
        "kind": alert.kind,
        "meter": alert.meter,
        "threshold": str(alert.threshold),
        "currency": alert.currency,
        "period": period.to_json(),
    }


def _balance(alert: Any, ledger: Any, now: datetime, occurrence: str) -> list[tuple[EventType, str, dict[str, Any]]]:
    balance = balance_low(ledger, now, alert.threshold)
    if balance is None:
        return []
    period = Period.calendar_month(now.year, now.month)
    return [(EventType.CREDITS_BALANCE_LOW, occurrence, _base(alert, period) | {"balance": balance.format_major()})]


def _expiring(
    alert: Any, ledger: Any, now: datetime, fired: set[tuple[Any, str]]
) -> list[tuple[EventType, str, dict[str, Any]]]:
    found = []
    period = Period.calendar_month(now.year, now.month)
    for balance in expiring_grants(ledger, now, alert.threshold):
        key = f"grant:{balance.grant.grant_id}"
        if (alert.alert_id, key) in fired:
            continue
        remaining = Money(balance.remaining, ledger.currency)
        expires = balance.grant.expires_at
        data = _base(alert, period) | {
            "grant_id": balance.grant.grant_id,
            "remaining": remaining.format_major(),
            "expires_at": None if expires is None else expires.isoformat(),
        }
        found.append((EventType.CREDITS_EXPIRING, key, data))
    return found


def _last_day(period: Period) -> date:
    return (period.end - timedelta(days=1)).date()


