"""credit_notes, invoice_adjustments, invoice_runs: corrections to finalized invoices, late usage
carried onto a later invoice, and invoice runs with their progress

Credit notes and adjustments are written once, like the finalized invoices they reference, and
the database refuses to change or delete them. A credit note is numbered in its own gapless
series (issuer "<issuer>-CN", invoice_store.next_number).

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

WRITE_ONCE = ("credit_notes", "invoice_adjustments")


def upgrade() -> None:
    op.create_table(
        "credit_notes",
        sa.Column("credit_note_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("invoice_id", UUID(as_uuid=True), sa.ForeignKey("invoices.invoice_id"), nullable=False),
        sa.Column("number", sa.String(64), nullable=False, unique=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("subtotal", sa.Numeric, sa.CheckConstraint("subtotal > 0"), nullable=False),
        sa.Column("tax", sa.Numeric, sa.CheckConstraint("tax >= 0"), nullable=False),
        sa.Column("total", sa.Numeric, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.CheckConstraint("total = subtotal + tax", name="credit_notes_total"),
    )
    op.create_index("credit_notes_by_invoice", "credit_notes", ["invoice_id"])
    op.create_table(
        "invoice_adjustments",
        # Late usage of `source`'s period, charged on `target`: after it, `source`'s period is
        # billed as `usage` for `charged` (before credits, in the source invoice's currency).
        sa.Column("source_invoice_id", UUID(as_uuid=True), sa.ForeignKey("invoices.invoice_id")),
        sa.Column("target_invoice_id", UUID(as_uuid=True), sa.ForeignKey("invoices.invoice_id")),
        sa.Column("usage", JSONB, nullable=False),
        sa.Column("charged", sa.Numeric, nullable=False),
        sa.Column("amount", sa.Numeric, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.PrimaryKeyConstraint("source_invoice_id", "target_invoice_id"),
    )
    op.execute(
        """
        CREATE FUNCTION write_once_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION '% rows are written once: they never change; issue a new one', TG_TABLE_NAME;
        END $$
        """
    )
    for table in WRITE_ONCE:
        op.execute(
            f"CREATE TRIGGER {table}_write_once BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION write_once_guard()"
        )
    op.create_table(
        "invoice_runs",
        sa.Column("run_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("trigger", sa.String(16), nullable=False),  # schedule | api | cli
        sa.Column("status", sa.String(16), nullable=False),  # pending | running | completed | failed
        sa.Column("finalize", sa.Boolean, nullable=False),
        sa.Column("pdfs", sa.Boolean, nullable=False),
        sa.Column("owner", sa.String(200)),
        sa.Column("heartbeat_at", sa.DateTime(timezone=True)),
        sa.Column("tenants_total", sa.Integer),
        sa.Column("tenants_done", sa.Integer, nullable=False, server_default="0"),
        sa.Column("outcomes", JSONB, nullable=False, server_default="{}"),
        sa.Column("totals", JSONB, nullable=False, server_default="{}"),
        sa.Column("failures", JSONB, nullable=False, server_default="[]"),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("started_at", sa.DateTime(timezone=True)),
        sa.Column("finished_at", sa.DateTime(timezone=True)),
        sa.CheckConstraint(
            "status IN ('pending', 'running', 'completed', 'failed')", name="invoice_runs_status"
        ),
    )
    # The schedule starts a period's run once, however many replicas ask at the same time.
    op.create_index(
        "invoice_runs_scheduled_once",
        "invoice_runs",
        ["period_start", "period_end"],
        unique=True,
        postgresql_where=sa.text("trigger = 'schedule'"),
    )


def downgrade() -> None:
    op.drop_table("invoice_runs")
    for table in WRITE_ONCE:
        op.execute(f"DROP TRIGGER {table}_write_once ON {table}")
    op.execute("DROP FUNCTION write_once_guard()")
    op.drop_table("invoice_adjustments")
    op.drop_table("credit_notes")
