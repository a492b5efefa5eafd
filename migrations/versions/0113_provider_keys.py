"""Provider keys (BYO): web.provider_configs, one row per (tenant, slot), keys only as ciphertext.

Revision ID: 0113_provider_keys
Revises: 0001_foundation
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql as pg

revision = "0113_provider_keys"
down_revision = "0110_existing_install"
branch_labels = None
depends_on = None

S = "web"


def upgrade():
    op.create_table(
        "provider_configs",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("slot", sa.Text, nullable=False),
        sa.Column("provider", sa.Text, nullable=False),
        sa.Column("model", sa.Text, nullable=False, server_default=""),
        sa.Column("api_key_enc", sa.Text, nullable=False, server_default=""),
        sa.Column("api_key_hint", sa.Text, nullable=False, server_default=""),
        sa.Column("base_url", sa.Text, nullable=False, server_default=""),
        sa.Column("options", pg.JSONB, nullable=False, server_default=sa.text("'{}'::jsonb")),
        sa.Column("last_test_status", sa.Text, nullable=False, server_default=""),
        sa.Column("last_test_message", sa.Text, nullable=False, server_default=""),
        sa.Column("last_tested_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.UniqueConstraint("tenant_id", "slot", name="uq_provider_configs_tenant_slot"),
        sa.CheckConstraint("slot IN ('llm', 'stt', 'tts', 's2s', 'vad', 'embeddings')", name="provider_slot"),
        # Plaintext never lands here: an empty string or a backend ciphertext, nothing else.
        # ([:] because a bare ":v" would be read as a bind parameter)
        sa.CheckConstraint(
            r"api_key_enc = '' OR api_key_enc ~ '^(vault|local)[:]v[1-9][0-9]*[:][A-Za-z0-9+/=_-]+$'",
            name="provider_key_is_ciphertext",
        ),
        schema=S,
    )


def downgrade():
    op.drop_table("provider_configs", schema=S)
