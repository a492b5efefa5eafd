"""Billing: subscriptions, invoices and processed Stripe webhook events (schema web).

Revision ID: 0114_billing
Revises: 0001_foundation
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0114_billing"
down_revision = "0113_provider_keys"
branch_labels = None
depends_on = None

S = "web"


def _ts(name, nullable=False):
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=nullable, server_default=None if nullable else sa.text("now()")
    )


def upgrade():
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False, unique=True),
        sa.Column("stripe_subscription_id", sa.Text, unique=True),
        sa.Column("stripe_customer_id", sa.Text, nullable=False),
        sa.Column("tier", sa.Text, nullable=False, server_default="apprentice"),
        sa.Column("interval", sa.Text, nullable=False, server_default="month"),
        sa.Column("status", sa.Text, nullable=False, server_default="active"),
        _ts("current_period_start", nullable=True),
        _ts("current_period_end", nullable=True),
        _ts("cancel_at", nullable=True),
        _ts("past_due_since", nullable=True),
        sa.Column("applied_tier", sa.Text, nullable=False, server_default="apprentice"),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint("tier IN ('apprentice', 'adventurer', 'dungeon_master', 'guild')", name="subscription_tier"),
        schema=S,
    )
    op.create_index("ix_subscriptions_stripe_customer_id", "subscriptions", ["stripe_customer_id"], schema=S)
    op.create_table(
        "invoices",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("stripe_subscription_id", sa.Text),
        sa.Column("number", sa.Text),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("currency", sa.Text, nullable=False, server_default="usd"),
        sa.Column("amount_due", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("amount_paid", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("hosted_invoice_url", sa.Text),
        _ts("period_start", nullable=True),
        _ts("period_end", nullable=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        _ts("updated_at"),
        schema=S,
    )
    op.execute(f"CREATE INDEX ix_invoices_tenant_created ON {S}.invoices (tenant_id, created DESC)")
    op.create_table(
        "billing_events",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("type", sa.Text, nullable=False),
        sa.Column("tenant_id", sa.Text),
        sa.Column("outcome", sa.Text, nullable=False, server_default="applied"),
        _ts("processed_at"),
        schema=S,
    )


def downgrade():
    for table in ("billing_events", "invoices", "subscriptions"):
        op.drop_table(table, schema=S)
