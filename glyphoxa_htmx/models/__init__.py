"""SQLAlchemy models. Web-owned tables (schema `web`) are migrated by Alembic; gateway-owned
`public.*` tables are mapped in `gateway.py` for reading (and npc_definitions for writing)."""

from glyphoxa_htmx.models.web import (AuditLog, BillingEvent, Campaign, Invoice, LoginSession, NpcPosition,
                                      Subscription, Tenant, User)
from glyphoxa_htmx.models.gateway import GatewayBase, GatewaySession, GatewayTenant, NpcDefinition, UsageRecord

__all__ = [
    "AuditLog",
    "BillingEvent",
    "Campaign",
    "GatewayBase",
    "GatewaySession",
    "GatewayTenant",
    "Invoice",
    "LoginSession",
    "NpcDefinition",
    "NpcPosition",
    "Subscription",
    "Tenant",
    "UsageRecord",
    "User",
]
