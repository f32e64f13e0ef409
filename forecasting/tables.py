"""The forecasting tables (migration 0011), on the service's metadata: trained models, usage
forecasts with their interval, projected invoices, and churn scores, each under a model version."""

from __future__ import annotations

from sqlalchemy import (
    Column,
    Date,
    DateTime,
    ForeignKey,
    Numeric,
    PrimaryKeyConstraint,
    String,
    Table,
    Text,
    func,
)
from sqlalchemy.dialects.postgresql import JSONB

from infra.schema import metadata

# One row per trained model; its files are under data_dir/models/<version>.
forecast_models = Table(
    "forecast_models",
    metadata,
    Column("version", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # usage | churn
    Column("model", String(64), nullable=False),  # what was fitted, e.g. ridge-log-calendar-lag35
    Column("trained_through", Date, nullable=False),  # the last day of history it saw
    Column("params", JSONB, nullable=False),
    Column("metrics", JSONB, nullable=False),
    Column("path", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
)

usage_forecasts = Table(
    "usage_forecasts",
    metadata,
    Column("model_version", String(64), ForeignKey("forecast_models.version"), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("meter", String(32), nullable=False),
    Column("day", Date, nullable=False),
    Column("quantity", Numeric, nullable=False),  # the median
    Column("lower", Numeric, nullable=False),  # 90% interval
    Column("upper", Numeric, nullable=False),
    PrimaryKeyConstraint("model_version", "tenant_id", "meter", "day"),
)

# The month-end invoice subtotal a usage forecast implies: usage so far plus the forecast for the
# rest of the month, rated by the pricing engine, in the catalog's currency.
invoice_projections = Table(
    "invoice_projections",
    metadata,
    Column("model_version", String(64), ForeignKey("forecast_models.version"), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("period_start", DateTime(timezone=True), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("subtotal", Numeric, nullable=False),
    Column("lower", Numeric, nullable=False),
    Column("upper", Numeric, nullable=False),
    PrimaryKeyConstraint("model_version", "tenant_id", "period_start"),
)

churn_scores = Table(
    "churn_scores",
    metadata,
    Column("model_version", String(64), ForeignKey("forecast_models.version"), nullable=False),
    Column("tenant_id", String(64), nullable=False),
    Column("as_of", Date, nullable=False),
    Column("probability", Numeric, nullable=False),
    Column("drivers", JSONB, nullable=False),  # [{"feature", "contribution"}], strongest first
    PrimaryKeyConstraint("model_version", "tenant_id"),
)
