"""`billing migrate`: bring the database schema up to date (the stack also does it on start)."""

from __future__ import annotations

import argparse


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--revision", default="head")


def run(args: argparse.Namespace) -> int:
    from infra.database import migrate
    from infra.embedded import resolve
    from infra.settings import Settings

    settings = resolve(Settings.from_env())
    migrate(settings.resolved_database_url(), args.revision)
    print(f"schema at {args.revision}")
    return 0
