"""Voice sessions, reading side: the gateway-owned ``public.sessions`` (read-only here), lists,
the session page, the dashboard widgets, this month's usage and the bot status. Starting,
stopping and live NPC control are in ``session_control``.

Every query is scoped by ``actor.tenant_id``; another tenant's session is a NotFound.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from functools import cache
from time import monotonic
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    CompoundSelect,
    Connection,
    Integer,
    Row,
    Select,
    bindparam,
    select,
    text,
    tuple_,
    union_all,
)

from glyphoxa_htmx.adapters.gateway import errors as gw
from glyphoxa_htmx.adapters.gateway.client import month_start
from glyphoxa_htmx.core import dbconn
from glyphoxa_htmx.core.authz import MATRIX, Actor, Perm, Role, own, require
from glyphoxa_htmx.core.deps import gateway
from glyphoxa_htmx.core.errors import NotFound
from glyphoxa_htmx.core.i18n import _, lazy_gettext
from glyphoxa_htmx.core.memo import Memo
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import (
    Campaign,
    GatewaySession,
    GatewayTenant,
    LoginSession,
    NpcDefinition,
    Tenant,
    UsageRecord,
    User,
)
from glyphoxa_htmx.services import campaigns, transcripts

log = logging.getLogger(__name__)

STATES = ("pending", "active", "ended")
LIVE_STATES = ("pending", "active")
PAGE_SIZE = 25
LIVE_LIMIT = 20

#: Lazy (a module constant): callers that put it into an error or JSON use ``str(UNAVAILABLE_NOTE)``.
UNAVAILABLE_NOTE = lazy_gettext(
    "The voice service is unavailable right now, so sessions can't be started or controlled from here."
)


# --------------------------------------------------------------------------- reading


def gateway_tables_ready() -> bool:
    """Whether the gateway's ``public.sessions`` exists (a fresh database without a gateway has
    none). Cached once true; re-checked (one query) while it isn't."""
    global _tables_ready
    if _tables_ready:
        return True
    _tables_ready = bool(db.session.execute(text("SELECT to_regclass('public.sessions') IS NOT NULL")).scalar())
    return _tables_ready


_tables_ready = False


# The reading statements are built once per process with bound parameters (:tenant_id,
# :session_id, ...): composing a SELECT with its joins and subqueries and computing its cache key
# cost ~0.2-0.5 ms of Python per statement on every request; a prebuilt statement's key is
# memoized (issue 18). The tenant id is always a bound parameter of the WHERE clause.


def _tenant() -> BindParameter[str]:
    return bindparam("tenant_id", type_=GatewaySession.tenant_id.type)


def _session_id() -> BindParameter[str]:
    return bindparam("session_id", type_=GatewaySession.id.type)


def _with_campaign_name() -> Select[tuple[GatewaySession, str]]:
    """Sessions with their campaign's name (None when the campaign id has no row of the tenant)."""
    return select(GatewaySession, Campaign.name).outerjoin(
        Campaign, (Campaign.tenant_id == GatewaySession.tenant_id) & (Campaign.id == GatewaySession.campaign_id)
    )


@cache
def _get_stmt() -> Select[tuple[GatewaySession]]:
    return (
        select(GatewaySession)
        .where(GatewaySession.id == _session_id(), GatewaySession.tenant_id == _tenant())
        .execution_options(populate_existing=True)
    )


@cache
def _get_named_stmt() -> Select[tuple[GatewaySession, str]]:
    return _with_campaign_name().where(GatewaySession.id == _session_id(), GatewaySession.tenant_id == _tenant())


def get(actor: Actor, session_id: str) -> GatewaySession:
    """A session of the actor's tenant, freshly read, or NotFound (also for other tenants')."""
    require(actor, Perm.VIEW_SESSIONS)
    if not session_id or len(session_id) > 100 or not gateway_tables_ready():
        raise NotFound()
    row = db.session.execute(_get_stmt(), {"session_id": session_id, "tenant_id": actor.tenant_id}).scalar_one_or_none()
    return own(actor, row)


