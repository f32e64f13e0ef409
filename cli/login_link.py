"""`billing login-link --tenant ID` / `--role ROLE`: a short-lived signed link that opens a browser
session on the tenant portal (`/portal`) or the finance console (`/console`) (issue 19).

The link carries a JWT signed with the dev key, like `billing token`, valid for ten minutes and
good for one sign-in; the session it opens lasts a working day (serve/sessions.py).
"""

from __future__ import annotations

import argparse
import secrets
import sys
from typing import TYPE_CHECKING
from urllib.parse import urlencode

if TYPE_CHECKING:
    from infra.settings import Settings

STAFF = ("billing-admin", "finance", "viewer")


def configure(parser: argparse.ArgumentParser) -> None:
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--tenant", help="a link to this tenant's portal")
    who.add_argument("--role", choices=STAFF, help="a link to the finance console for this role")
    parser.add_argument("--ttl", type=int, default=600, help="seconds the link stays valid (default 600)")
    parser.add_argument(
        "--base-url", help="the service's URL (default http://BILLING_HTTP_HOST:BILLING_HTTP_PORT)"
    )


def link(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/portal/login?{urlencode({'token': token})}"


def run(args: argparse.Namespace) -> int:
    from infra.settings import Settings

    settings = Settings.from_env()
    if not 0 < args.ttl <= 3600:
        print("billing login-link: --ttl must be between 1 and 3600 seconds", file=sys.stderr)
        return 2
    role, tenant = ("tenant", args.tenant) if args.tenant else (args.role, None)
    base_url = args.base_url or f"http://{settings.http_host}:{settings.http_port}"
    print(signed_link(settings, base_url, role, tenant, args.ttl))
    return 0


def signed_link(settings: Settings, base_url: str, role: str, tenant: str | None, ttl: int = 600) -> str:
    """A sign-in link for `role` (and `tenant`), signed with the service's key."""
    from infra.dev_keys import dev_secret
    from serve.auth import mint

    # Each link its own subject: a link opens one session only, and two links minted in the same
    # second would otherwise be the same token; the audit log also tells the sign-ins apart.
    subject = f"{f'tenant:{tenant}' if tenant else role}/link-{secrets.token_hex(4)}"
    return link(base_url, mint(settings.jwt_secret or dev_secret(settings.data_dir), role, tenant, ttl, subject))
