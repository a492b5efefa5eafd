"""Tables the web service owns, in schema `web`. No foreign keys to gateway-owned tables: the
gateway may create them later and its tenant deletes must never fail because of us."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import INET, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from glyphoxa_htmx.extensions import Model


def new_id() -> str:
    return str(uuid.uuid4())


class Tenant(Model):
    """The web side of a tenant: display name and lifecycle. The id is the gateway's slug."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="active")  # active | suspended
    # No active campaign here: the gateway's public.tenants.campaign_id is the one source of truth.
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    # When the campaign ids in the tenant's gateway data were first registered in full (their NPCs
    # read exactly); NULL until then. Later first rounds in a process skip that read
    # (services/campaigns.py, _REGISTER_FIRST).
    campaigns_found_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class User(Model):
    __tablename__ = "users"

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    tenant_id: Mapped[str | None] = mapped_column(Text, index=True)
    email: Mapped[str | None] = mapped_column(Text, unique=True)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    avatar_url: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text, nullable=False, server_default="dm")
    discord_id: Mapped[str | None] = mapped_column(Text, unique=True)
    google_id: Mapped[str | None] = mapped_column(Text, unique=True)
    github_id: Mapped[str | None] = mapped_column(Text, unique=True)
    stripe_customer_id: Mapped[str | None] = mapped_column(Text, unique=True)
    email_verified: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="active")  # active | suspended
    # Interface language chosen on the profile page ("en" | "de"); NULL follows the browser.
    locale: Mapped[str | None] = mapped_column(Text)
    # Guilds seen at the last Discord sign-in ([{id, name, owner, manage}]); the OAuth token itself is not kept.
    discord_guilds: Mapped[list] = mapped_column(JSONB, nullable=False, server_default=text("'[]'::jsonb"))
    # When that list was read from Discord (entries carry ``manage``: the Manage Server permission).
    discord_guilds_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    terms_accepted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # TERMS_URL at signup
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())

    # No FK (tenants may be created and removed independently); joined so that resolving a
    # sign-in session loads session, user and tenant in one query.
    tenant: Mapped[Tenant | None] = relationship(
        primaryjoin="foreign(User.tenant_id) == Tenant.id", lazy="joined", viewonly=True
    )


class LoginSession(Model):
    """A server-side sign-in session. Only the SHA-256 of the cookie token is stored.

    Rotation creates a new row in the same family and marks the old one ``rotated_at``; presenting
    a rotated token again is reuse, and revokes the whole family.
    """

    __tablename__ = "login_sessions"
    __table_args__ = (Index("ix_login_sessions_family", "family_id"), Index("ix_login_sessions_user", "user_id"))

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    family_id: Mapped[str] = mapped_column(Text, nullable=False)
    user_id: Mapped[str] = mapped_column(Text, ForeignKey("web.users.id", ondelete="CASCADE"), nullable=False)
    token_hash: Mapped[str] = mapped_column(String(64), nullable=False, unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    last_seen_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    rotated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_reason: Mapped[str | None] = mapped_column(Text)
    ip: Mapped[str | None] = mapped_column(Text)
    user_agent: Mapped[str | None] = mapped_column(Text)

    user: Mapped[User] = relationship(lazy="joined")


class AuditLog(Model):
    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_tenant_time", "tenant_id", text("created_at DESC"), text("id DESC")),)

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=True)
    tenant_id: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[str | None] = mapped_column(Text)
    action: Mapped[str] = mapped_column(Text, nullable=False)
    resource_type: Mapped[str] = mapped_column(Text, nullable=False)
    resource_id: Mapped[str] = mapped_column(Text, nullable=False)
    details: Mapped[dict | None] = mapped_column(JSONB)
    ip_address: Mapped[str | None] = mapped_column(INET)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Campaign(Model):
    """A campaign. Its id is a free-form string the gateway carries as `campaign_id`, unique only
    within a tenant: the key is ``(tenant_id, id)``. ``origin`` is ``web`` (created here) or
    ``gateway`` (its id was found in the tenant's gateway data: sessions, NPCs, the active campaign)."""

    __tablename__ = "campaigns"
    __table_args__ = (Index("ix_campaigns_tenant_name", "tenant_id", "name"),)

    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    origin: Mapped[str] = mapped_column(Text, nullable=False, server_default="web")
    name: Mapped[str] = mapped_column(Text, nullable=False)
    game_system: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    description: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    settings: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    archived_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    version: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class CampaignTombstone(Model):
    """A deleted campaign's id: not registered again from the gateway's data (its old sessions
    keep the id)."""

    __tablename__ = "campaign_tombstones"

    tenant_id: Mapped[str] = mapped_column(Text, primary_key=True)
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    deleted_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class NpcPosition(Model):
    """Display order of NPCs within a campaign, kept beside npc_definitions so the gateway's rows
    (and how it reads them) never change."""

    __tablename__ = "npc_positions"
    __table_args__ = (Index("ix_npc_positions_campaign", "tenant_id", "campaign_id", "position"),)

    npc_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text, nullable=False)
    campaign_id: Mapped[str] = mapped_column(Text, nullable=False)
    position: Mapped[int] = mapped_column(Integer, nullable=False)


