"""usage_stream_offsets.epoch: fences a shard instance that outlived its replacement

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "usage_stream_offsets", sa.Column("epoch", sa.BigInteger, nullable=False, server_default="0")
    )


def downgrade() -> None:
    op.drop_column("usage_stream_offsets", "epoch")
