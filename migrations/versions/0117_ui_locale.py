"""The interface language a user chose (issue 17): "en" or "de"; NULL follows the browser.

Revision ID: 0117_ui_locale
Revises: 0116_operators
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0117_ui_locale"
down_revision = "0116_operators"
branch_labels = None
depends_on = None

S = "web"


def upgrade():
    op.add_column("users", sa.Column("locale", sa.Text), schema=S)
    op.create_check_constraint("users_locale", "users", "locale IN ('en', 'de')", schema=S)


def downgrade():
    op.drop_constraint("users_locale", "users", schema=S)
    op.drop_column("users", "locale", schema=S)
