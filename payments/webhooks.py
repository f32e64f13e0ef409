"""Webhook signature verification for Stripe and PayPal, and the events they carry.

Both verifiers take the RAW request body: a body parsed and re-serialised is not what was signed.
A webhook that fails is never processed: `ForgedWebhook` (signature, body or certificate wrong),
`StaleWebhook` (signed correctly but outside the timestamp tolerance: a replay), or
`MalformedWebhook` (signed, but not an event). Deduplicating by `WebhookEvent.event_id` is the
caller's job (design.md §4: idempotent by event id); providers deliver at least once.

Stripe: the SDK's `construct_event` checks `Stripe-Signature` (`t=…,v1=HMAC-SHA256(secret,
"t.body")`) and the tolerance; when it refuses, the signature is checked again without a
tolerance to tell a stale delivery from a forged one.

PayPal, verified offline as PayPal documents it
(https://developer.paypal.com/api/rest/webhooks/rest/#link-eventheadervalidation): the signature
in PAYPAL-TRANSMISSION-SIG is SHA256withRSA over
`<PAYPAL-TRANSMISSION-ID>|<PAYPAL-TRANSMISSION-TIME>|<our webhook id>|<CRC32 of the body, decimal>`
with the key of the certificate at PAYPAL-CERT-URL. That URL is attacker-controlled input, so it
must start with one of PayPal's hosts, the certificate must be issued to PayPal's message
verification name, be valid now and, when trust roots are given, chain to one of them.
"""

from __future__ import annotations

import base64
import binascii
import itertools
import json
import time
import urllib.request
import zlib
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import stripe
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.x509.oid import NameOID

from payments.errors import ForgedWebhook, MalformedWebhook, ProviderUnavailable, StaleWebhook
from payments.gateway import WebhookEvent  # beside the interface (tests still import it from here)

PAYPAL_CERT_URL_PREFIXES = (
    "https://api.paypal.com/",
    "https://api-m.paypal.com/",
    "https://api.sandbox.paypal.com/",
    "https://api-m.sandbox.paypal.com/",
)
PAYPAL_CERT_NAMES = ("messageverificationcerts.paypal.com", "messageverificationcerts.sandbox.paypal.com")
DEFAULT_TOLERANCE_S = 300  # Stripe's default; a delivery older than this is treated as a replay


