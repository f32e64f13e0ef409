"""payments: an `abandoned` status, for a payer who left the provider's approval page without
approving (issue 19). Nothing was taken and the invoice can be paid again; a pending payment would
have blocked every new attempt, and a failed one would have started dunning.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-05
"""

from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None

BEFORE = ("pending", "completed", "failed", "partially_refunded", "refunded")
AFTER = (*BEFORE, "abandoned")


def upgrade() -> None:
    op.drop_constraint("payments_status", "payments", type_="check")
    op.create_check_constraint("payments_status", "payments", f"status IN {AFTER}")


def downgrade() -> None:
    op.execute("UPDATE payments SET status = 'failed' WHERE status = 'abandoned'")
    op.drop_constraint("payments_status", "payments", type_="check")
    op.create_check_constraint("payments_status", "payments", f"status IN {BEFORE}")
