"""Security hardening (issue 8): Discord server ownership.

- ``web.users.discord_guilds_at``: when the user's Discord server list (with the Manage Server
  permission of each) was last read from Discord, so a stale grant asks to sign in again.
- ``web.guild_claims``: which table a Discord server belongs to. The primary key makes a server
  belong to at most one table; saving Settings → Discord and the operators' reassignment write it.

Revision ID: 0108_security
Revises: 0001_foundation
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0108_security"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

S = "web"


def upgrade():
    op.add_column("users", sa.Column("discord_guilds_at", sa.DateTime(timezone=True), nullable=True), schema=S)
    op.create_table(
        "guild_claims",
        sa.Column("guild_id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("claimed_by", sa.Text, nullable=True),  # user id (no FK: users may go, the claim stays)
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("guild_id ~ '^[0-9]{17,20}$'", name="guild_claim_snowflake"),
        schema=S,
    )
    op.create_index("ix_guild_claims_tenant_id", "guild_claims", ["tenant_id"], schema=S)


def downgrade():
    op.drop_index("ix_guild_claims_tenant_id", table_name="guild_claims", schema=S)
    op.drop_table("guild_claims", schema=S)
    op.drop_column("users", "discord_guilds_at", schema=S)
