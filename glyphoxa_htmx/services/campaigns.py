"""Campaigns (web-owned `web.campaigns`). Every query is scoped by the actor's tenant."""

from __future__ import annotations

from sqlalchemy import select

from glyphoxa_htmx.core.authz import Actor, Perm, own, require
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import Campaign


def get(actor: Actor, campaign_id: str) -> Campaign:
    """A campaign of the actor's tenant, or NotFound (also for other tenants' campaigns)."""
    require(actor, Perm.VIEW_SESSIONS)
    return own(actor, db.session.get(Campaign, campaign_id))


def choices(actor: Actor, *, include_archived: bool = False) -> list[tuple[str, str]]:
    """(id, name) of the tenant's campaigns for pickers and filters, by name."""
    require(actor, Perm.VIEW_SESSIONS)
    stmt = select(Campaign.id, Campaign.name).where(Campaign.tenant_id == actor.tenant_id).order_by(Campaign.name)
    if not include_archived:
        stmt = stmt.where(Campaign.archived_at.is_(None))
    return [(r.id, r.name) for r in db.session.execute(stmt)]


def names(actor: Actor, campaign_ids: set[str]) -> dict[str, str]:
    """id -> name for a set of campaign ids (one query; unknown ids are simply absent)."""
    if not campaign_ids:
        return {}
    rows = db.session.execute(
        select(Campaign.id, Campaign.name).where(Campaign.tenant_id == actor.tenant_id, Campaign.id.in_(campaign_ids))
    )
    return {r.id: r.name for r in rows}
