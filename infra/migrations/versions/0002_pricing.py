"""pricing: catalogs, catalog_versions, tenant_pricing, credit_entries; seeds the pricing sheet

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

# The pricing sheet (design.md §6) as pricing/default_catalog.json held it when this migration
# was written. Frozen here on purpose: PostgreSQL is the system of record from now on, and a
# later edit of that file must not give new databases a different price history than old ones.
CATALOG = "enis-cloud"
CURRENCY = "usd"
UNITS = {
    "cpu_seconds": {"unit": "CPU-hour", "plural": "CPU-hours", "divide_by": "3600"},
    "memory_gb_hours": {"unit": "GB-hour of memory", "plural": "GB-hours of memory", "divide_by": "1"},
    "storage_gb_hours": {"unit": "GB-hour of storage", "plural": "GB-hours of storage", "divide_by": "1"},
    "network_gb": {"unit": "GB of network egress", "plural": "GB of network egress", "divide_by": "1"},
    "executions": {"unit": "execution", "plural": "executions", "divide_by": "1"},
}


def _per_unit(cents: str) -> dict[str, str]:
    return {"currency": "usd", "billing_scheme": "per_unit", "unit_amount_decimal": cents}


FIRST_VERSION = {
    "version": "2024-01",
    "effective_from": "2024-01-01T00:00:00Z",
    "plans": {
        "zero": {"prices": {"executions": _per_unit("0.1"), "network_gb": _per_unit("10")}},
        "shared": {"prices": {"cpu_seconds": _per_unit("5"), "memory_gb_hours": _per_unit("1")}},
        "lite": {
            "prices_from": "shared",
            "included_monthly": {"cpu_seconds": "720", "memory_gb_hours": "2880"},
            "base_fee_monthly_decimal": "9900",
        },
        "enterprise": {"prices_from": "shared", "minimum_monthly_decimal": "500000"},
        "airgapped": {"prices": {}, "licence_fee_decimal": "5000000", "support_yearly_decimal": "1000000"},
    },
}

APPEND_ONLY = ("catalog_versions", "credit_entries")


def upgrade() -> None:
    op.create_table(
        "catalogs",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("units", JSONB, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
    )
    op.create_table(
        "catalog_versions",
        sa.Column("catalog", sa.String(64), sa.ForeignKey("catalogs.name"), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("effective_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("document", JSONB, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("catalog", "version"),
        sa.UniqueConstraint("catalog", "effective_from"),
    )
    op.create_table(
        "tenant_pricing",
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id"), primary_key=True),
        sa.Column("settings", JSONB, nullable=False),
        sa.Column("revision", sa.BigInteger, nullable=False, server_default="1"),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "credit_entries",
        sa.Column("entry_id", sa.BigInteger, sa.Identity(), primary_key=True),
        sa.Column("tenant_id", sa.String(64), sa.ForeignKey("tenants.tenant_id"), nullable=False),
        sa.Column("entry_type", sa.String(8), nullable=False),
        sa.Column("grant_id", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("amount_minor", sa.Numeric, nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("kind", sa.String(16)),
        sa.Column("priority", sa.Integer),
        sa.Column("expires_at", sa.DateTime(timezone=True)),
        sa.Column("reference", sa.String(200)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.CheckConstraint("entry_type IN ('grant', 'debit')", name="credit_entries_type"),
        sa.CheckConstraint(
            "amount_minor > 0 AND amount_minor = trunc(amount_minor)", name="credit_entries_whole"
        ),
        sa.CheckConstraint(
            "entry_type = 'debit' OR kind IN ('prepaid', 'promotional')", name="credit_entries_grant_kind"
        ),
    )
    op.create_index("credit_entries_tenant", "credit_entries", ["tenant_id", "entry_id"])
    op.create_index(
        "credit_entries_one_grant",
        "credit_entries",
        ["tenant_id", "grant_id"],
        unique=True,
        postgresql_where=sa.text("entry_type = 'grant'"),
    )
    _refuse_rewrites()
    _seed()


def _refuse_rewrites() -> None:
    """History is append-only: a corrected price is a new version, a reversed credit a new entry."""
    op.execute(
        "CREATE FUNCTION refuse_rewrite() RETURNS trigger LANGUAGE plpgsql AS $$ "
        "BEGIN RAISE EXCEPTION '% is append-only', TG_TABLE_NAME; END $$"
    )
    for table in APPEND_ONLY:
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION refuse_rewrite()"
        )


def _seed() -> None:
    bind = op.get_bind()
    bind.execute(
        sa.text(
            "INSERT INTO catalogs (name, currency, units) VALUES (:name, :currency, CAST(:units AS jsonb))"
        ),
        {"name": CATALOG, "currency": CURRENCY, "units": json.dumps(UNITS)},
    )
    bind.execute(
        sa.text(
            "INSERT INTO catalog_versions (catalog, version, effective_from, document, created_by) "
            "VALUES (:catalog, :version, :effective_from, CAST(:document AS jsonb), "
            "'migration 0002')"
        ),
        {
            "catalog": CATALOG,
            "version": FIRST_VERSION["version"],
            "effective_from": datetime(2024, 1, 1, tzinfo=UTC),
            "document": json.dumps(FIRST_VERSION),
        },
    )


def downgrade() -> None:
    for table in APPEND_ONLY:
        op.execute(f"DROP TRIGGER {table}_append_only ON {table}")
    op.execute("DROP FUNCTION refuse_rewrite()")
    op.drop_table("credit_entries")
    op.drop_table("tenant_pricing")
    op.drop_table("catalog_versions")
    op.drop_table("catalogs")
