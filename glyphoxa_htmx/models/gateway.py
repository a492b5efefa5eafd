"""Gateway-owned tables in `public`, mapped for reading. Alembic never touches these (the
gateway runs its own DDL). `npc_definitions` is the documented exception the web service writes.
Worker-owned `tenant_<id>.*` tables are read with SQL in the services (the schema is dynamic)."""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import ARRAY, BigInteger, Boolean, Date, DateTime, MetaData, Numeric, Text, func
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


class GatewayBase(DeclarativeBase):
    metadata = MetaData(schema="public")


class GatewayTenant(GatewayBase):
    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    license_tier: Mapped[str] = mapped_column(Text)
    guild_ids: Mapped[list[str] | None] = mapped_column(ARRAY(Text))
    monthly_session_hours: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    campaign_id: Mapped[str] = mapped_column(Text)
    dm_role_id: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class GatewaySession(GatewayBase):
    __tablename__ = "sessions"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    campaign_id: Mapped[str] = mapped_column(Text)
    guild_id: Mapped[str] = mapped_column(Text)
    channel_id: Mapped[str] = mapped_column(Text)
    license_tier: Mapped[str] = mapped_column(Text)
    state: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    worker_pod: Mapped[str | None] = mapped_column(Text)
    worker_node: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    ended_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_voice: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_heartbeat: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # Not mapped: the gateway's free-form ``metadata`` JSONB. Nothing here reads it, yet the session
    # and transcript pages and the dashboard's live and last sessions loaded it with each row (psycopg
    # decodes JSONB in Python: ~3.7 µs a row for a small document, more for whatever the gateway keeps
    # there; the sessions list already read only its columns). Unmapped, the ORM can neither read it
    # nor ever write it.


class UsageRecord(GatewayBase):
    __tablename__ = "usage_records"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    period: Mapped[date] = mapped_column(Date)
    session_hours: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    llm_tokens: Mapped[int] = mapped_column(BigInteger)
    stt_seconds: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    tts_chars: Mapped[int] = mapped_column(BigInteger)


class NpcDefinition(GatewayBase):
    """`public.npc_definitions` in its tenant-scoped form (contract §1.4). Written by the web service."""

    __tablename__ = "npc_definitions"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str | None] = mapped_column(Text)
    campaign_id: Mapped[str] = mapped_column(Text, default="")
    name: Mapped[str] = mapped_column(Text)
    personality: Mapped[str] = mapped_column(Text, default="")
    engine: Mapped[str] = mapped_column(Text, default="cascaded")
    voice: Mapped[dict] = mapped_column(JSONB, default=dict)
    knowledge_scope: Mapped[list] = mapped_column(JSONB, default=list)
    secret_knowledge: Mapped[list] = mapped_column(JSONB, default=list)
    behavior_rules: Mapped[list] = mapped_column(JSONB, default=list)
    tools: Mapped[list] = mapped_column(JSONB, default=list)
    budget_tier: Mapped[str] = mapped_column(Text, default="fast")
    gm_helper: Mapped[bool] = mapped_column(Boolean, default=False)
    address_only: Mapped[bool] = mapped_column(Boolean, default=False)
    attributes: Mapped[dict] = mapped_column(JSONB, default=dict)
    # The table's own DEFAULT now() fills these on insert; updates set updated_at explicitly.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=func.now(), onupdate=func.now()
    )

    # Columns every version of the table must have for the web service to write it safely.
    REQUIRED_COLUMNS = (
        "id",
        "tenant_id",
        "campaign_id",
        "name",
        "personality",
        "engine",
        "voice",
        "knowledge_scope",
        "secret_knowledge",
        "behavior_rules",
        "tools",
        "budget_tier",
        "gm_helper",
        "address_only",
        "attributes",
    )