class GuildClaim(Model):
    """Which table a Discord server belongs to: at most one (the primary key). Written when an
    owner who manages the server saves it in Settings → Discord, and by operators' reassignment."""

    __tablename__ = "guild_claims"

    guild_id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text, nullable=False, index=True)
    claimed_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class Subscription(Model):
    """A tenant's Stripe subscription (plan §10 shape; ``tenant_id`` TEXT, the gateway's slug).

    ``status`` and the period fields mirror Stripe's subscription object as last fetched;
    ``past_due_since`` starts the 7-day grace; ``canceled_at`` dates the end (churn);
    ``applied_tier`` is what was last pushed to the gateway (quota hours + license tier), so a
    change is applied exactly once."""

    __tablename__ = "subscriptions"

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(Text, nullable=False, unique=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(Text, unique=True)
    stripe_customer_id: Mapped[str] = mapped_column(Text, nullable=False, index=True)
    tier: Mapped[str] = mapped_column(Text, nullable=False, server_default="apprentice")
    interval: Mapped[str] = mapped_column(Text, nullable=False, server_default="month")
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="active")
    current_period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    current_period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    cancel_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    past_due_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # When the status turned canceled (Stripe's ended_at, else when we learned it); None otherwise.
    canceled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    applied_tier: Mapped[str] = mapped_column(Text, nullable=False, server_default="apprentice")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class ProviderConfig(Model):
    """A tenant's provider for one slot (plan §14, with ``tenant_id TEXT``). The API key is stored
    only as ciphertext from the secrets adapter (``vault:vN:...`` or ``local:vN:...``); the
    gateway reads this table at session start (README: "Provider keys")."""

    __tablename__ = "provider_configs"
    __table_args__ = (UniqueConstraint("tenant_id", "slot", name="uq_provider_configs_tenant_slot"),)

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(Text, nullable=False)
    slot: Mapped[str] = mapped_column(Text, nullable=False)  # llm, stt, tts, s2s, vad, embeddings
    provider: Mapped[str] = mapped_column(Text, nullable=False)
    model: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    api_key_enc: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    api_key_hint: Mapped[str] = mapped_column(Text, nullable=False, server_default="")  # last 4 characters
    base_url: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    options: Mapped[dict] = mapped_column(JSONB, nullable=False, server_default=text("'{}'::jsonb"))
    last_test_status: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    last_test_message: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    last_tested_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class TenantInvitation(Model):
    """A way into an adopted tenant: the Discord user id it is for, and/or a one-time signed link
    (``link``). Used once (``used_at``), expires (``expires_at``)."""

    __tablename__ = "tenant_invitations"

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(Text, nullable=False)
    discord_id: Mapped[str | None] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text, nullable=False, server_default="tenant_owner")
    link: Mapped[bool] = mapped_column(Boolean, nullable=False, server_default=text("false"))
    created_by: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))  # the last use
    used_by: Mapped[str | None] = mapped_column(Text)
    # Team invitations (issue 12): a link may be used up to ``max_uses`` times; revocable.
    max_uses: Mapped[int] = mapped_column(Integer, nullable=False, server_default="1")
    uses: Mapped[int] = mapped_column(Integer, nullable=False, server_default="0")
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_by: Mapped[str | None] = mapped_column(Text)


class Invoice(Model):
    """A Stripe invoice as the webhooks reported it (the id is Stripe's ``in_…``)."""

    __tablename__ = "invoices"
    __table_args__ = (Index("ix_invoices_tenant_created", "tenant_id", text("created DESC")),)

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text, nullable=False)
    stripe_subscription_id: Mapped[str | None] = mapped_column(Text)
    number: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, nullable=False)
    currency: Mapped[str] = mapped_column(Text, nullable=False, server_default="usd")
    amount_due: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    amount_paid: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default="0")
    hosted_invoice_url: Mapped[str | None] = mapped_column(Text)
    period_start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    period_end: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class BillingEvent(Model):
    """A processed Stripe webhook event: its id is stored in the same transaction as its effects,
    so a replay finds it and does nothing."""

    __tablename__ = "billing_events"

    id: Mapped[str] = mapped_column(Text, primary_key=True)
    type: Mapped[str] = mapped_column(Text, nullable=False)
    tenant_id: Mapped[str | None] = mapped_column(Text)
    outcome: Mapped[str] = mapped_column(Text, nullable=False, server_default="applied")
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())


class VoiceSample(Model):
    """An uploaded voice sample (plan §11 shape, ``tenant_id TEXT``). ``status``: uploaded (stored
    and validated) → processing (cloning) → ready (``provider_voice_id`` set) | failed (``error``
    says why; the sample is kept). ``deleting_at`` set: a delete is under way (hidden everywhere);
    the row goes only after its object is gone, so a storage failure leaves a retryable row, never
    an orphaned object."""

    __tablename__ = "voice_samples"
    __table_args__ = (Index("ix_voice_samples_tenant_created", "tenant_id", text("created_at DESC")),)

    id: Mapped[str] = mapped_column(Text, primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(Text, nullable=False)
    name: Mapped[str] = mapped_column(Text, nullable=False)
    file_key: Mapped[str] = mapped_column(Text, nullable=False)
    file_size: Mapped[int] = mapped_column(BigInteger, nullable=False)
    duration_ms: Mapped[int] = mapped_column(Integer, nullable=False)
    format: Mapped[str] = mapped_column(Text, nullable=False)  # wav, mp3
    provider_voice_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(Text, nullable=False, server_default="uploaded")
    error: Mapped[str] = mapped_column(Text, nullable=False, server_default="")
    created_by: Mapped[str | None] = mapped_column(Text)
    deleting_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False, server_default=func.now())
