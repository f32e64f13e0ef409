"""notifications: outbound webhooks (endpoints, a transactional outbox, deliveries and their
attempts) and per-tenant alerts with their firings (issue 17)

An event row is written in the transaction of the change that caused it, with one delivery row per
endpoint subscribed to it at that moment (fan-out at record time), so a rolled-back change never
emits and an endpoint added later does not receive older events. A delivery is claimed by a
worker under a lease (`lease_until`) and retried until `give_up_at` (NULL: the retry window after
it was recorded); `webhook-id` is the event id, the same on every retry. A firing is unique per
alert and occurrence (a billing period, or a credit grant), inserted with its outbox event: an
alert fires once per period.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

NOW = sa.text("now()")


def upgrade() -> None:
    op.create_table(
        "webhook_endpoints",
        sa.Column("endpoint_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", sa.String(64)),  # NULL: a platform endpoint, every tenant's events
        sa.Column("url", sa.Text, nullable=False),
        sa.Column("event_types", postgresql.JSONB, nullable=False),  # ["invoice.paid", ...] or ["*"]
        sa.Column("secret", sa.Text, nullable=False),  # sealed (infra/field_encryption.py)
        sa.Column("previous_secret", sa.Text),  # sealed; still signs until previous_secret_until
        sa.Column("previous_secret_until", sa.DateTime(timezone=True)),
        sa.Column("enabled", sa.Boolean, nullable=False, server_default=sa.true()),
        sa.Column("disabled_reason", sa.Text),
        sa.Column("failing_since", sa.DateTime(timezone=True)),  # first failure since the last success
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("deleted_at", sa.DateTime(timezone=True)),  # kept, so deliveries keep their history
    )
    op.create_index("webhook_endpoints_by_tenant", "webhook_endpoints", ["tenant_id"])
    op.create_table(
        "webhook_events",
        sa.Column("event_id", sa.String(64), primary_key=True),  # the webhook-id
        sa.Column("type", sa.String(64), nullable=False),
        sa.Column("tenant_id", sa.String(64)),
        sa.Column("body", postgresql.JSONB, nullable=False),  # {"id", "type", "created_at", "data"}
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
    )
    op.create_table(
        "webhook_deliveries",
        sa.Column("delivery_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("event_id", sa.String(64), sa.ForeignKey("webhook_events.event_id"), nullable=False),
        sa.Column(
            "endpoint_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("webhook_endpoints.endpoint_id"), nullable=False
        ),
        sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("give_up_at", sa.DateTime(timezone=True)),  # NULL: created_at + the retry window
        sa.Column("lease_owner", sa.Text),
        sa.Column("lease_until", sa.DateTime(timezone=True)),
        sa.Column("last_status_code", sa.Integer),
        sa.Column("last_error", sa.Text),
        sa.Column("delivered_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.UniqueConstraint("event_id", "endpoint_id", name="webhook_deliveries_once"),
        sa.CheckConstraint(
            "status IN ('pending', 'delivered', 'failed', 'cancelled')", name="webhook_deliveries_status"
        ),
    )
    # What the workers scan: due pending deliveries, oldest first.
    op.create_index(
        "webhook_deliveries_due",
        "webhook_deliveries",
        ["next_attempt_at"],
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index("webhook_deliveries_by_endpoint", "webhook_deliveries", ["endpoint_id", "created_at"])
    op.create_table(
        "webhook_attempts",
        sa.Column("attempt_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column(
            "delivery_id",
            postgresql.UUID(as_uuid=True),
            sa.ForeignKey("webhook_deliveries.delivery_id"),
            nullable=False,
        ),
        sa.Column("attempted_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.Column("status_code", sa.Integer),
        sa.Column("error", sa.Text),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("worker", sa.Text, nullable=False),
    )
    op.create_index("webhook_attempts_by_delivery", "webhook_attempts", ["delivery_id", "attempt_id"])
    op.create_table(
        "alerts",
        sa.Column("alert_id", postgresql.UUID(as_uuid=True), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id"), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("meter", sa.String(32)),
        sa.Column("threshold", sa.Numeric, nullable=False),
        sa.Column("currency", sa.String(3)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.CheckConstraint(
            "kind IN ('usage', 'spend', 'spend_forecast', 'credits_balance', 'credits_expiring')",
            name="alerts_kind",
        ),
        sa.CheckConstraint("threshold >= 0", name="alerts_threshold"),
    )
    op.create_index("alerts_by_tenant", "alerts", ["tenant_id"])
    op.create_table(
        "alert_firings",
        sa.Column(
            "alert_id", postgresql.UUID(as_uuid=True), sa.ForeignKey("alerts.alert_id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("occurrence", sa.String(100), nullable=False),  # the period's start, or "grant:<id>"
        sa.Column("event_id", sa.String(64)),  # set right after the firing claims its occurrence
        sa.Column("fired_at", sa.DateTime(timezone=True), nullable=False, server_default=NOW),
        sa.PrimaryKeyConstraint("alert_id", "occurrence"),
    )


def downgrade() -> None:
    op.drop_table("alert_firings")
    op.drop_index("alerts_by_tenant", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("webhook_attempts_by_delivery", table_name="webhook_attempts")
    op.drop_table("webhook_attempts")
    op.drop_index("webhook_deliveries_by_endpoint", table_name="webhook_deliveries")
    op.drop_index("webhook_deliveries_due", table_name="webhook_deliveries")
    op.drop_table("webhook_deliveries")
    op.drop_table("webhook_events")
    op.drop_index("webhook_endpoints_by_tenant", table_name="webhook_endpoints")
    op.drop_table("webhook_endpoints")
