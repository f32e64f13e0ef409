"""run_leases: each invoice run records until when its owner holds it

The owner states its own lease (its heartbeat interval is a third of it); a claimant used to judge
staleness by its own lease setting, so a CLI run with a 60 s lease was taken over by a replica
configured for 3 s.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("invoice_runs", sa.Column("lease_until", sa.DateTime(timezone=True)))
    op.execute("UPDATE invoice_runs SET lease_until = heartbeat_at + interval '60 seconds'")


def downgrade() -> None:
    op.drop_column("invoice_runs", "lease_until")
