"""forecasting: trained models, usage forecasts, projected invoices, churn scores (issue 6)

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "forecast_models",
        sa.Column("version", sa.String(64), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("model", sa.String(64), nullable=False),
        sa.Column("trained_through", sa.Date, nullable=False),
        sa.Column("params", JSONB, nullable=False),
        sa.Column("metrics", JSONB, nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "usage_forecasts",
        sa.Column("model_version", sa.String(64), sa.ForeignKey("forecast_models.version"), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("meter", sa.String(32), nullable=False),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("quantity", sa.Numeric, nullable=False),
        sa.Column("lower", sa.Numeric, nullable=False),
        sa.Column("upper", sa.Numeric, nullable=False),
        sa.PrimaryKeyConstraint("model_version", "tenant_id", "meter", "day"),
    )
    op.create_index("usage_forecasts_by_tenant", "usage_forecasts", ["tenant_id", "model_version"])
    op.create_table(
        "invoice_projections",
        sa.Column("model_version", sa.String(64), sa.ForeignKey("forecast_models.version"), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("subtotal", sa.Numeric, nullable=False),
        sa.Column("lower", sa.Numeric, nullable=False),
        sa.Column("upper", sa.Numeric, nullable=False),
        sa.PrimaryKeyConstraint("model_version", "tenant_id", "period_start"),
    )
    op.create_table(
        "churn_scores",
        sa.Column("model_version", sa.String(64), sa.ForeignKey("forecast_models.version"), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("as_of", sa.Date, nullable=False),
        sa.Column("probability", sa.Numeric, nullable=False),
        sa.Column("drivers", JSONB, nullable=False),
        sa.PrimaryKeyConstraint("model_version", "tenant_id"),
    )


def downgrade() -> None:
    op.drop_table("churn_scores")
    op.drop_table("invoice_projections")
    op.drop_index("usage_forecasts_by_tenant", table_name="usage_forecasts")
    op.drop_table("usage_forecasts")
    op.drop_table("forecast_models")
