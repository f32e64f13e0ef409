"""metering: tenants, usage_hourly, usage_stream_offsets

Revision ID: 0001
Revises:
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

METERS = ("cpu_seconds", "memory_gb_hours", "storage_gb_hours", "network_gb", "executions")


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("tenant_id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("tier", sa.String(16), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("country", sa.String(2), nullable=False),
        sa.Column("region", sa.String(64)),
        sa.Column("vat_id", sa.String(32)),
        sa.Column("locale", sa.String(16), nullable=False, server_default="en"),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.CheckConstraint(
            "tier IN ('zero', 'shared', 'lite', 'enterprise', 'airgapped')", name="tenants_tier"
        ),
    )
    op.create_table(
        "usage_hourly",
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("hour_start", sa.DateTime(timezone=True), nullable=False),
        *(
            sa.Column(
                meter, sa.Numeric, sa.CheckConstraint(f"{meter} >= 0"), nullable=False, server_default="0"
            )
            for meter in METERS
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "hour_start"),
    )
    op.create_index("usage_hourly_hour", "usage_hourly", ["hour_start"])
    op.create_table(
        "usage_stream_offsets",
        sa.Column("stream", sa.String(128), primary_key=True),
        sa.Column("last_ms", sa.BigInteger, nullable=False),
        sa.Column("last_seq", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("usage_stream_offsets")
    op.drop_table("usage_hourly")
    op.drop_table("tenants")
