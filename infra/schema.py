"""The PostgreSQL tables, as SQLAlchemy Core metadata. Migrations (infra/migrations) create them;
this module is what queries are written against."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    MetaData,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    func,
)

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
    Column("vat_id", String(32)),
    Column("locale", String(16), nullable=False, server_default="en"),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
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

# The last Redis stream entry whose usage is in usage_hourly, written in the same transaction as
# the usage itself: replay after a crash skips every entry up to it.
usage_stream_offsets = Table(
    "usage_stream_offsets",
    metadata,
    Column("stream", String(128), primary_key=True),
    Column("last_ms", BigInteger, nullable=False),
    Column("last_seq", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)
