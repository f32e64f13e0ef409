"""invoice_documents: what a legally complete invoice needs from the tenant record (issue 14)

The buyer's postal address (art. 226 (5) Directive 2006/112/EC), an e-mail for invoices, payment
terms in days (NULL: the seller's default, 14), and a buyer reference: a German public buyer's
Leitweg-ID, which XRechnung carries as BT-10.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("tenants", sa.Column("address", postgresql.JSONB))
    op.add_column("tenants", sa.Column("email", sa.String(254)))
    op.add_column("tenants", sa.Column("payment_terms_days", sa.Integer))
    op.add_column("tenants", sa.Column("buyer_reference", sa.String(64)))
    op.create_check_constraint(
        "tenants_payment_terms_days", "tenants", "payment_terms_days BETWEEN 0 AND 365"
    )


def downgrade() -> None:
    op.drop_constraint("tenants_payment_terms_days", "tenants")
    for column in ("buyer_reference", "payment_terms_days", "email", "address"):
        op.drop_column("tenants", column)
