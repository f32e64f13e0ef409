"""`billing token --role ROLE [--tenant ID]`: a signed JWT for local use (dev keys only)."""

from __future__ import annotations

import argparse
import sys


def configure(parser: argparse.ArgumentParser) -> None:
    from serve.auth import ROLES

    parser.add_argument("--role", required=True, choices=ROLES)
    parser.add_argument("--tenant", help="the tenant a `tenant` token may read")
    parser.add_argument("--ttl", type=int, default=86_400, help="seconds until it expires")


def run(args: argparse.Namespace) -> int:
    from infra.dev_keys import dev_secret
    from infra.settings import Settings
    from serve.auth import mint

    settings = Settings.from_env()
    try:
        print(mint(settings.jwt_secret or dev_secret(settings.data_dir), args.role, args.tenant, args.ttl))
    except ValueError as error:
        print(f"billing token: {error}", file=sys.stderr)
        return 2
    return 0
