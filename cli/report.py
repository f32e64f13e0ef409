"""`billing report revenue`: MRR, ARR, ARPU, NRR and revenue by month, tier, region and currency
from the invoices, converted into one currency; prints a table and writes a PNG chart."""

from __future__ import annotations

import argparse
import json
import re
import sys
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forecasting.revenue import RevenueReport

MONTH = re.compile(r"^\d{4}-(0[1-9]|1[0-2])$")


def _month(text: str) -> date:
    if not MONTH.match(text):
        raise argparse.ArgumentTypeError("a month as YYYY-MM")
    year, month = (int(part) for part in text.split("-"))
    return date(year, month, 1)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("report", choices=("revenue",), help="which report")
    parser.add_argument("--currency", default="usd", help="reporting currency (default usd)")
    parser.add_argument("--from", dest="start", type=_month, help="first month, YYYY-MM")
    parser.add_argument("--to", dest="end", type=_month, help="month after the last, YYYY-MM")
    parser.add_argument("--prefix", help="only tenants whose id starts with PREFIX")
    parser.add_argument(
        "--fx-source", help="rate table to convert with (default BILLING_FX_SOURCE or the ECB's)"
    )
    parser.add_argument("--top", type=int, default=10, help="how many top tenants")
    parser.add_argument("--out", type=Path, help="where the PNG goes (default DATA_DIR/reports)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from forecasting import plots
    from forecasting.fx_rates import MissingRate, source_of
    from forecasting.revenue import revenue_report
    from infra.database import create_engine, migrate
    from infra.embedded import resolve
    from infra.settings import Settings

    settings = resolve(Settings.from_env())
    migrate(settings.resolved_database_url())

    async def report() -> RevenueReport:
        engine = create_engine(settings.resolved_database_url(), pool_size=1)
        try:
            async with engine.connect() as conn:
                return await revenue_report(
                    conn,
                    args.fx_source or source_of(settings),
                    args.currency,
                    args.start,
                    args.end,
                    args.prefix,
                    args.top,
                )
        finally:
            await engine.dispose()

    try:
        result = asyncio.run(report())
    except MissingRate as error:
        print(f"billing report revenue: {error}", file=sys.stderr)
        return 1
    out = args.out or Path(settings.data_dir) / "reports"
    chart = plots.revenue_chart(result, out / f"revenue-{result.currency}.png") if result.months else None
    if args.json:
        print(json.dumps(result.to_json() | {"chart": str(chart) if chart else None}))
        return 0
    print(render(result))
    print(f"chart: {chart}" if chart else "no revenue in the range: no chart")
    return 0


def render(report: RevenueReport) -> str:
    """The report as a plain-text table."""
    money, cur = report.money, report.currency.upper()
    nrr = "n/a" if report.nrr is None else f"{report.nrr * 100:.1f}% (base {report.nrr_base_month})"
    lines = [
        f"revenue in {cur} (finalized and paid invoices, net of tax)",
        f"  MRR {money(report.mrr)}   ARR {money(report.arr)}   ARPU {money(report.arpu)}   NRR {nrr}",
        "",
        f"{'month':<10}{'revenue':>16}{'tenants':>9}",
    ]
    lines += [f"{m:<10}{money(v):>16}{report.customers[m]:>9}" for m, v in report.by_month.items()]
    for title, values in (("tier", report.by_tier), ("region", report.by_region)):
        lines += ["", f"{title:<14}{'revenue':>16}"]
        lines += [f"{k:<14}{money(v):>16}" for k, v in sorted(values.items(), key=lambda kv: -kv[1])]
    lines += ["", f"{'currency':<10}{'invoiced':>18}{'in ' + cur:>16}"]
    lines += [
        f"{k.upper():<10}{v['invoiced']!s:>18}{money(v['converted']):>16}"
        for k, v in report.by_currency.items()
    ]
    lines += ["", f"{'top tenant':<28}{'tier':<12}{'revenue':>16}"]
    lines += [f"{t:<28}{tier:<12}{money(v):>16}" for t, tier, v in report.top_tenants]
    return "\n".join(lines)
