"""Development certificates for mTLS in front of the API: a CA, the proxy's server certificate and
the kernel's client certificates (issue 7). Pure functions over `cryptography`, plus one writer.

In production the certificates come from the organisation's PKI; these are for local use, tests
and a first deployment. Keys are ECDSA P-256 (small, fast, accepted by every TLS 1.2+ stack).
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

ORGANIZATION = "ENIS"
CA_DAYS, LEAF_DAYS = 3650, 825  # 825 days: the longest leaf lifetime TLS clients still accept
CLOCK_SKEW = timedelta(minutes=5)  # valid a little before "now", for hosts whose clock is behind
LOOPBACK_NAMES = ("localhost", "127.0.0.1")
CA, SERVER = "ca", "server"  # file stems in a certificates directory: ca.pem, server-key.pem, ...


class CertificateError(Exception):
    """A certificate or key file cannot be used as asked."""


@dataclass(frozen=True)
class Issued:
    """A certificate with its private key."""

    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey

    @property
    def subject(self) -> str:
        """The subject as RFC 4514 text, the form nginx's `$ssl_client_s_dn` gives."""
        return self.certificate.subject.rfc4514_string()


def _name(common_name: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.COMMON_NAME, common_name),
        ]
    )


def _builder(
    subject: x509.Name, issuer: x509.Name, key: ec.EllipticCurvePrivateKey, days: int
) -> x509.CertificateBuilder:
    now = datetime.now(UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - CLOCK_SKEW)
        .not_valid_after(now + timedelta(days=days))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )


def create_ca(common_name: str = "billing-service dev CA", days: int = CA_DAYS) -> Issued:
    """A self-signed CA that may sign leaf certificates only (path length 0)."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(common_name)
    certificate = (
        _builder(name, name, key, days)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(cert_sign=True), critical=True)
        .sign(key, hashes.SHA256())
    )
    return Issued(certificate, key)


def issue_server(ca: Issued, names: tuple[str, ...] = (), days: int = LEAF_DAYS) -> Issued:
    """The proxy's certificate: valid for localhost and 127.0.0.1 plus `names` (DNS names or IPs)."""
    common_name = names[0] if names else LOOPBACK_NAMES[0]
    all_names = list(dict.fromkeys((*LOOPBACK_NAMES, *names)))
    return _issue(ca, common_name, ExtendedKeyUsageOID.SERVER_AUTH, all_names, days)


def issue_client(ca: Issued, common_name: str = "enis-kernel", days: int = LEAF_DAYS) -> Issued:
    """A client certificate (the kernel's) whose subject the API checks, e.g. CN=enis-kernel,O=ENIS."""
    return _issue(ca, common_name, ExtendedKeyUsageOID.CLIENT_AUTH, [], days)


def _issue(
    ca: Issued, common_name: str, purpose: x509.ObjectIdentifier, names: list[str], days: int
) -> Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    builder = (
        _builder(_name(common_name), ca.certificate.subject, key, days)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(cert_sign=False), critical=True)
        # OpenSSL checks the purpose: a server certificate cannot pass as a client's, nor the reverse.
        .add_extension(x509.ExtendedKeyUsage([purpose]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    )
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName([_general_name(n) for n in names]), False)
    return Issued(builder.sign(ca.key, hashes.SHA256()), key)


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _usage(cert_sign: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=not cert_sign,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=cert_sign,
        crl_sign=cert_sign,
        encipher_only=False,
        decipher_only=False,
    )


def write(issued: Issued, directory: Path, stem: str) -> tuple[Path, Path]:
    """`<stem>.pem` (the certificate) and `<stem>-key.pem` (the key, mode 0600) in `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    certificate_path, key_path = directory / f"{stem}.pem", directory / f"{stem}-key.pem"
    certificate_path.write_bytes(issued.certificate.public_bytes(serialization.Encoding.PEM))
    key_pem = issued.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    # Created 0600 (never readable by others, not even for an instant); an older file keeps its
    # mode on open, hence the chmod.
    descriptor = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        os.fchmod(file.fileno(), 0o600)
        file.write(key_pem)
    return certificate_path, key_path


def read(directory: Path, stem: str) -> Issued:
    """What `write` wrote."""
    certificate = x509.load_pem_x509_certificate((directory / f"{stem}.pem").read_bytes())
    key = serialization.load_pem_private_key((directory / f"{stem}-key.pem").read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CertificateError(f"{directory / stem}-key.pem is not an EC key")
    return Issued(certificate, key)
