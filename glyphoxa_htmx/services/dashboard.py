"""What the dashboard shows. Feature areas add their widgets' data here (bounded queries)."""

from __future__ import annotations

from functools import cache
from typing import Any, NotRequired, TypedDict

from sqlalchemy import BindParameter, Select, bindparam, exists, func, literal, select, true
from sqlalchemy.orm import aliased

from glyphoxa_htmx.adapters.gateway.client import month_start
from glyphoxa_htmx.core import dbconn
from glyphoxa_htmx.core.authz import Actor, Perm, require
from glyphoxa_htmx.core.deps import gateway
from glyphoxa_htmx.core.errors import NotFound
from glyphoxa_htmx.core.i18n import _
from glyphoxa_htmx.models import Campaign, GatewaySession, NpcDefinition, Tenant, User
from glyphoxa_htmx.services import campaigns, sessions, usage


def overview(actor: Actor) -> dict[str, Any]:
    """One statement: the tenant (with the onboarding probes when the checklist shows, and this
    month's usage when the actor may see it) and the session widgets' rows (live now, last
    session) joined on nothing; the last session's line counts come from the per-process cache
    after its first visit. Under load every round trip costs a page far more than its statement
    (issue 18). No gateway call, so the dashboard works while the gateway is down."""
    require(actor, Perm.VIEW_SESSIONS)
    campaigns.register_found(actor)  # an existing installation's campaigns count from the first visit
    steps = _steps(actor)
    ready = sessions.gateway_tables_ready()
    with_month = actor.can(Perm.VIEW_USAGE) and ready
    period = month_start(None)  # (a parameter only the statement with the month uses)
    rows = dbconn.query(
        _overview_stmt(bool(steps), with_month, ready), {"tenant_id": actor.tenant_id, "period": period}
    )
    if not rows:
        raise NotFound()
    first = rows[0]
    if steps:
        steps = _mark(steps, _done(first))
    month: Any = sessions.usage_of(first, period) if with_month else sessions.ASK
    if ready:
        # (an outer join's missing session is a snapshot of NULLs: no session at all)
        widgets = sessions.widgets_of(actor, [(r[-2], r[-1]) for r in rows if r[-2].id is not None], month)
    else:
        widgets = sessions.dashboard(actor, month)
    return {
        "tenant": first[0],
        "gateway_configured": gateway() is not None,
        "sessions": widgets,
        "quota_warning": usage.quota_warning(widgets.get("usage")),  # 80% / 100% of the month's hours
        "next_steps": steps,
    }


def _progress_columns(tenant_id: BindParameter[str]) -> list[Any]:
    """Which onboarding steps the table has done: four probes (EXISTS, and a count for the team).
    The NPC probe looks through the tenant's campaigns (and the unassigned ``''``): the gateway's
    npc_definitions has only a campaign_id index, and "any NPC of this tenant" read every tenant's
    NPCs when the tenant had none (1.3 ms at 10,000 rows, growing with the installation)."""
    t = tenant_id
    campaign_ids = select(Campaign.id).where(Campaign.tenant_id == t).union_all(select(literal("")))
    return [
        exists().where(Campaign.tenant_id == t).label("campaign"),
        exists().where(NpcDefinition.campaign_id.in_(campaign_ids), NpcDefinition.tenant_id == t).label("npc"),
        exists().where(GatewaySession.tenant_id == t).label("session"),
        select(func.count()).where(User.tenant_id == t).scalar_subquery().label("people"),
    ]


# Built once per process with the tenant id a bound parameter (:tenant_id): composing the four
# probes and the statement's cache key cost more Python per request than running it (issue 18).
def _tenant() -> BindParameter[str]:
    return bindparam("tenant_id", type_=Tenant.id.type)


@cache
def _progress_stmt() -> Select[Any]:
    return select(*_progress_columns(_tenant()))


@cache
def _overview_stmt(with_progress: bool, with_month: bool, with_sessions: bool) -> Select[Any]:
    """The tenant, with the onboarding probes (``with_progress``), this month's usage
    (``sessions.month_usage``'s statement, at most one row: ``with_month``) and
    ``sessions.dashboard``'s rows (``with_sessions``: a session and its campaign's name, the last
    two columns of every row) each outer-joined to it on nothing: the dashboard's one round trip."""
    statement: Select[Any] = select(Tenant).where(Tenant.id == _tenant())
    if with_progress:
        statement = statement.add_columns(*_progress_columns(_tenant()))
    if with_month:
        month = sessions.month_usage_stmt().subquery("month_usage")
        statement = statement.add_columns(*month.c).outerjoin_from(Tenant, month, true())
    if with_sessions:
        widgets = sessions.dashboard_statement().subquery("widgets")
        name = list(widgets.c)[-1]  # (the campaign's name, under the label SQLAlchemy gave it)
        statement = statement.add_columns(aliased(GatewaySession, widgets), name).outerjoin_from(
            Tenant, widgets, true()
        )
    return statement


def _done(row: Any) -> dict[str, bool]:
    return {"campaign": row.campaign, "npc": row.npc, "session": row.session, "team": row.people > 1}


def _progress(actor: Actor) -> dict[str, bool]:
    """Which onboarding steps the table has done: one query of four probes."""
    return _done(dbconn.query(_progress_stmt(), {"tenant_id": actor.tenant_id}).one())


class Step(TypedDict):
    key: str
    title: str
    hint: str
    endpoint: str
    perm: Perm
    done: NotRequired[bool]


def _steps(actor: Actor) -> list[Step]:
    """The onboarding steps this actor may do (not yet marked done or not)."""
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
    return [s for s in steps if actor.can(s["perm"])]


def _mark(steps: list[Step], done: dict[str, bool]) -> list[Step]:
    for step in steps:
        step["done"] = done[step["key"]]
    return [] if all(s["done"] for s in steps) else steps


def next_steps(actor: Actor) -> list[Step]:
    """The onboarding checklist (until the full wizard lands); empty once every step is done."""
    steps = _steps(actor)
    return _mark(steps, _progress(actor)) if steps else []
