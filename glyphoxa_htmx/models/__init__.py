"""SQLAlchemy models. Web-owned tables (schema `web`) are migrated by Alembic; gateway-owned
`public.*` tables are mapped in `gateway.py` for reading (and npc_definitions for writing)."""

from glyphoxa_htmx.models.web import (
    AuditLog,
    Campaign,
    CampaignTombstone,
    GuildClaim,
    LoginSession,
    NpcPosition,
    ProviderConfig,
    Tenant,
    TenantInvitation,
    User,
)
from glyphoxa_htmx.models.gateway import GatewayBase, GatewaySession, GatewayTenant, NpcDefinition, UsageRecord

__all__ = [
    "AuditLog",
    "Campaign",
    "CampaignTombstone",
    "GatewayBase",
    "GatewaySession",
    "GatewayTenant",
    "GuildClaim",
    "LoginSession",
    "NpcDefinition",
    "NpcPosition",
    "ProviderConfig",
    "Tenant",
    "TenantInvitation",
    "UsageRecord",
    "User",
]
