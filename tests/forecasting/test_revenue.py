"""Revenue analytics against sums computed here, independently, from the invoice rows."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import insert, select

from forecasting.generator_store import fx_source
from forecasting.revenue import report_round, revenue_report
from infra.database import create_engine
from infra.schema import fx_rates, invoices, tenants
from tests.forecasting.conftest import PREFIX, SPEC


def _run(coroutine_function, settings, *args, **kwargs):
    async def go():
        engine = create_engine(settings.database_url, pool_size=1)
        try:
            async with engine.begin() as conn:
                return await coroutine_function(conn, *args, **kwargs)
        finally:
            await engine.dispose()

    return asyncio.run(go())


async def _rows(conn):
    query = (
        select(invoices, tenants.c.tier, tenants.c.region)
        .join(tenants, tenants.c.tenant_id == invoices.c.tenant_id)
        .where(invoices.c.tenant_id.like(PREFIX + "%"))
    )
    rates = await conn.execute(select(fx_rates).where(fx_rates.c.source == fx_source(SPEC)))
    return (await conn.execute(query)).all(), rates.all()


async def _add_draft_and_void(conn):
    """Neither a draft nor a voided invoice is revenue."""
    for status, start in (
        ("draft", datetime(2026, 11, 1, tzinfo=UTC)),
        ("void", datetime(2025, 12, 1, tzinfo=UTC)),
    ):
        await conn.execute(
            insert(invoices).values(
                invoice_id=uuid.uuid4(),
                tenant_id=f"{PREFIX}00001",
                period_start=start,
                period_end=(start + timedelta(days=32)).replace(day=1),
                status=status,
                currency="usd",
                subtotal=Decimal(1000000),
                tax=Decimal(0),
                total=Decimal(1000000),
                issuer="SYNTH",
                number=None if status == "draft" else f"SYNTH-{PREFIX}void",
                finalized_at=None if status == "draft" else start,
                document={},
            )
        )


def _expected(rows, rates, reporting: str, months: set[str] | None = None):
    """The figures, from the rows, in plain Python."""
    table = defaultdict(dict)
    for rate in rates:
        table[rate.currency][rate.rate_date] = rate.per_eur

    def per_eur(currency, day):
        if currency == "eur":
            return Decimal(1)
        return table[currency][max(d for d in table[currency] if d <= day)]

    sums = {key: defaultdict(Decimal) for key in ("month", "tier", "region", "currency", "tenant")}
    tenants_by_month = defaultdict(set)
    per_tenant_month = defaultdict(Decimal)
    for row in rows:
        month = f"{row.period_start:%Y-%m}"
        if row.status not in ("finalized", "paid") or (months and month not in months):
            continue
        day = (row.period_end - timedelta(days=1)).date()
        converted = row.subtotal * per_eur(reporting, day) / per_eur(row.currency, day)
        for key, value in (
            ("month", month),
            ("tier", row.tier),
            ("region", row.region),
            ("currency", row.currency),
        ):
            sums[key][value] += converted
        sums["tenant"][row.tenant_id] += converted
        tenants_by_month[month].add(row.tenant_id)
        per_tenant_month[row.tenant_id, month] += converted
    return sums, tenants_by_month, per_tenant_month


def _money(amount, currency="eur"):
    return str(report_round(amount, currency))


def test_revenue_equals_the_sums_of_the_invoice_rows(private_settings, history):
    _run(_add_draft_and_void, private_settings)
    rows, rates = _run(_rows, private_settings)
    report = _run(revenue_report, private_settings, fx_source(SPEC), "eur", prefix=PREFIX)
    sums, customers, per_tenant = _expected(rows, rates, "eur")
    got = report.to_json()
    assert got["by_month"] == {m: _money(v) for m, v in sorted(sums["month"].items())}
    assert len(got["by_month"]) == 9 and "2026-11" not in got["by_month"] and "2025-12" not in got["by_month"]
    for key, field in (("tier", "by_tier"), ("region", "by_region")):
        assert got[field] == {k: _money(v) for k, v in sums[key].items()}
    assert {k: v["converted"] for k, v in got["by_currency"].items()} == {
        k: _money(v) for k, v in sums["currency"].items()
    }
    assert {"usd", "eur", "gbp", "jpy"} <= set(got["by_currency"])
    latest, first = max(sums["month"]), min(sums["month"])
    mrr = sums["month"][latest]
    assert got["mrr"] == _money(mrr) and got["arr"] == _money(mrr * 12)
    assert got["arpu"] == _money(mrr / len(customers[latest]))
    assert got["customers"] == {m: len(ids) for m, ids in customers.items()}
    kept = sum(per_tenant[t, latest] for t in customers[first])
    base = sum(per_tenant[t, first] for t in customers[first])
    assert got["nrr_base_month"] == first and Decimal(got["nrr"]) == (kept / base).quantize(Decimal("0.0001"))
    top = sorted(sums["tenant"].items(), key=lambda item: (-item[1], item[0]))[:10]
    assert [(t["tenant_id"], t["revenue"]) for t in got["top_tenants"]] == [(t, _money(v)) for t, v in top]


def test_a_range_of_months_in_another_currency(private_settings, history):
    from datetime import date

    rows, rates = _run(_rows, private_settings)
    report = _run(
        revenue_report, private_settings, fx_source(SPEC), "jpy", date(2026, 6, 1), date(2026, 9, 1), PREFIX
    )
    sums, _, _ = _expected(rows, rates, "jpy", {"2026-06", "2026-07", "2026-08"})
    assert report.to_json()["by_month"] == {m: _money(v, "jpy") for m, v in sorted(sums["month"].items())}
    assert all("." not in value for value in report.to_json()["by_month"].values())  # yen have no minor unit
