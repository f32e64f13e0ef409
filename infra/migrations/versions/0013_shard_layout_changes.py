"""metering_layout: a generation per shard layout, and the target of a change under way

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "metering_layout", sa.Column("generation", sa.BigInteger, nullable=False, server_default="1")
    )
    op.add_column(
        "metering_layout",
        sa.Column("target_shards", sa.Integer, sa.CheckConstraint("target_shards > 0")),
    )
    op.add_column("metering_layout", sa.Column("changed_at", sa.DateTime(timezone=True)))


def downgrade() -> None:
    for column in ("changed_at", "target_shards", "generation"):
        op.drop_column("metering_layout", column)
