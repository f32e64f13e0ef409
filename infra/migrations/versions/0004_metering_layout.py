"""metering_layout: the shard count usage was written with

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "metering_layout",
        sa.Column("redis_prefix", sa.String(128), primary_key=True),
        sa.Column("shards", sa.Integer, sa.CheckConstraint("shards > 0"), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("metering_layout")
