"""invoice_pdfs: the rendered PDF of a finalized invoice, kept beside the frozen invoice row (a
render happens after the numbering transaction, off its lock)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invoice_pdfs",
        sa.Column("invoice_id", UUID(as_uuid=True), sa.ForeignKey("invoices.invoice_id"), primary_key=True),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("rendered_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    op.drop_table("invoice_pdfs")
