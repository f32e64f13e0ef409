"""`billing certs --out DIR [--server-name NAME ...] [--client-name CN ...]`: a dev CA, the mTLS
proxy's server certificate and the kernel's client certificates, as PEM files (keys 0600).

A CA already in DIR is reused, so more client certificates can be issued later without
invalidating the ones handed out; the server certificate is issued anew each time."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")  # also a file name: no slashes, no dot-files


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", type=Path, required=True, help="directory the PEM files go to")
    parser.add_argument(
        "--server-name",
        action="append",
        default=[],
        help="a DNS name or IP the proxy is reached by (repeatable; localhost and 127.0.0.1 always)",
    )
    parser.add_argument(
        "--client-name",
        action="append",
        default=[],
        help="a client certificate's common name (repeatable; default enis-kernel)",
    )


def run(args: argparse.Namespace) -> int:
    from infra import certificates

    clients = args.client_name or ["enis-kernel"]
    bad = [n for n in clients if not SAFE_NAME.fullmatch(n) or n in (certificates.CA, certificates.SERVER)]
    if bad:
        print(
            f"billing certs: --client-name {bad[0]!r}: letters, digits, '.', '_', '-' only", file=sys.stderr
        )
        return 2
    out: Path = args.out
    if (out / f"{certificates.CA}.pem").exists():
        try:
            ca, written = certificates.read(out, certificates.CA), []
        except (OSError, ValueError, certificates.CertificateError) as error:
            print(f"billing certs: the CA in {out} cannot be reused: {error}", file=sys.stderr)
            return 2
        print(f"reusing the CA in {out}")
    else:
        ca = certificates.create_ca()
        written = list(certificates.write(ca, out, certificates.CA))
    written += certificates.write(
        certificates.issue_server(ca, tuple(args.server_name)), out, certificates.SERVER
    )
    subjects = []
    for name in clients:
        client = certificates.issue_client(ca, name)
        written += certificates.write(client, out, name)
        subjects.append(client.subject)
    for path in written:
        print(path)
    # The API admits exactly these subjects (nginx forwards the verified one); ';' separates them
    # because a subject itself contains commas.
    print(f"BILLING_KERNEL_SUBJECTS='{';'.join(subjects)}'")
    return 0