# A settled session's row (ended ``transcripts.SETTLED_AFTER`` ago or more), kept per process by
# (tenant, id) for the pages that show it (issue 18: the transcript page was its row and its lines,
# two statements): the gateway never changes an ended row (contract §1.2). Kept
# ``transcripts.KEPT_ROW_SECONDS`` at most, as search keeps its part of the row; only from committed
# reads; the campaign's name then comes from the tenant's campaign directory (kept, or read and
# kept), as search's do.
MAX_KEPT_ROWS = 5_000  # ~1 KB each (more with a large metadata column the gateway wrote)
_kept_rows: Memo[tuple[str, str], tuple[float, Any]] = Memo(MAX_KEPT_ROWS)


def forget_kept_rows() -> None:
    """Empty this process's kept session rows (tests reuse ids)."""
    _kept_rows.clear()


def get_named(actor: Actor, session_id: str) -> tuple[Any, str | None]:
    """:func:`get` and the name of the session's campaign in the same statement (None when the
    campaign id has no row of this tenant, like :func:`campaigns.names`), for pages that show the
    session: it comes back as a read-only snapshot of its columns (dbconn.query). A settled
    session's is kept a while (``_kept_rows``) and then needs no statement."""
    require(actor, Perm.VIEW_SESSIONS)
    if not session_id or len(session_id) > 100 or not gateway_tables_ready():
        raise NotFound()
    key = (actor.tenant_id, session_id)
    kept = _kept_rows.get(key)
    if kept is not None and monotonic() - kept[0] < transcripts.KEPT_ROW_SECONDS:
        session = own(actor, kept[1])  # (kept by tenant already: the check stays the same one)
        directory = campaigns.cached_directory(actor.tenant_id) or campaigns.read_directory(actor)
        return session, directory.names.get(session.campaign_id)
    row = dbconn.query(_get_named_stmt(), {"session_id": session_id, "tenant_id": actor.tenant_id}).one_or_none()
    session = own(actor, row[0] if row is not None else None)
    if transcripts.settled(session) and dbconn.reads_committed():
        _kept_rows.keep(key, (monotonic(), session))
    return session, row[1] if row is not None else None


def viewer_signed_in(token_hash: str, tenant_id: str) -> bool:
    """Whether the sign-in behind an open live socket still stands: the login session (found by
    its token hash) is neither revoked (sign-out and revocation revoke the whole family, rotated
    tokens included) nor past its absolute expiry, and its user is active, still in the session's
    tenant, still allowed to watch, and the tenant isn't suspended. One query.

    The idle timeout is not applied: an open live view is activity, and its socket never
    touches ``last_seen_at``."""
    if not token_hash:
        return False
    row = db.session.execute(_viewer_query([token_hash])).one_or_none()
    return _viewer_ok(row, tenant_id)


