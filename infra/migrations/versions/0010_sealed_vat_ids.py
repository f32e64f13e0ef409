"""tenants.vat_id holds an encrypted value (AES-256-GCM, key-versioned), longer than a VAT id

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.alter_column("tenants", "vat_id", type_=sa.Text)


def downgrade() -> None:
    op.alter_column("tenants", "vat_id", type_=sa.String(32))
