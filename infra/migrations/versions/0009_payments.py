"""payments, payment_events, refunds, payment_attempts, bank_credits, payment_methods

A payment is one attempt to collect an invoice through one method, keyed by the caller's
Idempotency-Key; its provider calls carry keys derived from its id, so a retry never charges
twice. Webhook events are kept once per provider event id. A bank statement line is applied once
per bank entry id. Provider customer and method ids are stored encrypted (infra.field_encryption).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import UUID

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

PAYMENT_STATUSES = ("pending", "completed", "failed", "partially_refunded", "refunded")


def upgrade() -> None:
    op.create_table(
        "payment_methods",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id"), nullable=False),
        sa.Column("provider", sa.String(16), nullable=False),  # stripe | paypal
        sa.Column("customer_ref", sa.Text),  # encrypted provider customer id
        sa.Column("method_ref", sa.Text, nullable=False),  # encrypted provider method / vault id
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("tenant_id", "provider"),
    )
    op.create_table(
        "payments",
        sa.Column("payment_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("invoice_id", UUID(as_uuid=True), sa.ForeignKey("invoices.invoice_id"), nullable=False),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False, unique=True),
        sa.Column("status", sa.String(24), nullable=False),
        sa.Column("amount", sa.Numeric, sa.CheckConstraint("amount > 0"), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("received", sa.Numeric, nullable=False, server_default="0"),
        sa.Column("refunded", sa.Numeric, nullable=False, server_default="0"),
        sa.Column("transaction_id", sa.String(200)),
        sa.Column("approval_url", sa.Text),
        sa.Column("instructions", sa.Text),
        sa.Column("failure_code", sa.String(100)),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_retry_at", sa.DateTime(timezone=True)),
        sa.Column("last_event_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.CheckConstraint(f"status IN {PAYMENT_STATUSES}", name="payments_status"),
        sa.CheckConstraint("refunded <= received", name="payments_refund_within_received"),
    )
    op.create_index("payments_by_invoice", "payments", ["invoice_id"])
    op.create_index("payments_by_transaction", "payments", ["method", "transaction_id"])
    op.create_index(
        "payments_due_for_retry", "payments", ["next_retry_at"], postgresql_where=sa.text("status = 'failed'")
    )
    op.create_table(
        "payment_attempts",  # each charge attempt and each dunning reminder, for the API
        sa.Column("payment_id", UUID(as_uuid=True), sa.ForeignKey("payments.payment_id"), nullable=False),
        sa.Column("attempt", sa.Integer, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(24), nullable=False),
        sa.Column("failure_code", sa.String(100)),
        sa.Column("reminder", sa.Text),
        sa.PrimaryKeyConstraint("payment_id", "attempt"),
    )
    op.create_table(
        "refunds",
        sa.Column("refund_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("payment_id", UUID(as_uuid=True), sa.ForeignKey("payments.payment_id"), nullable=False),
        sa.Column("idempotency_key", sa.String(255), nullable=False, unique=True),
        sa.Column("amount", sa.Numeric, sa.CheckConstraint("amount > 0"), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("provider_refund_id", sa.String(200)),
        sa.Column("reason", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "payment_events",
        sa.Column("provider", sa.String(16), nullable=False),
        sa.Column("event_id", sa.String(200), nullable=False),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payment_id", UUID(as_uuid=True)),
        sa.Column("outcome", sa.String(200), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("provider", "event_id"),
    )
    op.create_table(
        "bank_credits",
        sa.Column("entry_id", sa.String(200), primary_key=True),
        sa.Column("amount", sa.Numeric, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("booking_date", sa.Date, nullable=False),
        sa.Column("reference", sa.String(200)),
        sa.Column("debtor_ref", sa.Text),  # encrypted: the payer's name and account
        sa.Column("match", sa.String(16), nullable=False),
        sa.Column("invoice_id", UUID(as_uuid=True), sa.ForeignKey("invoices.invoice_id")),
        sa.Column("applied", sa.Numeric, nullable=False),
        sa.Column("overpaid", sa.Numeric, nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )


def downgrade() -> None:
    for table in (
        "bank_credits",
        "payment_events",
        "refunds",
        "payment_attempts",
        "payments",
        "payment_methods",
    ):
        op.drop_table(table)
