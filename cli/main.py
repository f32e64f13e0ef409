"""`billing` entry point: a thin dispatcher.

Each subcommand lives in its own module and is imported only when it runs, so a light command
such as `billing price quote` never pays for importing Ray, SQLAlchemy or the web stack.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module, one-line help). Each module exposes `configure(parser)` and `run(args) -> int`.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "up": ("cli.up", "start the whole stack and serve until interrupted"),
    "demo": ("cli.demo", "run the main job end to end on embedded defaults"),
    "token": ("cli.token", "print a signed JWT for local use (dev keys only)"),
    "login-link": ("cli.login_link", "a 10-minute sign-in link to /portal (--tenant ID) or /console (--role R)"),
    "price": ("cli.price", "price tools: `billing price quote [FILE]`"),
    "tax": ("cli.tax", "tax tools: `billing tax quote --net AMOUNT --currency CUR ...`"),
    "invoice-run": ("cli.invoice_run", "invoice every tenant for a month on Ray tasks (idempotent)"),
    "fx": ("cli.fx", "reference rates: `billing fx load FILE` (ECB CSV layout)"),
    "migrate": ("cli.migrate", "apply the database migrations"),
    "shards": ("cli.shards", "usage shards: `billing shards status`, `billing shards set N` while serving"),
    "certs": ("cli.certs", "dev mTLS certificates: `billing certs --out DIR` (CA, server, kernel)"),
    "proxy": ("cli.proxy", "the mTLS proxy (nginx) in front of the API: `billing proxy --certs DIR`"),
    "keys": ("cli.keys", "field-encryption keys: `billing keys rotate` re-encrypts under a new version"),
    "report": ("cli.report", "revenue analytics: `billing report revenue [--currency C]` (table and PNG)"),
    "forecast": ("cli.forecast", "`billing forecast usage|churn`: train, plot and score the models"),
    "sandbox": ("cli.sandbox", "local Stripe, PayPal and Vault servers to try payments against, until Ctrl-C"),
}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="billing", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (_, help_text) in SUBCOMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] not in SUBCOMMANDS:
        parser.parse_args(argv)  # prints usage and exits
        return 2
    module = importlib.import_module(SUBCOMMANDS[argv[0]][0])
    command_parser = argparse.ArgumentParser(prog=f"billing {argv[0]}")
    module.configure(command_parser)
    args = command_parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except Exception as error:
        if not _said_plainly(error):
            raise
        print(f"billing {argv[0]}: {error}", file=sys.stderr)
        return 2


def _said_plainly(error: Exception) -> bool:
    """Errors of set-up (a port taken, a setting wrong) whose message says all a user needs: no
    traceback for those."""
    from infra.settings import ConfigurationError
    from serve.starting import PortInUse

    return isinstance(error, ConfigurationError | PortInUse)


if __name__ == "__main__":
    sys.exit(main())
