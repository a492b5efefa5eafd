"""Team invitations (issue 12): owner-created invitations reuse ``web.tenant_invitations``; a
link may be used up to ``max_uses`` times (``uses`` counts), and may be revoked.

Revision ID: 0112_team
Revises: 0114_billing
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0112_team"
down_revision = "0115_voice_samples"
branch_labels = None
depends_on = None

S = "web"


def upgrade():
    op.add_column("tenant_invitations", sa.Column("max_uses", sa.Integer, nullable=False, server_default="1"), schema=S)
    op.add_column("tenant_invitations", sa.Column("uses", sa.Integer, nullable=False, server_default="0"), schema=S)
    op.add_column("tenant_invitations", sa.Column("revoked_at", sa.DateTime(timezone=True)), schema=S)
    op.add_column("tenant_invitations", sa.Column("revoked_by", sa.Text), schema=S)
    # Invitations used before this revision count as used up (they were one-time).
    op.execute(f"UPDATE {S}.tenant_invitations SET uses = 1 WHERE used_at IS NOT NULL")
    # Signup's acceptance of TERMS_URL (when the operator sets one).
    op.add_column("users", sa.Column("terms_accepted_at", sa.DateTime(timezone=True)), schema=S)
    op.create_check_constraint(
        "tenant_invitation_uses",
        "tenant_invitations",
        "max_uses BETWEEN 1 AND 1000 AND uses >= 0 AND uses <= max_uses",
        schema=S,
    )


def downgrade():
    op.drop_constraint("tenant_invitation_uses", "tenant_invitations", schema=S)
    op.drop_column("users", "terms_accepted_at", schema=S)
    for col in ("revoked_by", "revoked_at", "uses", "max_uses"):
        op.drop_column("tenant_invitations", col, schema=S)
