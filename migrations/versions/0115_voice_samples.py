"""Voice samples (plan §11, tenant_id TEXT): uploaded audio kept in S3/MinIO or a local directory.

Revision ID: 0115_voice_samples
Revises: 0114_billing
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op

revision = "0115_voice_samples"
down_revision = "0114_billing"
branch_labels = None
depends_on = None

S = "web"


def upgrade():
    op.create_table(
        "voice_samples",
        sa.Column("id", sa.Text, primary_key=True),
        sa.Column("tenant_id", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("file_key", sa.Text, nullable=False),
        sa.Column("file_size", sa.BigInteger, nullable=False),
        sa.Column("duration_ms", sa.Integer, nullable=False),
        sa.Column("format", sa.Text, nullable=False),
        sa.Column("provider_voice_id", sa.Text),
        sa.Column("status", sa.Text, nullable=False, server_default="uploaded"),
        sa.Column("error", sa.Text, nullable=False, server_default=""),
        sa.Column("created_by", sa.Text),
        sa.Column("deleting_at", sa.DateTime(timezone=True)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.text("now()")),
        sa.CheckConstraint("status IN ('uploaded', 'processing', 'ready', 'failed')", name="voice_sample_status"),
        sa.CheckConstraint("format IN ('wav', 'mp3')", name="voice_sample_format"),
        schema=S,
    )
    op.create_index(
        "ix_voice_samples_tenant_created", "voice_samples", ["tenant_id", sa.text("created_at DESC")], schema=S
    )


def downgrade():
    op.drop_index("ix_voice_samples_tenant_created", table_name="voice_samples", schema=S)
    op.drop_table("voice_samples", schema=S)