def viewers_signed_in(conn: Connection, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """:func:`viewer_signed_in` for many open sockets at once (the live hub re-checks all its
    viewers together): the (token hash, tenant id) pairs whose sign-in still stands. One query
    per 1,000 distinct tokens, on ``conn`` (a Core connection: the hub has no app context)."""
    hashes = sorted({h for h, _ in pairs if h})
    rows: dict[str, Row[Any]] = {}
    for start in range(0, len(hashes), 1000):
        for row in conn.execute(_viewer_query(hashes[start : start + 1000])):
            rows[row.token_hash] = row
    return {(h, t) for h, t in pairs if _viewer_ok(rows.get(h), t)}


def _viewer_query(token_hashes: list[str]) -> Select[Any]:
    return (
        select(
            LoginSession.token_hash,
            LoginSession.revoked_at,
            LoginSession.expires_at,
            User.status,
            User.role,
            User.tenant_id,
            Tenant.status.label("tenant_status"),
        )
        .join(User, User.id == LoginSession.user_id)
        .outerjoin(Tenant, Tenant.id == User.tenant_id)
        .where(LoginSession.token_hash.in_(token_hashes))
    )


def _viewer_ok(row: Row[Any] | None, tenant_id: str) -> bool:
    if row is None or row.revoked_at is not None or row.expires_at <= datetime.now(UTC):
        return False
    if row.status != "active" or row.tenant_id != tenant_id:
        return False
    try:
        role = Role(row.role)
    except ValueError:
        return False
    if Perm.VIEW_TRANSCRIPTS not in MATRIX.get(role, frozenset()):
        return False
    return role == Role.SUPER_ADMIN or row.tenant_status in (None, "active")


def duration(session: GatewaySession | Row[Any], now: datetime | None = None) -> timedelta:
    end = session.ended_at or now or datetime.now(UTC)
    return max(timedelta(0), end - session.started_at)


def is_live(session: GatewaySession) -> bool:
    return session.state in LIVE_STATES


@dataclass
class SessionFilters:
    campaign: str = ""
    state: str = ""
    date_from: date | None = None
    date_to: date | None = None

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> tuple[SessionFilters, dict[str, Any]]:
        errors: dict[str, str] = {}
        state = args.get("state", "")
        if state and state not in STATES:
            errors["state"] = _("Choose pending, active or ended.")
            state = ""
        out = cls(campaign=(args.get("campaign") or "")[:200], state=state)
        for name in ("date_from", "date_to"):
            raw = args.get(name, "")
            if raw:
                try:
                    setattr(out, name, date.fromisoformat(raw))
                except ValueError:
                    errors[name] = _("Use a date like 2026-03-14.")
        if out.date_from and out.date_to and out.date_from > out.date_to:
            errors["date_to"] = _("The end date is before the start date.")
        return out, errors

    def as_args(self) -> dict[str, Any]:
        out = {"campaign": self.campaign or None, "state": self.state or None}
        out["date_from"] = self.date_from.isoformat() if self.date_from else None
        out["date_to"] = self.date_to.isoformat() if self.date_to else None
        return {k: v for k, v in out.items() if v}


def encode_cursor(session: GatewaySession | Row[Any]) -> str:
    return f"{int(session.started_at.timestamp() * 1_000_000)}_{session.id}"


def decode_cursor(cursor: str | None) -> tuple[datetime, str] | None:
    if not cursor:
        return None
    micros, _, sid = cursor.partition("_")
    try:
        when = datetime.fromtimestamp(int(micros) / 1_000_000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None
    return (when, sid) if sid else None


@dataclass
class SessionList:
    """One page of the list. Its sessions are rows (not ORM objects: loading entities cost more
    than the page reads) with the columns of :data:`LIST_COLUMNS` as attributes."""

    live: list[Row[Any]] = field(default_factory=list)
    rows: list[Row[Any]] = field(default_factory=list)
    next_cursor: str | None = None
    campaign_names: dict[str, str] = field(default_factory=dict)


_ORDER = (GatewaySession.started_at.desc(), GatewaySession.id.desc())


#: The sessions' columns the list shows (read as attributes, like a GatewaySession's).
LIST_COLUMNS = (
    GatewaySession.id,
    GatewaySession.tenant_id,
    GatewaySession.campaign_id,
    GatewaySession.guild_id,
    GatewaySession.channel_id,
    GatewaySession.state,
    GatewaySession.error,
    GatewaySession.started_at,
    GatewaySession.ended_at,
)


def _list_conds(campaign: bool, date_from: bool, date_to: bool) -> list[ColumnElement[bool]]:
    conds = [GatewaySession.tenant_id == _tenant()]
    if campaign:
        conds.append(GatewaySession.campaign_id == bindparam("campaign_id", type_=GatewaySession.campaign_id.type))
    if date_from:
        conds.append(GatewaySession.started_at >= bindparam("date_from", type_=GatewaySession.started_at.type))
    if date_to:
        conds.append(GatewaySession.started_at < bindparam("date_to", type_=GatewaySession.started_at.type))
    return conds


@cache
def _list_stmt(campaign: bool, date_from: bool, date_to: bool, state: str, after: bool) -> Select[Any] | None:
    """The list's one statement for a shape of filters (the values are bound parameters): the live
    and the history id lists (each keyset-limited) joined to the sessions and their campaigns'
    names, in list order. None when the filters leave nothing to list."""
    conds = _list_conds(campaign, date_from, date_to)
    parts: list[Select[Any]] = []
    if not after and state in ("", "pending", "active"):
        live_states = (state,) if state else LIVE_STATES
        parts.append(
            select(GatewaySession.id)
            .where(*conds, GatewaySession.state.in_(live_states))
            .order_by(*_ORDER)
            .limit(LIVE_LIMIT)
        )
    if state in ("", "ended"):
        stmt = select(GatewaySession.id).where(*conds, GatewaySession.state == "ended")
        if after:
            stmt = stmt.where(
                tuple_(GatewaySession.started_at, GatewaySession.id)
                < tuple_(
                    bindparam("after_at", type_=GatewaySession.started_at.type),
                    bindparam("after_id", type_=GatewaySession.id.type),
                )
            )
        parts.append(stmt.order_by(*_ORDER).limit(bindparam("limit", type_=Integer)))
    if not parts:
        return None
    ids: Select[Any] | CompoundSelect[Any] = parts[0] if len(parts) == 1 else union_all(*parts)
    return (
        select(*LIST_COLUMNS, Campaign.name.label("campaign_name"))
        .outerjoin(
            Campaign, (Campaign.tenant_id == GatewaySession.tenant_id) & (Campaign.id == GatewaySession.campaign_id)
        )
        .where(GatewaySession.tenant_id == _tenant(), GatewaySession.id.in_(ids))
        .order_by(*_ORDER)
    )


def list_sessions(
    actor: Actor, filters: SessionFilters, *, cursor: str | None = None, limit: int = PAGE_SIZE
) -> SessionList:
    """Live sessions on top (first page only), then ended ones newest first, keyset-paginated on
    (started_at, id). One query: live and history ids, with the sessions and their campaign names."""
    require(actor, Perm.VIEW_SESSIONS)
    out = SessionList()
    if not gateway_tables_ready():
        return out
    after = decode_cursor(cursor)
    stmt = _list_stmt(
        bool(filters.campaign), bool(filters.date_from), bool(filters.date_to), filters.state, after is not None
    )
    if stmt is None:
        return out
    params: dict[str, Any] = {"tenant_id": actor.tenant_id, "limit": limit + 1}
    if filters.campaign:
        params["campaign_id"] = filters.campaign
    if filters.date_from:
        params["date_from"] = datetime.combine(filters.date_from, time.min, UTC)
    if filters.date_to:
        params["date_to"] = datetime.combine(filters.date_to + timedelta(days=1), time.min, UTC)
    if after is not None:
        params["after_at"], params["after_id"] = after
    found = dbconn.query(stmt, params)
    out.live = [s for s in found if s.state != "ended"]
    rows = [s for s in found if s.state == "ended"]
    out.rows = rows[:limit]
    if len(rows) > limit:
        out.next_cursor = encode_cursor(out.rows[-1])
    out.campaign_names = {s.campaign_id: s.campaign_name for s in found if s.campaign_name is not None}
    return out


@cache
def _campaign_npcs_stmt() -> Select[Any]:
    return (
        select(NpcDefinition.id, NpcDefinition.name, NpcDefinition.personality, NpcDefinition.gm_helper)
        .where(
            NpcDefinition.tenant_id == _tenant(),
            NpcDefinition.campaign_id == bindparam("campaign_id", type_=NpcDefinition.campaign_id.type),
        )
        .order_by(NpcDefinition.name)
        .limit(100)
    )


def campaign_npcs(actor: Actor, campaign_id: str) -> list[Row[Any]]:
    """The campaign's NPCs by name (at most 100) as rows of id, name, personality and gm_helper:
    the session page and the live view read only these, and loading whole NpcDefinition objects
    (five JSONB columns each) cost more than the rest of the query."""
    require(actor, Perm.VIEW_SESSIONS)
    params = {"tenant_id": actor.tenant_id, "campaign_id": campaign_id}
    return dbconn.query(_campaign_npcs_stmt(), params)


@cache
def month_usage_stmt() -> Select[Any]:
    """The statement ``month_usage`` runs (:tenant_id, :period); the dashboard joins it to its own
    (``usage_of`` reads a row of either)."""
    usage = (
        select(UsageRecord)
        .where(
            UsageRecord.tenant_id == _tenant(), UsageRecord.period == bindparam("period", type_=UsageRecord.period.type)
        )
        .subquery()
    )
    return (
        select(
            GatewayTenant.id.label("gateway_tenant"),
            GatewayTenant.monthly_session_hours,
            usage.c.session_hours,
            usage.c.llm_tokens,
            usage.c.stt_seconds,
            usage.c.tts_chars,
        )
        .select_from(GatewayTenant)
        .outerjoin(usage, usage.c.tenant_id == GatewayTenant.id)
        .where(GatewayTenant.id == _tenant())
    )


def month_usage(actor: Actor, period: date | None = None) -> dict[str, Any]:
    """Session hours used in a month vs the tenant's quota (0 = unlimited), from the gateway's
    tables (one query), so it works while the gateway is down."""
    require(actor, Perm.VIEW_USAGE)
    period = month_start(period)
    if not gateway_tables_ready():
        return usage_of(None, period)
    row = dbconn.query(month_usage_stmt(), {"tenant_id": actor.tenant_id, "period": period}).one_or_none()
    return usage_of(row, period)


def usage_of(row: Any, period: date) -> dict[str, Any]:
    """``month_usage``'s answer from a row of its statement's columns (None, or a ``gateway_tenant``
    of None: the gateway has no row for the tenant, so nothing is known)."""
    if row is None or row.gateway_tenant is None:
        return {
            "period": period,
            "hours": Decimal(0),
            "quota": Decimal(0),
            "llm_tokens": 0,
            "stt_seconds": Decimal(0),
            "tts_chars": 0,
            "known": False,
        }
    return {
        "period": period,
        "hours": row.session_hours or Decimal(0),
        "quota": row.monthly_session_hours or Decimal(0),
        "llm_tokens": row.llm_tokens or 0,
        "stt_seconds": row.stt_seconds or Decimal(0),
        "tts_chars": row.tts_chars or 0,
        "known": True,
    }


def detail(actor: Actor, session_id: str) -> dict[str, Any]:
    """Everything the session page shows (bounded queries: session, campaign, NPCs, usage,
    transcript stats, recap)."""
    session, name = get_named(actor, session_id)
    return {
        "session": session,
        "campaign_name": name or session.campaign_id or _("Default campaign"),
        "campaign_known": name is not None,
        "npcs": campaign_npcs(actor, session.campaign_id),
        "usage": month_usage(actor, session.started_at) if actor.can(Perm.VIEW_USAGE) else None,
        "stats": transcripts.stats(actor, session),
        "recap": transcripts.recap(actor, session),
        "duration": duration(session),
    }


def guild_names(discord_guilds: list[Any] | None) -> dict[str, str]:
    """id -> name from the user's Discord guilds ([{id, name}], seen at sign-in)."""
    out = {}
    for g in discord_guilds or []:
        if isinstance(g, dict) and g.get("id"):
            out[str(g["id"])] = str(g.get("name") or g["id"])
    return out


# --------------------------------------------------------------------------- dashboard


@cache
def dashboard_statement() -> Select[tuple[GatewaySession, str]]:
    """``dashboard``'s statement (:tenant_id): each row a session and its campaign's name; a page
    that reads it in the same round trip as something else joins to it (``dashboard.overview``)."""
    live_ids = (
        select(GatewaySession.id)
        .where(GatewaySession.tenant_id == _tenant(), GatewaySession.state.in_(LIVE_STATES))
        .order_by(GatewaySession.started_at.desc())
        .limit(5)
    )
    last_id = (
        select(GatewaySession.id)
        .where(GatewaySession.tenant_id == _tenant(), GatewaySession.state == "ended")
        .order_by(GatewaySession.started_at.desc(), GatewaySession.id.desc())
        .limit(1)
    )
    return _with_campaign_name().where(
        GatewaySession.tenant_id == _tenant(), GatewaySession.id.in_(union_all(live_ids, last_id))
    )


ASK = object()  # dashboard(): this month's usage not read by the caller


def dashboard(actor: Actor, usage: Any = ASK) -> dict[str, Any]:
    """Widgets: live sessions now, the last session, this month's hours vs quota.

    The live sessions, the last ended one and their campaigns' names come from one statement (the
    two keyset-limited id lists in a UNION ALL, joined to the campaign names). ``usage`` is this
    month's ``month_usage`` when the caller read it in a statement of its own."""
    require(actor, Perm.VIEW_SESSIONS)
    if not gateway_tables_ready():
        return {"active": [], "last": None, "last_stats": None, "usage": None, "campaign_names": {}}
    return widgets_of(actor, dbconn.query(dashboard_statement(), {"tenant_id": actor.tenant_id}), usage)


def widgets_of(actor: Actor, rows: Any, usage: Any = ASK) -> dict[str, Any]:
    """``dashboard``'s widgets from its statement's rows ((session, campaign name) pairs); the
    caller has checked ``gateway_tables_ready`` and the actor's permission."""
    active = sorted((s for s, _name in rows if s.state in LIVE_STATES), key=lambda s: s.started_at, reverse=True)
    last = next((s for s, _name in rows if s.state == "ended"), None)
    return {
        "active": active,
        "last": last,
        "last_stats": transcripts.stats(actor, last) if last is not None else None,
        "usage": (month_usage(actor) if usage is ASK else usage) if actor.can(Perm.VIEW_USAGE) else None,
        "campaign_names": {s.campaign_id: name for s, name in rows if name is not None},
    }


# --------------------------------------------------------------------------- gateway status


@dataclass
class BotBadge:
    state: str  # connected | disconnected | error | unspecified | unavailable | no_server
    guild_count: int = 0
    error: str = ""


def bot_status(actor: Actor) -> BotBadge | None:
    """The tenant's bot status from GetBotStatus; None when no gateway is configured."""
    require(actor, Perm.VIEW_SESSIONS)
    client = gateway()
    if client is None:
        return None
    try:
        status = client.get_bot_status(actor.tenant_id, quick=True)
    except gw.GatewayError as exc:
        return BotBadge("unavailable", error=exc.message)
    if status.state == "connected":
        # "Bot connected" only when the table has a Discord server for it to be in (the
        # gateway's own tenants row, one query); a bot online elsewhere doesn't help this table.
        guilds = db.session.execute(
            select(GatewayTenant.guild_ids).where(GatewayTenant.id == actor.tenant_id)
        ).scalar_one_or_none()
        if not guilds:
            return BotBadge("no_server", status.guild_count, "")
    return BotBadge(status.state, status.guild_count, status.error)


__all__ = [
    "BotBadge",
    "SessionFilters",
    "SessionList",
    "bot_status",
    "campaign_npcs",
    "dashboard",
    "detail",
    "duration",
    "get",
    "get_named",
    "guild_names",
    "is_live",
    "list_sessions",
    "month_usage",
]
