"""SQLAlchemy models. Web-owned tables (schema `web`) are migrated by Alembic; gateway-owned
`public.*` tables are mapped in `gateway.py` for reading (and npc_definitions for writing)."""

from glyphoxa_htmx.models.gateway import GatewayBase, GatewaySession, GatewayTenant, NpcDefinition, UsageRecord
from glyphoxa_htmx.models.support import SupportReply, SupportTicket  # noqa: F401 - registers the tables
from glyphoxa_htmx.models.web import (
    AuditLog,
    BillingEvent,
    Campaign,
    CampaignTombstone,
    GuildClaim,
    Invoice,
    LoginSession,
    NpcPosition,
    ProviderConfig,
    Subscription,
    Tenant,
    TenantInvitation,
    User,
    VoiceSample,
)

__all__ = [
    "AuditLog",
    "BillingEvent",
    "Campaign",
    "CampaignTombstone",
    "GatewayBase",
    "GatewaySession",
    "GatewayTenant",
    "GuildClaim",
    "Invoice",
    "LoginSession",
    "NpcDefinition",
    "NpcPosition",
    "ProviderConfig",
    "Subscription",
    "Tenant",
    "TenantInvitation",
    "UsageRecord",
    "User",
    "VoiceSample",
]
