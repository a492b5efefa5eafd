"""Foundation: tenants, users, login sessions, audit log, campaigns, NPC positions (schema web).

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-27
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None

S = "web"


def _ts(name, nullable=False):
    return sa.Column(
        name, sa.DateTime(timezone=True), nullable=nullable, server_default=None if nullable else sa.text("now()")
    )


def upgrade():
    op.execute(f'CREATE SCHEMA IF NOT EXISTS "{S}"')
    op.create_table(
        "tenants",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False, server_default="active"),
        sa.Column("active_campaign_id", sa.Text, nullable=False, server_default=""),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint("id ~ '^[a-z][a-z0-9_]{0,55}$'", name="tenant_id_slug"),
        sa.CheckConstraint("status IN ('active', 'suspended')", name="tenant_status"),
        schema=S,
    )
    op.create_table(
        "users",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text),
        sa.Column("email", sa.Text, unique=True),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("avatar_url", sa.Text),
        sa.Column("role", sa.Text, nullable=False, server_default="dm"),
        sa.Column("discord_id", sa.Text, unique=True),
        sa.Column("google_id", sa.Text, unique=True),
        sa.Column("github_id", sa.Text, unique=True),
        sa.Column("stripe_customer_id", sa.Text, unique=True),
        sa.Column("email_verified", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("status", sa.Text, nullable=False, server_default="active"),
        sa.Column("discord_guilds", pg.JSONB, nullable=False, server_default=sa.text("'[]'::jsonb")),
        _ts("last_login_at", nullable=True),
        _ts("created_at"),
        _ts("updated_at"),
        sa.CheckConstraint("role IN ('super_admin', 'tenant_owner', 'dm', 'viewer')", name="user_role"),
        sa.CheckConstraint("status IN ('active', 'suspended')", name="user_status"),
        schema=S,
    )
    op.create_index("ix_users_tenant_id", "users", ["tenant_id"], schema=S)
    op.create_table(
        "login_sessions",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("family_id", sa.Text, nullable=False),
        sa.Column("user_id", sa.Text, sa.ForeignKey(f"{S}.users.id", ondelete="CASCADE"), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
        _ts("created_at"),
        _ts("last_seen_at"),
        _ts("expires_at"),
        _ts("rotated_at", nullable=True),
        _ts("revoked_at", nullable=True),
        sa.Column("revoked_reason", sa.Text),
        sa.Column("ip", sa.Text),
        sa.Column("user_agent", sa.Text),
        schema=S,
    )
    op.create_index("ix_login_sessions_family", "login_sessions", ["family_id"], schema=S)
    op.create_index("ix_login_sessions_user", "login_sessions", ["user_id"], schema=S)
    op.create_table(
        "audit_log",
        sa.Column("id", sa.BigInteger, primary_key=True, autoincrement=True),
        sa.Column("tenant_id", sa.Text),
        sa.Column("user_id", sa.Text),
        sa.Column("action", sa.Text, nullable=False),
        sa.Column("resource_type", sa.Text, nullable=False),
        sa.Column("resource_id", sa.Text, nullable=False),
        sa.Column("details", pg.JSONB),
        sa.Column("ip_address", pg.INET),
        _ts("created_at"),
        schema=S,
    )
    op.execute(f"CREATE INDEX ix_audit_tenant_time ON {S}.audit_log (tenant_id, created_at DESC, id DESC)")
    op.create_table(
        "campaigns",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("game_system", sa.Text, nullable=False, server_default=""),
        sa.Column("description", sa.Text, nullable=False, server_default=""),
        sa.Column("settings", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        _ts("archived_at", nullable=True),
        sa.Column("version", sa.Integer, nullable=False, server_default="1"),
        _ts("created_at"),
        _ts("updated_at"),
        schema=S,
    )
    op.create_index("ix_campaigns_tenant_id", "campaigns", ["tenant_id"], schema=S)
    op.create_index("ix_campaigns_tenant_name", "campaigns", ["tenant_id", "name"], schema=S)
    op.create_table(
        "npc_positions",
        sa.Column("npc_id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("campaign_id", sa.Text, nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        schema=S,
    )
    op.create_index("ix_npc_positions_campaign", "npc_positions", ["tenant_id", "campaign_id", "position"], schema=S)


def downgrade():
    for table in ("npc_positions", "campaigns", "audit_log", "login_sessions", "users", "tenants"):
        op.drop_table(table, schema=S)
