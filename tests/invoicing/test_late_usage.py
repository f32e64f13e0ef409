"""Late usage re-rates the whole period, so a graduated price charges the late units at the tier
the period reached, and the line is the difference from what was charged."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from invoicing.composition import InvoiceLine
from invoicing.late_usage import BilledPeriod, late_usage_line, usage_totals
from pricing.lines import LineKind
from pricing.meters import Meter
from pricing.money import Currency, Money
from pricing.periods import Period
from pricing.usage import HourlyUsage

USD = Currency.of("usd")
OCTOBER = Period.calendar_month(2026, 10)


def line(cents: str) -> InvoiceLine:
    return InvoiceLine(
        LineKind.USAGE,
        Meter.CPU_SECONDS,
        "CPU",
        OCTOBER,
        Decimal(1),
        "CPU-hour",
        Decimal(cents),
        Money(Decimal(cents), USD),
    )


def billed(charged_cents: str, cpu: str) -> BilledPeriod:
    usage = {
        "cpu_seconds": Decimal(cpu),
        "memory_gb_hours": Decimal(0),
        "storage_gb_hours": Decimal(0),
        "network_gb": Decimal(0),
        "executions": Decimal(0),
    }
    return BilledPeriod(
        "5f0c0d9e-0000-0000-0000-000000000000",
        "ENIS-2026-000012",
        OCTOBER,
        usage,
        Money(Decimal(charged_cents), USD),
    )


def test_the_line_charges_the_difference_and_says_what_changed():
    previous = billed("100", "72000")
    now = {**previous.usage, "cpu_seconds": Decimal(97200)}
    adjustment = late_usage_line(previous, now, [line("100"), line("35")])
    assert adjustment.kind is LineKind.LATE_USAGE and adjustment.amount == Money(Decimal(35), USD)
    assert "ENIS-2026-000012" in adjustment.description and "+25200 cpu_seconds" in adjustment.description
    assert "2026-10-01 to 2026-11-01" in adjustment.description


def test_usage_that_rates_lower_now_gives_a_negative_line():
    adjustment = late_usage_line(billed("500", "72000"), billed("0", "72000").usage, [line("450")])
    assert adjustment.amount == Money(Decimal(-50), USD)


def test_usage_totals_sum_every_meter_over_the_hours():
    hours = [
        HourlyUsage(datetime(2026, 10, 1, h, tzinfo=UTC), cpu_seconds=Decimal(10), executions=Decimal(h))
        for h in range(3)
    ]
    totals = usage_totals(hours)
    assert totals["cpu_seconds"] == 30 and totals["executions"] == 3 and totals["network_gb"] == 0
