"""web.tenants.campaigns_found_at: when the campaign ids in a tenant's gateway data were first
registered in full. Each process's first round for a tenant read every tenant's NPCs (the gateway's
npc_definitions has no tenant index); with the mark, only the very first round does. Existing rows
start NULL: their next first round reads once more and marks them.

Revision ID: 0119_campaigns_found
Revises: 0118_churn
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0119_campaigns_found"
down_revision = "0118_churn"
branch_labels = None
depends_on = None

S = "web"


def upgrade():
    op.add_column("tenants", sa.Column("campaigns_found_at", sa.DateTime(timezone=True)), schema=S)


def downgrade():
    op.drop_column("tenants", "campaigns_found_at", schema=S)
