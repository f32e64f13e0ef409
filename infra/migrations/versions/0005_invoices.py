"""invoices, invoice_lines, invoice_numbers: one invoice per tenant and period, immutable once
finalized (enforced here, in the database), numbered without gaps per issuer and year

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB, UUID

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

STATUSES = ("draft", "finalized", "paid", "void", "uncollectible")
# After finalization only the status may move on, and only along these edges.
TRANSITIONS = (
    ("draft", "finalized"),
    ("finalized", "paid"),
    ("finalized", "void"),
    ("finalized", "uncollectible"),
    ("uncollectible", "paid"),
)


def upgrade() -> None:
    op.create_table(
        "invoice_numbers",
        sa.Column("issuer", sa.String(32), nullable=False),
        sa.Column("year", sa.Integer, nullable=False),
        sa.Column("last_number", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("issuer", "year"),
    )
    op.create_table(
        "invoices",
        sa.Column("invoice_id", UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id"), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("period_end", sa.DateTime(timezone=True), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="draft"),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("subtotal", sa.Numeric, nullable=False),
        sa.Column("tax", sa.Numeric, nullable=False),
        sa.Column("total", sa.Numeric, nullable=False),
        sa.Column("issuer", sa.String(32), nullable=False),
        sa.Column("number", sa.String(64), unique=True),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("pdf_sha256", sa.String(64)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("finalized_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("tenant_id", "period_start", "period_end", name="invoices_one_per_period"),
        sa.CheckConstraint(f"status IN {STATUSES}", name="invoices_status"),
        sa.CheckConstraint("period_start < period_end", name="invoices_period"),
        sa.CheckConstraint("(status = 'draft') = (number IS NULL)", name="invoices_numbered_when_final"),
        sa.CheckConstraint("total = subtotal + tax", name="invoices_total"),
    )
    op.create_table(
        "invoice_lines",
        sa.Column("invoice_id", UUID(as_uuid=True), sa.ForeignKey("invoices.invoice_id"), nullable=False),
        sa.Column("line_no", sa.Integer, nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("meter", sa.String(32)),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("quantity", sa.Numeric, nullable=False),
        sa.Column("unit", sa.String(32)),
        sa.Column("unit_price", sa.Numeric),
        sa.Column("amount", sa.Numeric, nullable=False),
        sa.PrimaryKeyConstraint("invoice_id", "line_no"),
    )
    allowed = " OR ".join(f"(OLD.status = '{a}' AND NEW.status = '{b}')" for a, b in TRANSITIONS)
    op.execute(
        f"""
        CREATE FUNCTION invoices_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          IF TG_OP = 'DELETE' THEN
            IF OLD.status <> 'draft' THEN
              RAISE EXCEPTION 'invoice % is %, and a finalized invoice is never deleted', OLD.invoice_id, OLD.status;
            END IF;
            RETURN OLD;
          END IF;
          IF OLD.status = 'draft' AND NEW.status = 'draft' THEN
            RETURN NEW;
          END IF;
          IF OLD.status <> NEW.status AND NOT ({allowed}) THEN
            RAISE EXCEPTION 'invoice % cannot go from % to %', OLD.invoice_id, OLD.status, NEW.status;
          END IF;
          IF OLD.status <> 'draft' AND (
               (NEW.tenant_id, NEW.period_start, NEW.period_end, NEW.currency, NEW.subtotal, NEW.tax,
                NEW.total, NEW.issuer, NEW.number, NEW.document, NEW.pdf_sha256, NEW.finalized_at)
               IS DISTINCT FROM
               (OLD.tenant_id, OLD.period_start, OLD.period_end, OLD.currency, OLD.subtotal, OLD.tax,
                OLD.total, OLD.issuer, OLD.number, OLD.document, OLD.pdf_sha256, OLD.finalized_at)) THEN
            RAISE EXCEPTION 'invoice % is finalized: it never changes; issue a credit note', OLD.invoice_id;
          END IF;
          RETURN NEW;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER invoices_guard BEFORE UPDATE OR DELETE ON invoices "
        "FOR EACH ROW EXECUTE FUNCTION invoices_guard()"
    )
    op.execute(
        """
        CREATE FUNCTION invoice_lines_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE parent_status text;
        BEGIN
          SELECT status INTO parent_status FROM invoices
            WHERE invoice_id = COALESCE(NEW.invoice_id, OLD.invoice_id);
          IF parent_status IS DISTINCT FROM 'draft' THEN
            RAISE EXCEPTION 'the lines of a % invoice never change', parent_status;
          END IF;
          RETURN COALESCE(NEW, OLD);
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER invoice_lines_guard BEFORE INSERT OR UPDATE OR DELETE ON invoice_lines "
        "FOR EACH ROW EXECUTE FUNCTION invoice_lines_guard()"
    )


def downgrade() -> None:
    op.execute("DROP TRIGGER invoice_lines_guard ON invoice_lines")
    op.execute("DROP FUNCTION invoice_lines_guard()")
    op.execute("DROP TRIGGER invoices_guard ON invoices")
    op.execute("DROP FUNCTION invoices_guard()")
    op.drop_table("invoice_lines")
    op.drop_table("invoices")
    op.drop_table("invoice_numbers")
