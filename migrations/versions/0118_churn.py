"""Churn needs to know when a subscription ended: web.subscriptions.canceled_at (set when its
status turns canceled; rows already canceled take their last update time).

Revision ID: 0118_churn
Revises: 0117_ui_locale
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0118_churn"
down_revision = "0117_ui_locale"
branch_labels = None
depends_on = None

S = "web"


def upgrade():
    op.add_column("subscriptions", sa.Column("canceled_at", sa.DateTime(timezone=True)), schema=S)
    op.execute(
        "UPDATE web.subscriptions SET canceled_at = updated_at WHERE status IN ('canceled', 'incomplete_expired')"
    )


def downgrade():
    op.drop_column("subscriptions", "canceled_at", schema=S)
