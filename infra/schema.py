"""The PostgreSQL tables, as SQLAlchemy Core metadata. Migrations (infra/migrations) create them;
this module is what queries are written against."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Identity,
    Integer,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB, UUID

from pricing.meters import METERS

metadata = MetaData()

tenants = Table(
    "tenants",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("name", String(200), nullable=False),
    Column("tier", String(16), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("country", String(2), nullable=False),
    Column("region", String(64)),
    Column("vat_id", Text),  # encrypted (infra/tenant_store.py)
    Column("locale", String(16), nullable=False, server_default="en"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    # Migration 0015 (issue 14): what the invoice prints of the buyer and when it is due.
    Column("address", JSONB),  # {line1, line2?, postal_code, city, region?, country}
    Column("email", String(254)),
    Column("payment_terms_days", Integer),  # NULL: the seller's default
    Column("buyer_reference", String(64)),  # e.g. a German public buyer's Leitweg-ID (BT-10)
    CheckConstraint("payment_terms_days BETWEEN 0 AND 365", name="tenants_payment_terms_days"),
)

# No foreign key to tenants on purpose: usage for a tenant not yet registered is kept, and shown
# as unassigned until the tenant appears.
usage_hourly = Table(
    "usage_hourly",
    metadata,
    Column("tenant_id", String(64), nullable=False),
    Column("hour_start", DateTime(timezone=True), nullable=False),
    *(Column(meter.value, Numeric, nullable=False, server_default="0") for meter in METERS),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("tenant_id", "hour_start"),
)

# How many shards the usage log of a deployment (its Redis prefix) is split into. Tenants hash onto
# shards and dedup keys live per shard, so the count changes only through a drain (actors/
# resharding.py), which sets target_shards while under way and raises the generation when done.
metering_layout = Table(
    "metering_layout",
    metadata,
    Column("redis_prefix", String(128), primary_key=True),
    Column("shards", Integer, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("generation", BigInteger, nullable=False, server_default="1"),
    Column("target_shards", Integer),
    Column("changed_at", DateTime(timezone=True)),
)

# The last Redis stream entry whose usage is in usage_hourly, written in the same transaction as
# the usage itself: replay after a crash skips every entry up to it.
usage_stream_offsets = Table(
    "usage_stream_offsets",
    metadata,
    Column("stream", String(128), primary_key=True),
    Column("last_ms", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    # Raised by each shard instance as it starts; a flush from an older instance is refused.
    Column("epoch", BigInteger, nullable=False, server_default="0"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Pricing (migration 0002). Each cached pricing object carries a `revision` bumped in the same
# transaction as every change to it, and the Redis cache keys on it: see infra/pricing_cache.py.

# One row per catalog: what every version shares (currency, billing units) and its revision.
catalogs = Table(
    "catalogs",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("currency", String(3), nullable=False),
    Column("units", JSONB, nullable=False),
    Column("revision", BigInteger, nullable=False, server_default="1"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Append-only (a trigger refuses UPDATE and DELETE): a price change is a new version.
catalog_versions = Table(
    "catalog_versions",
    metadata,
    Column("catalog", String(64), ForeignKey("catalogs.name"), nullable=False),
    Column("version", String(64), nullable=False),
    Column("effective_from", DateTime(timezone=True), nullable=False),
    Column("document", JSONB, nullable=False),  # CatalogVersion.to_json()
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", String(200), nullable=False),
    PrimaryKeyConstraint("catalog", "version"),
    UniqueConstraint("catalog", "effective_from"),
)

# A tenant without a row here is on the catalog terms of tenants.tier, with no contract.
tenant_pricing = Table(
    "tenant_pricing",
    metadata,
    Column("tenant_id", String(64), ForeignKey("tenants.tenant_id"), primary_key=True),
    Column("settings", JSONB, nullable=False),  # TenantPricing.to_json(): tier, contracts, licence
    Column("revision", BigInteger, nullable=False, server_default="1"),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_by", String(200), nullable=False),
)

# Append-only, like catalog_versions. Amounts are whole minor units of `currency`, as in
# pricing.credits; `entry_id` is the ledger order.
credit_entries = Table(
    "credit_entries",
    metadata,
    Column("entry_id", BigInteger, Identity(), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.tenant_id"), nullable=False),
    Column("entry_type", String(8), nullable=False),  # grant | debit
    Column("grant_id", String(64), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("amount_minor", Numeric, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("kind", String(16)),  # grants: prepaid | promotional
    Column("priority", Integer),  # grants
    Column("expires_at", DateTime(timezone=True)),  # grants; NULL never expires
    Column("reference", String(200)),  # debits: what drew the credit, such as an invoice id
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", String(200), nullable=False),
)

# Invoices (migration 0005). Finalized rows are guarded by triggers: only the status moves on.
invoice_numbers = Table(
    "invoice_numbers",
    metadata,
    Column("issuer", String(32), primary_key=True),
    Column("year", Integer, primary_key=True),
    Column("last_number", BigInteger, nullable=False),
)

invoices = Table(
    "invoices",
    metadata,
    Column("invoice_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.tenant_id"), nullable=False),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("period_end", DateTime(timezone=True), nullable=False),
    Column("status", String(16), nullable=False, server_default="draft"),
    Column("currency", String(3), nullable=False),
    Column("subtotal", Numeric, nullable=False),
    Column("tax", Numeric, nullable=False),
    Column("total", Numeric, nullable=False),
    Column("issuer", String(32), nullable=False),
    Column("number", String(64), unique=True),
    Column("document", JSONB, nullable=False),
    Column("pdf_sha256", String(64)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("finalized_at", DateTime(timezone=True)),
    UniqueConstraint("tenant_id", "period_start", "period_end", name="invoices_one_per_period"),
)

invoice_lines = Table(
    "invoice_lines",
    metadata,
    Column("invoice_id", UUID(as_uuid=True), ForeignKey("invoices.invoice_id"), primary_key=True),
    Column("line_no", Integer, primary_key=True),
    Column("kind", String(32), nullable=False),
    Column("meter", String(32)),
    Column("description", Text, nullable=False),
    Column("quantity", Numeric, nullable=False),
    Column("unit", String(32)),
    Column("unit_price", Numeric),
    Column("amount", Numeric, nullable=False),
)

# Reference rates, units of `currency` per 1 EUR on `rate_date` (migration 0006).
fx_rates = Table(
    "fx_rates",
    metadata,
    Column("source", String(64), primary_key=True),
    Column("rate_date", Date, primary_key=True),
    Column("currency", String(3), primary_key=True),
    Column("per_eur", Numeric, nullable=False),
)

# The PDF of a finalized invoice (migration 0007); the first render is the one kept.
invoice_pdfs = Table(
    "invoice_pdfs",
    metadata,
    Column("invoice_id", UUID(as_uuid=True), ForeignKey("invoices.invoice_id"), primary_key=True),
    Column("sha256", String(64), nullable=False),
    Column("path", Text, nullable=False),
    Column("rendered_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Corrections and runs (migration 0008). Credit notes and adjustments are written once.
credit_notes = Table(
    "credit_notes",
    metadata,
    Column("credit_note_id", UUID(as_uuid=True), primary_key=True),
    Column("invoice_id", UUID(as_uuid=True), ForeignKey("invoices.invoice_id"), nullable=False),
    Column("number", String(64), nullable=False, unique=True),
    Column("currency", String(3), nullable=False),
    Column("subtotal", Numeric, nullable=False),
    Column("tax", Numeric, nullable=False),
    Column("total", Numeric, nullable=False),
    Column("reason", Text, nullable=False),
    Column("document", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", String(200), nullable=False),
)

invoice_adjustments = Table(
    "invoice_adjustments",
    metadata,
    Column("source_invoice_id", UUID(as_uuid=True), ForeignKey("invoices.invoice_id"), primary_key=True),
    Column("target_invoice_id", UUID(as_uuid=True), ForeignKey("invoices.invoice_id"), primary_key=True),
    Column("usage", JSONB, nullable=False),  # meter -> decimal string: the source period as now billed
    Column("charged", Numeric, nullable=False),  # the source period's charges now, before credits
    Column("amount", Numeric, nullable=False),  # the adjustment line on the target
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

invoice_runs = Table(
    "invoice_runs",
    metadata,
    Column("run_id", UUID(as_uuid=True), primary_key=True),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("period_end", DateTime(timezone=True), nullable=False),
    Column("trigger", String(16), nullable=False),
    Column("status", String(16), nullable=False),
    Column("finalize", Boolean, nullable=False),
    Column("pdfs", Boolean, nullable=False),
    Column("owner", String(200)),
    Column("heartbeat_at", DateTime(timezone=True)),
    # Until when the owner holds the run, by the owner's own lease (migration 0014).
    Column("lease_until", DateTime(timezone=True)),
    Column("tenants_total", Integer),
    Column("tenants_done", Integer, nullable=False, server_default="0"),
    Column("outcomes", JSONB, nullable=False, server_default="{}"),
    Column("totals", JSONB, nullable=False, server_default="{}"),
    Column("failures", JSONB, nullable=False, server_default="[]"),
    Column("error", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("started_at", DateTime(timezone=True)),
    Column("finished_at", DateTime(timezone=True)),
)

# Payments (migration 0009). Provider ids and payer details are stored encrypted (`*_ref`).
payment_methods = Table(
    "payment_methods",
    metadata,
    Column("tenant_id", String(64), ForeignKey("tenants.tenant_id"), primary_key=True),
    Column("provider", String(16), primary_key=True),
    Column("customer_ref", Text),
    Column("method_ref", Text, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

payments = Table(
    "payments",
    metadata,
    Column("payment_id", UUID(as_uuid=True), primary_key=True),
    Column("invoice_id", UUID(as_uuid=True), ForeignKey("invoices.invoice_id"), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("method", String(16), nullable=False),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("status", String(24), nullable=False),
    Column("amount", Numeric, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("received", Numeric, nullable=False, server_default="0"),
    Column("refunded", Numeric, nullable=False, server_default="0"),
    Column("transaction_id", String(200)),
    Column("approval_url", Text),
    Column("instructions", Text),
    Column("failure_code", String(100)),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_retry_at", DateTime(timezone=True)),
    Column("last_event_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", String(200), nullable=False),
)

payment_attempts = Table(
    "payment_attempts",
    metadata,
    Column("payment_id", UUID(as_uuid=True), ForeignKey("payments.payment_id"), primary_key=True),
    Column("attempt", Integer, primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("outcome", String(24), nullable=False),
    Column("failure_code", String(100)),
    Column("reminder", Text),
)

refunds = Table(
    "refunds",
    metadata,
    Column("refund_id", UUID(as_uuid=True), primary_key=True),
    Column("payment_id", UUID(as_uuid=True), ForeignKey("payments.payment_id"), nullable=False),
    Column("idempotency_key", String(255), nullable=False, unique=True),
    Column("amount", Numeric, nullable=False),
    Column("status", String(16), nullable=False),
    Column("provider_refund_id", String(200)),
    Column("reason", Text),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("created_by", String(200), nullable=False),
)

payment_events = Table(
    "payment_events",
    metadata,
    Column("provider", String(16), primary_key=True),
    Column("event_id", String(200), primary_key=True),
    Column("type", String(100), nullable=False),
    Column("created", DateTime(timezone=True), nullable=False),
    Column("payment_id", UUID(as_uuid=True)),
    Column("outcome", String(200), nullable=False),
    Column("received_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

bank_credits = Table(
    "bank_credits",
    metadata,
    Column("entry_id", String(200), primary_key=True),
    Column("amount", Numeric, nullable=False),
    Column("currency", String(3), nullable=False),
    Column("booking_date", Date, nullable=False),
    Column("reference", String(200)),
    Column("debtor_ref", Text),
    Column("match", String(16), nullable=False),
    Column("invoice_id", UUID(as_uuid=True), ForeignKey("invoices.invoice_id")),
    Column("applied", Numeric, nullable=False),
    Column("overpaid", Numeric, nullable=False),
    Column("imported_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

# Every money-affecting action (migration 0012; infra/audit_store.py). Append-only: a trigger
# refuses UPDATE, DELETE and TRUNCATE, and the application's role is granted INSERT and SELECT.
audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("actor", Text, nullable=False),
    Column("action", Text, nullable=False),
    Column("subject_type", Text, nullable=False),
    Column("subject_id", Text, nullable=False),
    Column("tenant_id", Text),
    Column("before", JSONB),
    Column("after", JSONB),
    Column("request_id", Text),
)

# Outbound webhooks and alerts (migration 0016, issue 17; notifications/, infra/webhook_store.py,
# infra/alert_store.py). Check constraints and indexes are in the migration.
webhook_endpoints = Table(
    "webhook_endpoints",
    metadata,
    Column("endpoint_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", String(64)),  # NULL: a platform endpoint, every tenant's events
    Column("url", Text, nullable=False),
    Column("event_types", JSONB, nullable=False),  # ["invoice.paid", ...] or ["*"]
    Column("secret", Text, nullable=False),  # sealed
    Column("previous_secret", Text),  # sealed; still signs until previous_secret_until
    Column("previous_secret_until", DateTime(timezone=True)),
    Column("enabled", Boolean, nullable=False, server_default="true"),
    Column("disabled_reason", Text),
    Column("failing_since", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("deleted_at", DateTime(timezone=True)),
)

webhook_events = Table(
    "webhook_events",
    metadata,
    Column("event_id", String(64), primary_key=True),  # the webhook-id
    Column("type", String(64), nullable=False),
    Column("tenant_id", String(64)),
    Column("body", JSONB, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

webhook_deliveries = Table(
    "webhook_deliveries",
    metadata,
    Column("delivery_id", UUID(as_uuid=True), primary_key=True),
    Column("event_id", String(64), ForeignKey("webhook_events.event_id"), nullable=False),
    Column("endpoint_id", UUID(as_uuid=True), ForeignKey("webhook_endpoints.endpoint_id"), nullable=False),
    Column("status", String(16), nullable=False, server_default="pending"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("give_up_at", DateTime(timezone=True)),  # NULL: created_at + the retry window
    Column("lease_owner", Text),
    Column("lease_until", DateTime(timezone=True)),
    Column("last_status_code", Integer),
    Column("last_error", Text),
    Column("delivered_at", DateTime(timezone=True)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    UniqueConstraint("event_id", "endpoint_id", name="webhook_deliveries_once"),
)

webhook_attempts = Table(
    "webhook_attempts",
    metadata,
    Column("attempt_id", BigInteger, Identity(), primary_key=True),
    Column("delivery_id", UUID(as_uuid=True), ForeignKey("webhook_deliveries.delivery_id"), nullable=False),
    Column("attempted_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("status_code", Integer),
    Column("error", Text),
    Column("duration_ms", Integer, nullable=False),
    Column("worker", Text, nullable=False),
)

alerts = Table(
    "alerts",
    metadata,
    Column("alert_id", UUID(as_uuid=True), primary_key=True),
    Column("tenant_id", String(64), ForeignKey("tenants.tenant_id"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("meter", String(32)),
    Column("threshold", Numeric, nullable=False),
    Column("currency", String(3)),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

alert_firings = Table(
    "alert_firings",
    metadata,
    Column("alert_id", UUID(as_uuid=True), ForeignKey("alerts.alert_id", ondelete="CASCADE"), nullable=False),
    Column("occurrence", String(100), nullable=False),  # the period's start, or "grant:<id>"
    Column("event_id", String(64)),  # set right after the firing claims its occurrence
    Column("fired_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    PrimaryKeyConstraint("alert_id", "occurrence"),
)
