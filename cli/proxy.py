"""`billing proxy --certs DIR [--listen HOST:PORT] [--upstream HOST:PORT] [--run-dir DIR]`: nginx
in the foreground as the mTLS proxy in front of the API (serve/mtls/). Ctrl-C or SIGTERM stops it."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--certs", type=Path, required=True, help="ca.pem, server.pem, server-key.pem (billing certs)"
    )
    parser.add_argument(
        "--listen", default="0.0.0.0:8443", help="where kernels connect (default 0.0.0.0:8443)"
    )
    parser.add_argument(
        "--upstream", default="127.0.0.1:8000", help="the API on loopback (default 127.0.0.1:8000)"
    )
    parser.add_argument(
        "--run-dir", type=Path, help="config, pid, logs and temp files (default DATA_DIR/mtls-proxy)"
    )


def run(args: argparse.Namespace) -> int:
    from infra.settings import Settings
    from serve.mtls.proxy import ProxyConfig, ProxyFailed, prepare

    run_dir = args.run_dir or Settings.from_env().data_dir / "mtls-proxy"
    try:
        command = prepare(ProxyConfig(args.certs, args.listen, args.upstream), run_dir)
    except ProxyFailed as error:
        print(f"billing proxy: {error}", file=sys.stderr)
        return 2
    print(f"mTLS proxy on https://{args.listen} -> http://{args.upstream}; config and logs in {run_dir}")
    sys.stdout.flush()
    os.execv(command[0], command)  # nginx takes over the process: signals reach it directly
    return 0  # not reached
