"""`billing fx load FILE`: store reference rates from an ECB-layout CSV (eurofxref or -hist)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    load = actions.add_parser("load", help="store the rates of an ECB-layout CSV")
    load.add_argument("file", type=Path)
    load.add_argument("--source", default=None, help="where the rates come from (default: the ECB)")


def run(args: argparse.Namespace) -> int:
    import asyncio

    from infra import fx_store
    from infra.audit_store import cli_actor
    from infra.database import create_engine
    from infra.embedded import resolve
    from infra.settings import Settings
    from pricing.errors import InvalidField
    from pricing.fx import ECB_SOURCE, RateTable

    try:
        table = RateTable.from_ecb_csv(args.file.read_text(), args.source or ECB_SOURCE)
    except InvalidField as error:
        print(f"billing fx load: {args.file}: {error.field}: {error.message}", file=sys.stderr)
        return 1

    async def store() -> int:
        engine = create_engine(resolve(Settings.from_env()).resolved_database_url())
        async with engine.begin() as conn:
            stored = await fx_store.import_table(conn, table, actor=cli_actor())
        await engine.dispose()
        return stored

    print(f"stored {asyncio.run(store())} rates for {len(table.dates)} days from {args.file}")
    return 0
