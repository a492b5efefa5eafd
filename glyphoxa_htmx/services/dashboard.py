"""What the dashboard shows. Feature areas add their widgets' data here (bounded queries)."""

from __future__ import annotations

from typing import Any, NotRequired, TypedDict

from sqlalchemy import exists, func, select

from glyphoxa_htmx.core.authz import Actor, Perm, require
from glyphoxa_htmx.core.deps import gateway
from glyphoxa_htmx.core.i18n import _
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import Campaign, GatewaySession, NpcDefinition, User
from glyphoxa_htmx.services import campaigns, sessions, tenants, usage


def overview(actor: Actor) -> dict[str, Any]:
    """Bounded queries: the tenant, the session widgets (live now, last session with its line
    counts, this month's hours vs quota) and the onboarding steps. No gateway call, so the
    dashboard works while the gateway is down."""
    require(actor, Perm.VIEW_SESSIONS)
    tenant = tenants.get(actor)
    campaigns.register_found(actor)  # an existing installation's campaigns count from the first visit
    widgets = sessions.dashboard(actor)
    return {
        "tenant": tenant,
        "gateway_configured": gateway() is not None,
        "sessions": widgets,
        "quota_warning": usage.quota_warning(widgets.get("usage")),  # 80% / 100% of the month's hours
        "next_steps": next_steps(actor),
    }


def _progress(actor: Actor) -> dict[str, bool]:
    """Which onboarding steps the table has done: one query of four EXISTS probes."""
    t = actor.tenant_id
    row = db.session.execute(
        select(
            exists().where(Campaign.tenant_id == t).label("campaign"),
            exists().where(NpcDefinition.tenant_id == t).label("npc"),
            exists().where(GatewaySession.tenant_id == t).label("session"),
            select(func.count()).where(User.tenant_id == t).scalar_subquery().label("people"),
        )
    ).one()
    return {"campaign": row.campaign, "npc": row.npc, "session": row.session, "team": row.people > 1}


class Step(TypedDict):
    key: str
    title: str
    hint: str
    endpoint: str
    perm: Perm
    done: NotRequired[bool]


def next_steps(actor: Actor) -> list[Step]:
    """The onboarding checklist (until the full wizard lands); empty once every step is done."""
    steps: list[Step] = [
        {
            "key": "campaign",
            "title": _("Create your first campaign"),
            "hint": _("Campaigns hold your NPCs and sessions."),
            "endpoint": "campaigns.index",
            "perm": Perm.MANAGE_CAMPAIGNS,
        },
        {
            "key": "npc",
            "title": _("Build a cast of NPCs"),
            "hint": _("Give each one a personality and a voice."),
            "endpoint": "campaigns.index",
            "perm": Perm.MANAGE_NPCS,
        },
        {
            "key": "session",
            "title": _("Start a voice session"),
            "hint": _("Pick a campaign and a Discord voice channel."),
            "endpoint": "sessions.index",
            "perm": Perm.CONTROL_SESSIONS,
        },
        {
            "key": "team",
            "title": _("Invite your table"),
            "hint": _("Give co-DMs and players their own sign-in."),
            "endpoint": "team.index",
            "perm": Perm.MANAGE_USERS,
        },
    ]
    steps = [s for s in steps if actor.can(s["perm"])]
    if not steps:
        return []
    done = _progress(actor)
    for step in steps:
        step["done"] = done[step["key"]]
    return [] if all(s["done"] for s in steps) else steps
