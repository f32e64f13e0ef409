"""Revenue analytics from invoices, aggregated in PostgreSQL.

Revenue is the subtotal of finalized and paid invoices (net of tax, after credits; drafts and
voided invoices are not revenue), counted in the month its period starts and converted into the
reporting currency at the reference rate in force on the period's last day (the latest rate on or
before it, through EUR). Every sum is NUMERIC in PostgreSQL and Decimal here; figures are rounded
to the reporting currency's minor unit (ROUND_HALF_UP) only when reported.

- MRR: revenue of the latest month in the range; ARR = 12 x MRR.
- ARPU: MRR over the tenants invoiced that month.
- NRR: revenue in the latest month from the tenants invoiced in the base month (twelve months
  earlier, or the range's first month when it is shorter), over their revenue in the base month.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Row,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    select,
    text,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.selectable import ScalarSelect, Subquery

from forecasting.data import midnight
from forecasting.fx_rates import MissingRate
from infra.schema import fx_rates, invoices, tenants
from pricing.money import minor_unit_digits

REVENUE_STATUSES = ("finalized", "paid")


@dataclass
class RevenueReport:
    currency: str
    months: list[str] = field(default_factory=list)  # YYYY-MM, ascending
    by_month: dict[str, Decimal] = field(default_factory=dict)
    by_month_tier: dict[str, dict[str, Decimal]] = field(default_factory=dict)
    by_tier: dict[str, Decimal] = field(default_factory=dict)
    by_region: dict[str, Decimal] = field(default_factory=dict)
    by_currency: dict[str, dict[str, Decimal]] = field(default_factory=dict)  # invoiced, converted
    customers: dict[str, int] = field(default_factory=dict)  # tenants invoiced per month
    top_tenants: list[tuple[str, str, Decimal]] = field(default_factory=list)  # id, tier, revenue
    mrr: Decimal = Decimal(0)
    arr: Decimal = Decimal(0)
    arpu: Decimal = Decimal(0)
    nrr: Decimal | None = None  # a ratio, 1.05 = 105%
    nrr_base_month: str | None = None

    def to_json(self) -> dict[str, object]:
        """Amounts as decimal strings in major units (design.md §4)."""
        money = self.money
        return {
            "currency": self.currency,
            "months": self.months,
            "mrr": money(self.mrr),
            "arr": money(self.arr),
            "arpu": money(self.arpu),
            "nrr": None if self.nrr is None else str(self.nrr.quantize(Decimal("0.0001"), ROUND_HALF_UP)),
            "nrr_base_month": self.nrr_base_month,
            "by_month": {m: money(v) for m, v in self.by_month.items()},
            "by_month_tier": {
                m: {t: money(v) for t, v in tiers.items()} for m, tiers in self.by_month_tier.items()
            },
            "by_tier": {k: money(v) for k, v in self.by_tier.items()},
            "by_region": {k: money(v) for k, v in self.by_region.items()},
            "by_currency": {
                k: {"invoiced": str(v["invoiced"]), "converted": money(v["converted"])}
                for k, v in self.by_currency.items()
            },
            "customers": self.customers,
            "top_tenants": [
                {"tenant_id": t, "tier": tier, "revenue": money(v)} for t, tier, v in self.top_tenants
            ],
        }

    def money(self, amount: Decimal) -> str:
        return str(report_round(amount, self.currency))


def report_round(amount: Decimal, currency: str) -> Decimal:
    return amount.quantize(Decimal(1).scaleb(-minor_unit_digits(currency)), ROUND_HALF_UP)


def _rate(currency: ColumnElement[str], day: ColumnElement[date]) -> ScalarSelect[Any]:
    """The latest per-EUR rate of `currency` on or before `day`, as a scalar subquery."""
    return (
        select(fx_rates.c.per_eur)
        .where(
            fx_rates.c.source == bindparam("fx_source"),
            fx_rates.c.currency == currency,
            fx_rates.c.rate_date <= day,
        )
        .order_by(fx_rates.c.rate_date.desc())
        .limit(1)
        .scalar_subquery()
    )


def revenue_rows(reporting: str, start: date | None, end: date | None, prefix: str | None) -> Subquery:
    """One row per invoice counted as revenue, with its tenant's tier and region, its month and
    its subtotal converted into `reporting` (NULL when a rate is missing)."""
    last_day = cast(func.timezone("UTC", invoices.c.period_end) - text("interval '1 day'"), Date)
    eur = literal(Decimal(1))
    from_rate = case((invoices.c.currency == "eur", eur), else_=_rate(invoices.c.currency, last_day))
    to_rate = eur if reporting == "eur" else _rate(literal(reporting), last_day)
    month = func.to_char(func.timezone("UTC", invoices.c.period_start), "YYYY-MM")
    conditions: list[ColumnElement[bool]] = [invoices.c.status.in_(REVENUE_STATUSES)]
    if start:
        conditions.append(invoices.c.period_start >= midnight(start.replace(day=1)))
    if end:
        conditions.append(invoices.c.period_start < midnight(end.replace(day=1)))
    if prefix:
        conditions.append(invoices.c.tenant_id.startswith(prefix, autoescape=True))
    return (
        select(
            invoices.c.tenant_id,
            tenants.c.tier,
            func.coalesce(tenants.c.region, "unknown").label("region"),
            invoices.c.currency,
            month.label("month"),
            invoices.c.subtotal,
            (invoices.c.subtotal * to_rate / from_rate).label("converted"),
        )
        .select_from(invoices.join(tenants, tenants.c.tenant_id == invoices.c.tenant_id))
        .where(and_(*conditions))
        .subquery("revenue")
    )


async def revenue_report(
    conn: AsyncConnection,
    fx_source: str,
    currency: str = "usd",
    start: date | None = None,
    end: date | None = None,
    prefix: str | None = None,
    top: int = 10,
) -> RevenueReport:
    """Revenue of the invoices whose period starts in [start's month, end's month), optionally
    of the tenants whose id starts with `prefix`, in `currency`."""
    currency = currency.lower()
    rows = revenue_rows(currency, start, end, prefix)
    params = {"fx_source": fx_source}
    report = RevenueReport(currency)
    await _check_rates(conn, rows, params, currency)
    await _groupings(conn, rows, params, report)
    if not report.months:
        return report
    latest = report.months[-1]
    report.mrr = report.by_month[latest]
    report.arr = report.mrr * 12
    report.arpu = report.mrr / report.customers[latest] if report.customers[latest] else Decimal(0)
    report.top_tenants = await _top(conn, rows, params, top)
    report.nrr_base_month = _base_month(report.months)
    report.nrr = await _nrr(conn, rows, params, report.nrr_base_month, latest)
    return report


async def _check_rates(conn: AsyncConnection, rows: Subquery, params: dict[str, str], currency: str) -> None:
    query = select(rows.c.currency, rows.c.month).where(rows.c.converted.is_(None)).distinct().limit(5)
    missing = (await conn.execute(query, params)).all()
    if missing:
        pairs = ", ".join(f"{c.upper()}->{currency.upper()} for {m}" for c, m in missing)
        raise MissingRate(f"no reference rate {pairs}; load rates with `billing fx load`")


async def _groupings(
    conn: AsyncConnection, rows: Subquery, params: dict[str, str], report: RevenueReport
) -> None:
    """Every breakdown in one pass over the invoices: GROUPING SETS."""
    sets = func.grouping_sets(
        tuple_(rows.c.month),
        tuple_(rows.c.month, rows.c.tier),
        tuple_(rows.c.region),
        tuple_(rows.c.currency),
        tuple_(rows.c.tier),
    )
    query = select(
        func.grouping(rows.c.month, rows.c.tier, rows.c.region, rows.c.currency).label("level"),
        rows.c.month,
        rows.c.tier,
        rows.c.region,
        rows.c.currency,
        func.sum(rows.c.subtotal).label("invoiced"),
        func.sum(rows.c.converted).label("converted"),
        func.count(rows.c.tenant_id.distinct()).label("customers"),
    ).group_by(sets)
    for row in await conn.execute(query, params):
        _place(report, row)
    report.months = sorted(report.by_month)
    report.by_month = {m: report.by_month[m] for m in report.months}


def _place(report: RevenueReport, row: Row[Any]) -> None:
    # grouping() bits, most significant first: month, tier, region, currency; 1 = rolled up.
    if row.level == 0b0111:
        report.by_month[row.month] = row.converted
        report.customers[row.month] = row.customers
    elif row.level == 0b0011:
        report.by_month_tier.setdefault(row.month, {})[row.tier] = row.converted
    elif row.level == 0b1101:
        report.by_region[row.region] = row.converted
    elif row.level == 0b1110:
        report.by_currency[row.currency] = {"invoiced": row.invoiced, "converted": row.converted}
    elif row.level == 0b1011:
        report.by_tier[row.tier] = row.converted


async def _top(
    conn: AsyncConnection, rows: Subquery, params: dict[str, str], top: int
) -> list[tuple[str, str, Decimal]]:
    total = func.sum(rows.c.converted)
    query = (
        select(rows.c.tenant_id, rows.c.tier, total.label("revenue"))
        .group_by(rows.c.tenant_id, rows.c.tier)
        .order_by(total.desc(), rows.c.tenant_id)
        .limit(top)
    )
    return [(row.tenant_id, row.tier, row.revenue) for row in await conn.execute(query, params)]


def _base_month(months: list[str]) -> str:
    year, month = (int(part) for part in months[-1].split("-"))
    year_before = f"{year - 1:04d}-{month:02d}"
    return max(year_before, months[0])


async def _nrr(
    conn: AsyncConnection, rows: Subquery, params: dict[str, str], base: str, latest: str
) -> Decimal | None:
    if base == latest:
        return None
    per_tenant = (
        select(
            rows.c.tenant_id,
            func.sum(rows.c.converted).filter(rows.c.month == base).label("base"),
            func.sum(rows.c.converted).filter(rows.c.month == latest).label("latest"),
        )
        .group_by(rows.c.tenant_id)
        .subquery("per_tenant")
    )
    query = select(func.sum(per_tenant.c.base), func.coalesce(func.sum(per_tenant.c.latest), 0)).where(
        per_tenant.c.base.is_not(None)
    )
    base_revenue, kept = (await conn.execute(query, params)).one()
    return kept / base_revenue if base_revenue else None
