"""fx_rates: dated reference rates (units of a currency per 1 EUR), loaded from ECB-layout CSVs

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fx_rates",
        sa.Column("source", sa.String(64), nullable=False),
        sa.Column("rate_date", sa.Date, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("per_eur", sa.Numeric, sa.CheckConstraint("per_eur > 0"), nullable=False),
        sa.PrimaryKeyConstraint("source", "rate_date", "currency"),
    )


def downgrade() -> None:
    op.drop_table("fx_rates")
