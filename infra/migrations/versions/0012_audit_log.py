"""audit_log: every money-affecting action, with who did it, when, and the state before and after
(issue 7)

Append-only twice over: a trigger refuses UPDATE, DELETE and TRUNCATE for every role, superusers
and the table's owner included (the guarantee that holds when the service connects as the owner,
as it does in development and tests), and UPDATE, DELETE and TRUNCATE are revoked from PUBLIC, so
an application role granted only INSERT and SELECT (docs/operations.md) is refused by privilege
before the trigger is even reached.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-25
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("actor", sa.Text, nullable=False),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("subject_type", sa.Text, nullable=False),
        sa.Column("subject_id", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.Text),
        sa.Column("before", JSONB),
        sa.Column("after", JSONB),
        sa.Column("request_id", sa.Text),
    )
    # GET /audit filters by tenant or by action, newest first.
    op.create_index("audit_log_by_tenant", "audit_log", ["tenant_id", "id"])
    op.create_index("audit_log_by_action", "audit_log", ["action", "id"])
    op.create_index("audit_log_by_time", "audit_log", ["at"])
    op.execute(
        """
        CREATE FUNCTION append_only_guard() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
          RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP;
        END $$
        """
    )
    op.execute(
        "CREATE TRIGGER audit_log_append_only BEFORE UPDATE OR DELETE ON audit_log "
        "FOR EACH ROW EXECUTE FUNCTION append_only_guard()"
    )
    op.execute(
        "CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log "
        "FOR EACH STATEMENT EXECUTE FUNCTION append_only_guard()"
    )
    op.execute("REVOKE UPDATE, DELETE, TRUNCATE ON audit_log FROM PUBLIC")


def downgrade() -> None:
    op.drop_table("audit_log")  # drops its triggers with it
    op.execute("DROP FUNCTION append_only_guard()")
