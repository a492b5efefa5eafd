"""Support tickets (plan Phase 3): the local store, and the Freshdesk id when Freshdesk is used.

Revision ID: 0116_operators
Revises: 0114_billing
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0116_operators"
down_revision = "0112_team"
branch_labels = None
depends_on = None

S = "web"


def upgrade():
    op.create_table(
        "support_tickets",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("category", sa.Text, nullable=False, server_default="question"),
        sa.Column("session_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="open"),
        sa.Column("backend", sa.Text, nullable=False, server_default="local"),
        sa.Column("external_id", sa.Text),
        sa.Column("synced_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("status IN ('open', 'pending', 'resolved', 'closed')", name="support_ticket_status"),
        schema=S,
    )
    op.create_index(
        "ix_support_tickets_tenant_time",
        "support_tickets",
        ["tenant_id", sa.text("created_at DESC"), sa.text("id DESC")],
        schema=S,
    )
    op.create_index(
        "ix_support_tickets_status_time",
        "support_tickets",
        ["status", sa.text("created_at DESC"), sa.text("id DESC")],
        schema=S,
    )
    op.create_table(
        "support_replies",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("ticket_id", sa.Text, sa.ForeignKey("web.support_tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Text),
        sa.Column("from_support", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("author", sa.Text, nullable=False, server_default=""),
        sa.Column("body", sa.Text, nullable=False),
        sa.Column("external_id", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.UniqueConstraint("ticket_id", "external_id", name="uq_support_replies_ticket_external"),
        schema=S,
    )
    op.create_index("ix_support_replies_ticket", "support_replies", ["ticket_id", "id"], schema=S)


def downgrade():
    op.drop_table("support_replies", schema=S)
    op.drop_table("support_tickets", schema=S)
