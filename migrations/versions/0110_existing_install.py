"""Serve an existing installation: campaigns keyed per tenant, the gateway owns the active
campaign, campaigns found in gateway data, tenant invitations (adoption).

- ``web.campaigns``: primary key ``(tenant_id, id)`` (campaign ids are free-form and unique only
  within a tenant on the gateway); ``origin`` says whether we created it (``web``) or found its id
  in the tenant's gateway data (``gateway``: "found in Discord sessions").
- ``web.tenants.active_campaign_id`` is removed: the gateway's ``public.tenants.campaign_id`` is
  the one source of truth.
- ``web.campaign_tombstones``: ids of deleted campaigns, so an id still present in the gateway's
  old sessions is not registered again as "found".
- ``web.tenant_invitations``: who may join an adopted tenant (by Discord user id and/or a one-time
  signed link).

Touches schema ``web`` only; nothing of the gateway's.

Revision ID: 0110_existing_install
Revises: 0001_foundation
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0110_existing_install"
down_revision = "0108_security"
branch_labels = None
depends_on = None

S = "web"


def upgrade():
    op.execute(
        f"ALTER TABLE {S}.campaigns DROP CONSTRAINT pk_campaigns, "
        "ADD CONSTRAINT pk_campaigns PRIMARY KEY (tenant_id, id)"
    )
    op.drop_index("ix_campaigns_tenant_id", "campaigns", schema=S)  # the primary key leads with tenant_id
    op.add_column("campaigns", sa.Column("origin", sa.Text, nullable=False, server_default="web"), schema=S)
    op.execute(
        f"ALTER TABLE {S}.campaigns ADD CONSTRAINT ck_campaigns_campaign_origin CHECK (origin IN ('web', 'gateway'))"
    )
    op.drop_column("tenants", "active_campaign_id", schema=S)
    op.create_table(
        "campaign_tombstones",
        sa.Column("tenant_id", sa.Text, primary_key=True),
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("deleted_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        schema=S,
    )
    op.create_table(
        "tenant_invitations",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("discord_id", sa.Text),
        sa.Column("role", sa.Text, nullable=False, server_default="tenant_owner"),
        sa.Column("link", sa.Boolean, nullable=False, server_default=sa.text("false")),
        sa.Column("created_by", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True)),
        sa.Column("used_by", sa.Text),
        sa.CheckConstraint("role IN ('tenant_owner', 'dm', 'viewer')", name="invitation_role"),
        sa.CheckConstraint("discord_id IS NOT NULL OR link", name="invitation_has_a_way_in"),
        schema=S,
    )
    op.create_index("ix_tenant_invitations_tenant", "tenant_invitations", ["tenant_id"], schema=S)
    op.execute(
        f"CREATE INDEX ix_tenant_invitations_discord ON {S}.tenant_invitations (discord_id) "
        "WHERE used_at IS NULL AND discord_id IS NOT NULL"
    )


def downgrade():
    op.drop_table("tenant_invitations", schema=S)
    op.drop_table("campaign_tombstones", schema=S)
    op.add_column("tenants", sa.Column("active_campaign_id", sa.Text, nullable=False, server_default=""), schema=S)
    op.drop_column("campaigns", "origin", schema=S)  # drops its check constraint too
    op.create_index("ix_campaigns_tenant_id", "campaigns", ["tenant_id"], schema=S)
    # Fails (and changes nothing) if two tenants now share a campaign id.
    op.execute(f"ALTER TABLE {S}.campaigns DROP CONSTRAINT pk_campaigns, ADD CONSTRAINT pk_campaigns PRIMARY KEY (id)")
