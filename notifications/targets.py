"""Which webhook URLs may be called: http(s) only, and never an address inside our own networks
(private, loopback, link-local, multicast, reserved) unless the deployment allows it. A hostname
is checked when the endpoint is made and again before every attempt, on the addresses it
resolves to then (DNS can change); the request then goes to the address that was checked."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from urllib.parse import urlsplit

from pricing.errors import InvalidField

MAX_URL_LENGTH = 2_000
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TargetRefused(InvalidField):
    """A URL or address webhooks may not be sent to."""


@dataclass(frozen=True)
class Target:
    url: str
    scheme: str
    host: str  # a hostname or an address literal, without brackets
    port: int

    def literal(self) -> Address | None:
        try:
            return ipaddress.ip_address(self.host)
        except ValueError:
            return None


def parse_url(url: object, field: str = "url") -> Target:
    if not isinstance(url, str) or not url:
        raise TargetRefused(field, "must be an http or https URL")
    if len(url) > MAX_URL_LENGTH:
        raise TargetRefused(field, f"must be at most {MAX_URL_LENGTH} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise TargetRefused(field, f"is not a valid URL ({error})") from None
    if parts.scheme not in ("http", "https"):
        raise TargetRefused(field, "must use http or https")
    if not parts.hostname:
        raise TargetRefused(field, "must name a host")
    if parts.username is not None or parts.password is not None:
        raise TargetRefused(field, "must not carry credentials; authenticate with the signature")
    if parts.fragment:
        raise TargetRefused(field, "must not have a fragment")
    return Target(url, parts.scheme, parts.hostname, port or (443 if parts.scheme == "https" else 80))


def check_address(address: Address, allow_private: bool, field: str = "url") -> None:
    """Refuse an address outside the public internet unless `allow_private`."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if allow_private:
        return
    if not address.is_global or address.is_multicast:
        raise TargetRefused(
            field,
            f"resolves to {address}, a private, loopback, link-local or reserved address; webhooks go "
            "to public addresses only (BILLING_WEBHOOK_ALLOW_PRIVATE allows others)",
        )