def _json_object(payload: bytes) -> dict[str, Any]:
    try:
        document = json.loads(payload)
    except ValueError as error:
        raise MalformedWebhook(f"webhook body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise MalformedWebhook("webhook body is not a JSON object")
    return document


def _stripe_timestamp(header: str | None) -> int:
    """The `t=` of a Stripe-Signature header the SDK has accepted (so it has one)."""
    for item in (header or "").split(","):
        key, _, value = item.strip().partition("=")
        if key == "t":
            try:
                return int(value)
            except ValueError:
                break
    raise ForgedWebhook("Stripe-Signature without a timestamp")


def _present(pairs: Mapping[str, Any]) -> dict[str, str]:
    return {key: str(value) for key, value in pairs.items() if value not in (None, "")}


class StripeWebhookVerifier:
    def __init__(
        self,
        secret: str,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        client: stripe.StripeClient | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret = secret
        self._tolerance_s = tolerance_s
        self._client = client
        self._clock = clock

    def verify(self, payload: bytes, signature_header: str | None) -> WebhookEvent:
        try:
            if self._client is not None:
                self._client.construct_event(payload, signature_header, self._secret, self._tolerance_s)
            else:
                stripe.Webhook.construct_event(payload, signature_header, self._secret, self._tolerance_s)
        except stripe.SignatureVerificationError:
            raise self._refusal(payload, signature_header) from None
        except ValueError as error:  # signed, but the SDK could not read it as an event
            raise MalformedWebhook(f"Stripe event unreadable: {error}") from None
        # The SDK bounds only the age: a signature dated ahead of us (a clock far off, or one
        # minted to be replayed later) is refused the same way (issue 15).
        signed_at = _stripe_timestamp(signature_header)
        if signed_at > self._clock() + self._tolerance_s:
            raise StaleWebhook(f"Stripe webhook signed more than {self._tolerance_s} s in the future")
        return self._event(_json_object(payload))

    def _refusal(self, payload: bytes, header: str | None) -> Exception:
        try:
            stripe.WebhookSignature.verify_header(payload, header, self._secret, tolerance=None)
        except stripe.SignatureVerificationError as error:
            return ForgedWebhook(f"Stripe signature does not match: {error}")
        return StaleWebhook(f"Stripe webhook signed more than {self._tolerance_s} s ago")

    @staticmethod
    def _event(document: dict[str, Any]) -> WebhookEvent:
        try:
            data_object = document["data"]["object"]
            metadata = data_object.get("metadata") or {}
            related = {
                "payment_intent": data_object.get("payment_intent"),
                "charge": data_object.get("charge") or data_object.get("latest_charge"),
                "customer": data_object.get("customer"),
                "invoice_id": metadata.get("invoice_id"),
                "invoice_number": metadata.get("invoice_number"),
            }
            return WebhookEvent(
                provider="stripe",
                event_id=document["id"],
                type=document["type"],
                created=datetime.fromtimestamp(int(document["created"]), UTC),
                object_type=data_object["object"],
                object_id=data_object["id"],
                related_ids=_present(related),
                payload=document,
            )
        except (KeyError, TypeError, AttributeError, ValueError) as error:
            raise MalformedWebhook(f"Stripe event lacks {error}") from None


def _download(url: str) -> bytes:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # checked against PayPal's hosts
            return bytes(response.read())
    except OSError as error:  # URLError, timeouts: PayPal unreachable, not a forgery
        raise ProviderUnavailable(f"could not fetch PayPal's certificate {url}: {error}") from None


def _parse_time(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)  # Python 3.11 reads the "Z" PayPal writes
    except ValueError:
        raise MalformedWebhook(f"not an ISO 8601 time: {text!r}") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


class PayPalWebhookVerifier:
    """Offline verification of PayPal webhooks (no call to PayPal per delivery)."""

    def __init__(
        self,
        webhook_id: str,
        *,
        trusted_roots: Sequence[x509.Certificate] = (),
        cert_url_prefixes: Sequence[str] = PAYPAL_CERT_URL_PREFIXES,
        certificate_names: Sequence[str] = PAYPAL_CERT_NAMES,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        fetch: Callable[[str], bytes] = _download,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._webhook_id = webhook_id
        self._roots = tuple(trusted_roots)
        self._prefixes = tuple(cert_url_prefixes)
        self._names = frozenset(certificate_names)
        self._tolerance = timedelta(seconds=tolerance_s)
        self._fetch = fetch
        self._clock = clock
        self._certificates: dict[str, x509.Certificate] = {}  # PayPal rotates them rarely

    def verify(self, payload: bytes, headers: Mapping[str, str]) -> WebhookEvent:
        lowered = {name.lower(): value for name, value in headers.items()}
        transmission_id = self._header(lowered, "paypal-transmission-id")
        sent_at = self._header(lowered, "paypal-transmission-time")
        if self._header(lowered, "paypal-auth-algo") != "SHA256withRSA":
            raise ForgedWebhook(f"unexpected PAYPAL-AUTH-ALGO {lowered['paypal-auth-algo']!r}")
        try:
            signature = base64.b64decode(self._header(lowered, "paypal-transmission-sig"), validate=True)
        except binascii.Error:
            raise ForgedWebhook("PAYPAL-TRANSMISSION-SIG is not base64") from None
        key = self._certificate(self._header(lowered, "paypal-cert-url")).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise ForgedWebhook("PayPal's certificate does not hold an RSA key")
        message = f"{transmission_id}|{sent_at}|{self._webhook_id}|{zlib.crc32(payload)}".encode()
        try:
            key.verify(signature, message, padding.PKCS1v15(), hashes.SHA256())
        except InvalidSignature:
            raise ForgedWebhook("PayPal signature does not match the body and headers") from None
        if abs(self._clock() - _parse_time(sent_at)) > self._tolerance:
            raise StaleWebhook(f"PayPal webhook transmitted at {sent_at}, outside the tolerance")
        return self._event(_json_object(payload))

    @staticmethod
    def _header(headers: Mapping[str, str], name: str) -> str:
        value = headers.get(name)
        if not value:
            raise ForgedWebhook(f"missing header {name.upper()}")
        return value

    def _certificate(self, url: str) -> x509.Certificate:
        if not url.startswith(self._prefixes):
            raise ForgedWebhook(f"PAYPAL-CERT-URL {url!r} is not a PayPal address")
        if url not in self._certificates:
            try:
                chain = x509.load_pem_x509_certificates(self._fetch(url))
            except ValueError:
                raise ForgedWebhook(f"no certificate at {url}") from None
            self._check_chain(chain)
            self._certificates[url] = chain[0]
        leaf = self._certificates[url]
        now = self._clock()
        if not leaf.not_valid_before_utc <= now <= leaf.not_valid_after_utc:
            raise ForgedWebhook("PayPal's certificate is not valid now")
        return leaf

    def _check_chain(self, chain: Sequence[x509.Certificate]) -> None:
        names = {
            attribute.value for attribute in chain[0].subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        }
        if not names & self._names:
            raise ForgedWebhook(f"certificate issued to {sorted(map(str, names))}, not PayPal")
        try:
            for certificate, issuer in itertools.pairwise(chain):
                certificate.verify_directly_issued_by(issuer)
            if self._roots and not any(self._issued_by(chain[-1], root) for root in self._roots):
                raise ForgedWebhook("PayPal's certificate does not chain to a trusted root")
        except (ValueError, TypeError, InvalidSignature):
            raise ForgedWebhook("PayPal's certificate chain is broken") from None

    @staticmethod
    def _issued_by(certificate: x509.Certificate, root: x509.Certificate) -> bool:
        if certificate == root:
            return True
        try:
            certificate.verify_directly_issued_by(root)
        except (ValueError, TypeError, InvalidSignature):
            return False
        return True

    @staticmethod
    def _event(document: dict[str, Any]) -> WebhookEvent:
        try:
            resource = document["resource"]
            related_ids = (resource.get("supplementary_data") or {}).get("related_ids") or {}
            related = {
                "order_id": related_ids.get("order_id"),
                "capture_id": related_ids.get("capture_id"),
                "invoice_id": resource.get("custom_id"),
                "invoice_number": resource.get("invoice_id"),
            }
            return WebhookEvent(
                provider="paypal",
                event_id=document["id"],
                type=document["event_type"],
                created=_parse_time(document["create_time"]),
                object_type=document["resource_type"],
                object_id=resource["id"],
                related_ids=_present(related),
                payload=document,
            )
        except (KeyError, TypeError, AttributeError) as error:
            raise MalformedWebhook(f"PayPal event lacks {error}") from None
