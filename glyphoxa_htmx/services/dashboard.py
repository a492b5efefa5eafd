"""What the dashboard shows. Feature areas add their widgets' data here (bounded queries)."""

from __future__ import annotations

from glyphoxa_htmx.core.authz import Actor, Perm, require
from glyphoxa_htmx.core.deps import gateway
from glyphoxa_htmx.services import sessions, tenants


def overview(actor: Actor) -> dict:
    """Bounded queries: the tenant, the session widgets (live now, last session with its line
    counts, this month's hours vs quota) and the onboarding steps. No gateway call, so the
    dashboard works while the gateway is down."""
    require(actor, Perm.VIEW_SESSIONS)
    tenant = tenants.get(actor)
    return {
        "tenant": tenant,
        "gateway_configured": gateway() is not None,
        "sessions": sessions.dashboard(actor),
        "next_steps": next_steps(actor),
    }


def next_steps(actor: Actor) -> list[dict]:
    """The onboarding checklist until the full wizard lands."""
    steps = [
        {"title": "Create your first campaign", "hint": "Campaigns hold your NPCs and sessions.",
         "endpoint": "campaigns.index", "perm": Perm.MANAGE_CAMPAIGNS},
        {"title": "Build a cast of NPCs", "hint": "Give each one a personality and a voice.",
         "endpoint": "campaigns.index", "perm": Perm.MANAGE_NPCS},
        {"title": "Start a voice session", "hint": "Pick a campaign and a Discord voice channel.",
         "endpoint": "sessions.index", "perm": Perm.CONTROL_SESSIONS},
        {"title": "Invite your table", "hint": "Give co-DMs and players their own sign-in.",
         "endpoint": "team.index", "perm": Perm.MANAGE_USERS},
    ]
    return [s for s in steps if actor.can(s["perm"])]
