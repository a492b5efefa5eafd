"""Campaigns (web-owned `web.campaigns`). Every query is scoped by the actor's tenant.

The campaign id is a free-form string the gateway carries as `campaign_id` (sessions, transcripts
and `npc_definitions` all use it), unique only within a tenant: the key is `(tenant_id, id)`.

Campaign ids found in the tenant's gateway data without a row of ours (`public.tenants.campaign_id`,
`public.sessions.campaign_id`, `public.npc_definitions.campaign_id`) are registered on first sight
(`register_found`, one statement) with origin `gateway`, named by their id until renamed.

"Active" is the tenant's default campaign for sessions started from Discord. The gateway's
`public.tenants.campaign_id` is the one source of truth: read in the same query as the cards,
written only through UpdateTenant. There is no web copy that could disagree."""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from dataclasses import dataclass, fields
from datetime import datetime
from functools import cache
from typing import Any, Generic, TypedDict, TypeVar

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Integer,
    ScalarSelect,
    Select,
    Subquery,
    and_,
    bindparam,
    event,
    func,
    or_,
    select,
    text,
    true,
)
from sqlalchemy import delete as sql_delete
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.orm import ORMExecuteState, Session, UOWTransaction, aliased

from glyphoxa_htmx.core import audit, dbconn
from glyphoxa_htmx.core.authz import Actor, Perm, own, require
from glyphoxa_htmx.core.deps import gateway
from glyphoxa_htmx.core.errors import Conflict, DomainError, NotFound, ValidationError
from glyphoxa_htmx.core.i18n import _, format_number, lazy_gettext
from glyphoxa_htmx.core.memo import Memo
from glyphoxa_htmx.core.parse import like_pattern
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import Campaign, CampaignTombstone, GatewaySession, GatewayTenant, NpcDefinition, NpcPosition
from glyphoxa_htmx.services import signin_cache

GAME_SYSTEMS = (
    "D&D 5e",
    "D&D 2024",
    "Pathfinder 2e",
    "Pathfinder 1e",
    "Call of Cthulhu",
    "Starfinder",
    "Shadowrun",
    "Vampire: The Masquerade",
    "Blades in the Dark",
    "Cyberpunk RED",
    "Warhammer Fantasy Roleplay",
    "Dungeon World",
    "Mörk Borg",
    "Savage Worlds",
    "FATE",
    "Homebrew",
)
LIMITS = {
    "name": 120,
    "game_system": 80,
    "description": 10_000,
    "language": 40,
    "tone": 200,
    "house_rules": 4_000,
    "lines_veils_item": 200,
    "lines_veils_count": 50,
}
# "… can be at most N characters (it has M)." per field: whole sentences, so each translates as one.
TOO_LONG = {
    "name": lazy_gettext("The name can be at most %(max)s characters (it has %(n)s)."),
    "game_system": lazy_gettext("The game system can be at most %(max)s characters (it has %(n)s)."),
    "description": lazy_gettext("The description can be at most %(max)s characters (it has %(n)s)."),
    "language": lazy_gettext("The language can be at most %(max)s characters (it has %(n)s)."),
    "tone": lazy_gettext("The tone can be at most %(max)s characters (it has %(n)s)."),
    "house_rules": lazy_gettext("House rules can be at most %(max)s characters (it has %(n)s)."),
}
PER_PAGE = 12

log = logging.getLogger(__name__)


class GatewayRefused(DomainError):
    """The gateway did not accept a change; nothing was changed on our side either."""

    status = 502
    default_message = "The voice service refused that change. Nothing was changed."


# --------------------------------------------------------------------------- lookups (shared)


# Campaign ids in the tenant's gateway data that have no row of ours, registered in one statement.
# Empty ids ("no campaign") are not campaigns. ON CONFLICT: two requests may race to register.
# {npcs} is where the tenant's NPCs' campaign ids come from (below).
_REGISTER = """
INSERT INTO web.campaigns (tenant_id, id, name, origin)
SELECT :t, f.id, f.id, 'gateway' FROM (
    SELECT campaign_id AS id FROM public.tenants WHERE id = :t
    UNION SELECT campaign_id FROM public.sessions WHERE tenant_id = :t
    UNION {npcs}
) AS f
WHERE f.id <> '' AND (CAST(:only AS text) IS NULL OR f.id = :only)
  AND NOT EXISTS (SELECT 1 FROM web.campaigns c WHERE c.tenant_id = :t AND c.id = f.id)
  AND NOT EXISTS (SELECT 1 FROM web.campaign_tombstones d WHERE d.tenant_id = :t AND d.id = f.id)
ON CONFLICT DO NOTHING
RETURNING id
"""
# The gateway's npc_definitions has no tenant index (only campaign_id and name): "this tenant's NPCs"
# reads every tenant's NPCs. Run per tenant and per process every FOUND_SYNC_SECONDS, it grew with
# the whole installation: 1.1 ms of PostgreSQL CPU a run at 10,000 NPC rows (0.37 ms in the indexed
# form below), and 1,000 users on two workers made ~67 runs a second. So rounds take candidate ids
# from one scan for all tenants per process and interval (``_npc_candidates``) and a direct link
# takes its id, each checked against the tenant's NPCs now by campaign_id (indexed), so an NPC
# deleted meanwhile registers nothing.
_KNOWN_NPCS = (
    "SELECT campaign_id FROM public.npc_definitions WHERE campaign_id = ANY(CAST(:npc AS text[])) AND tenant_id = :t"
)
_REGISTER_KNOWN = text(_REGISTER.format(npcs=_KNOWN_NPCS))
# A tenant's very first round also reads its NPCs exactly (its campaigns count from the first
# visit, even an NPC added a second before), and records that in web.tenants.campaigns_found_at in
# the same statement. Only that once: the scan ran again on each tenant's first round in every
# process (each worker, each restart and deploy), 1.3 ms of PostgreSQL a time at 10,000 NPC rows,
# growing with the installation's NPCs, ~2,000 times in the first seconds of 1,000 users on two
# workers. A tenant found before takes candidates like any later round: what its gateway data
# gained meanwhile shows within two intervals. (EXISTS over ``marked`` is a one-time filter:
# PostgreSQL skips the scan when the UPDATE marked nothing. SKIP LOCKED: a page never waits for
# the tenant's row; when another transaction holds it (a first round in another process, a
# settings change) this round takes candidates and a later first round marks it.)
_REGISTER_FIRST = text(
    "WITH marked AS (UPDATE web.tenants SET campaigns_found_at = now() WHERE id = ("
    "SELECT id FROM web.tenants WHERE id = :t AND campaigns_found_at IS NULL FOR UPDATE SKIP LOCKED) RETURNING id)"
    + _REGISTER.format(
        npcs=_KNOWN_NPCS
        + " UNION SELECT campaign_id FROM public.npc_definitions WHERE tenant_id = :t AND EXISTS (SELECT 1 FROM marked)"
    )
)
# NPC campaign ids of web tenants that have no campaign row and no tombstone: empty once
# everything is registered, so it stays small whatever the number of tenants and NPCs. The one
# read across tenants here; it is never shown, and a tenant's round takes only its own ids from it.
_UNREGISTERED_NPC_CAMPAIGNS = text("""
SELECT DISTINCT n.tenant_id, n.campaign_id FROM public.npc_definitions n
WHERE n.campaign_id <> '' AND n.tenant_id IS NOT NULL
  AND EXISTS (SELECT 1 FROM web.tenants t WHERE t.id = n.tenant_id)
  AND NOT EXISTS (SELECT 1 FROM web.campaigns c WHERE c.tenant_id = n.tenant_id AND c.id = n.campaign_id)
  AND NOT EXISTS (SELECT 1 FROM web.campaign_tombstones d WHERE d.tenant_id = n.tenant_id AND d.id = n.campaign_id)
""")


# The full scan reads the tenant's sessions (indexed) and its NPCs' campaign ids (above): run it
# at most once per tenant per interval in each process. New ids appear only when a Discord session
# starts with a new campaign or the gateway's tools add NPCs to one, so a short delay (at most two
# intervals) is harmless; a direct link to a new id (``only``) is always looked up.
FOUND_SYNC_SECONDS = 30.0
_last_sync: Memo[str, float] = Memo(10_000)  # bounded: forget everything rather than grow forever
_sync_lock = threading.Lock()
_npc_lock = threading.Lock()
_npc_snapshot: tuple[float, dict[str, list[str]]] | None = None


def _sync_due(tenant_id: str) -> bool | None:
    """None: not due; False: due, not the first time in this process; True: due, the first time."""
    now = time.monotonic()
    with _sync_lock:
        last = _last_sync.get(tenant_id)
        if last is not None and now - last < FOUND_SYNC_SECONDS:
            return None
        _last_sync.keep(tenant_id, now)
        return last is None


def _npc_candidates(tenant_id: str) -> list[str]:
    """NPC campaign ids of the tenant without a campaign row, as of at most FOUND_SYNC_SECONDS ago
    (one read for all tenants per process and interval, through ``dbconn.query``: on a read-only
    page it needs no ORM session of its own; a thread that finds another one reading uses the
    previous answer)."""
    global _npc_snapshot
    snapshot = _npc_snapshot
    if snapshot is None or time.monotonic() - snapshot[0] >= FOUND_SYNC_SECONDS:
        if _npc_lock.acquire(blocking=snapshot is None):
            try:
                if _npc_snapshot is snapshot:  # not refreshed by another thread meanwhile
                    taken = time.monotonic()
                    found: dict[str, list[str]] = {}
                    for tenant, campaign in dbconn.query(_UNREGISTERED_NPC_CAMPAIGNS):
                        found.setdefault(tenant, []).append(campaign)
                    _npc_snapshot = (taken, found)
                snapshot = _npc_snapshot
            finally:
                _npc_lock.release()
    assert snapshot is not None
    return snapshot[1].get(tenant_id, [])


def register_found(actor: Actor, only: str | None = None) -> list[str]:
    """Give every campaign id the gateway knows for this tenant a row (origin ``gateway``, named by
    its id), so sessions, NPCs and the active campaign of an existing installation show up as
    campaigns. One statement (at most once per FOUND_SYNC_SECONDS per tenant and process); commits
    only when it registered something. ``only`` limits it to one id (a direct link to a campaign
    not seen yet) and always runs.

    Through ``dbconn.query``: on a read-only page the statement runs in autocommit on the page's
    read connection (as it did on the session's connection, which such a page also runs in
    autocommit), without beginning a session transaction that would check out a second
    connection for one statement and take the page's reads off the read connection; elsewhere it
    joins the session's transaction, committed with the audit entry."""
    params: dict[str, Any]
    if only is not None:
        statement, params = _REGISTER_KNOWN, {"t": actor.tenant_id, "only": only, "npc": [only]}
    else:
        due = _sync_due(actor.tenant_id)
        if due is None:
            return []
        npc = _npc_candidates(actor.tenant_id)
        statement = _REGISTER_FIRST if due else _REGISTER_KNOWN
        params = {"t": actor.tenant_id, "only": None, "npc": npc}
    found = [row.id for row in dbconn.query(statement, params)]
    if found:
        _campaigns_changed(db.session())  # the directories (the commit below tells the other processes)
        audit.record(
            "campaign.found",
            "tenant",
            actor.tenant_id,
            tenant_id=actor.tenant_id,
            details={"campaign_ids": sorted(found), "source": "gateway data"},
        )
        db.session.commit()
    return found


def get(actor: Actor, campaign_id: str) -> Campaign:
    """A campaign of the actor's tenant, or NotFound (also for other tenants' campaigns). An id
    the tenant's gateway data uses but we have not seen yet is registered on the way."""
    require(actor, Perm.VIEW_SESSIONS)
    campaign = db.session.get(Campaign, (actor.tenant_id, campaign_id))
    if campaign is None and campaign_id and register_found(actor, only=campaign_id):
        campaign = db.session.get(Campaign, (actor.tenant_id, campaign_id))
    return own(actor, campaign)


def active_id(actor: Actor) -> str:
    """The tenant's active campaign: the gateway's ``public.tenants.campaign_id`` ('' = none)."""
    return (
        db.session.execute(
            select(GatewayTenant.campaign_id).where(GatewayTenant.id == actor.tenant_id)
        ).scalar_one_or_none()
        or ""
    )


@cache
def _choices_stmt(include_archived: bool) -> Select[tuple[str, str]]:
    """Built once per process (see the card statements below); the tenant is a bound parameter."""
    stmt = select(Campaign.id, Campaign.name).where(Campaign.tenant_id == _tenant()).order_by(Campaign.name)
    return stmt if include_archived else stmt.where(Campaign.archived_at.is_(None))


def choices(actor: Actor, *, include_archived: bool = False) -> list[tuple[str, str]]:
    """(id, name) of the tenant's campaigns for pickers and filters, by name. Archived ones too
    is the tenant's directory (kept per process, see "the directory"): no statement while it is
    held (issue 18: under load every round trip costs a page far more than its statement)."""
    require(actor, Perm.VIEW_SESSIONS)
    register_found(actor)
    if include_archived:
        return list((cached_directory(actor.tenant_id) or read_directory(actor)).choices)
    rows = dbconn.query(_choices_stmt(include_archived), {"tenant_id": actor.tenant_id})
    return [(r.id, r.name) for r in rows]


def names(actor: Actor, campaign_ids: set[str]) -> dict[str, str]:
    """id -> name for a set of campaign ids (one query; unknown ids are simply absent)."""
    if not campaign_ids:
        return {}
    rows = db.session.execute(
        select(Campaign.id, Campaign.name).where(Campaign.tenant_id == actor.tenant_id, Campaign.id.in_(campaign_ids))
    )
    return {r.id: r.name for r in rows}


# --------------------------------------------------------------------------- the directory
# Every campaign of a tenant, (id, name) by name, archived ones too, kept per process (issue 18):
# what the search page shows of campaigns (its filter, the names over its hits) without a statement
# on each search. Filled only from a read of committed rows on a read-only page (``keep_directory``),
# and emptied in this process by any write to a campaign (a flush or an ORM UPDATE/DELETE of
# ``Campaign``, and ``register_found``), then again after the commit, which also tells every other
# process (``signin_cache.publish``): as sign-ins are. An entry lives DIRECTORY_SECONDS while the
# process hears the others, else 3 s (``signin_cache.lifetime``: fail closed); a change made with
# plain SQL outside the app shows within that.

DIRECTORY_SECONDS = 30.0
MAX_DIRECTORIES = 20_000  # tenants, ~0.5 KB each
CHANGED = "campaigns"  # the channel's topic for campaign changes


@dataclass(frozen=True)
class Directory:
    choices: tuple[tuple[str, str], ...]  # (id, name) by name, archived ones too
    names: dict[str, str]  # id -> name


_directory_lock = threading.Lock()
_directories: Memo[str, tuple[float, int, Directory]] = Memo(MAX_DIRECTORIES)
_directory_generation = 0


def forget_directories() -> None:
    """Empty this process's directories (a campaign changed here or in another process)."""
    global _directory_generation
    with _directory_lock:
        _directory_generation += 1
        _directories.clear()


signin_cache.on_change(CHANGED, forget_directories)


def cached_directory(tenant_id: str) -> Directory | None:
    """The tenant's directory if this process holds a live one, else None (read it, then
    ``keep_directory`` with the generation read before the statement)."""
    hit = _directories.get(tenant_id)
    if hit is None or hit[1] != _directory_generation:
        return None
    if time.monotonic() - hit[0] >= signin_cache.lifetime(DIRECTORY_SECONDS):
        return None
    return hit[2]


def directory_generation() -> int:
    return _directory_generation


def keep_directory(tenant_id: str, generation: int, choices: list[tuple[str, str]]) -> Directory:
    """The directory read from ``choices`` (every campaign of the tenant, by name); kept when it
    was read from committed rows and no campaign changed in this process since ``generation``."""
    found = Directory(choices=tuple(choices), names=dict(choices))
    if dbconn.reads_committed():
        with _directory_lock:
            if generation == _directory_generation:
                _directories.keep(tenant_id, (time.monotonic(), generation, found))
    return found


def read_directory(actor: Actor) -> Directory:
    """The tenant's directory read now (``choices``' statement, archived ones too), and kept when
    read from committed rows."""
    generation = directory_generation()
    rows = dbconn.query(_choices_stmt(True), {"tenant_id": actor.tenant_id})
    return keep_directory(actor.tenant_id, generation, [(r.id, r.name) for r in rows])


def _campaigns_changed(session: Session) -> None:
    session.info["gx_campaigns_changed"] = True
    forget_directories()


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush_context: UOWTransaction) -> None:
    if any(isinstance(obj, Campaign) for obj in (*session.new, *session.dirty, *session.deleted)):
        _campaigns_changed(session)


@event.listens_for(Session, "do_orm_execute")
def _orm_execute(state: ORMExecuteState) -> None:
    if state.is_insert or state.is_update or state.is_delete:
        mapper = state.bind_mapper
        if mapper is not None and issubclass(mapper.class_, Campaign):
            _campaigns_changed(state.session)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop("gx_campaigns_changed", False):
        forget_directories()  # again: a request may have kept the old rows between flush and commit
        signin_cache.publish(CHANGED)


# --------------------------------------------------------------------------- listing


@dataclass
class CampaignCard:
    campaign: Any  # Campaign's columns as a read-only snapshot (dbconn.query): cards only show it
    npc_count: int
    last_session_at: datetime | None
    live: bool  # a session of this campaign is pending or active
    active: bool  # the tenant's default campaign for Discord-started sessions (the gateway's)

    @property
    def found(self) -> bool:
        """Registered from the gateway's data ("found in Discord sessions"), not created here."""
        return bool(self.campaign.origin == "gateway")


_Item = TypeVar("_Item")


@dataclass
class Page(Generic[_Item]):
    items: list[_Item]
    page: int
    pages: int
    total: int
    q: str = ""
    size: int = 0  # the whole collection, ignoring the search (e.g. the cast when filtered)

    @property
    def has_prev(self) -> bool:
        return self.page > 1

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def _card_columns(tenant_id: str | BindParameter[str]) -> tuple[ScalarSelect[int], Subquery]:
    """(npc count, session stats): the count per campaign row through the gateway's campaign_id
    index, the session stats aggregated once for the tenant (idx_sessions_tenant).

    The gateway's npc_definitions has no tenant index and we never add one (README, "What is never
    touched"): "the tenant's NPCs, grouped by campaign" read every tenant's NPCs on every campaigns
    page (1.4 ms of PostgreSQL at 10,000 NPC rows, growing with the installation; issue 18). An id
    that other tenants' rows share too (the gateway's ids are free-form) costs those rows' lookups."""
    npcs = (
        select(func.count().label("npcs"))
        .where(NpcDefinition.campaign_id == Campaign.id, NpcDefinition.tenant_id == tenant_id)
        .correlate(Campaign)
        .scalar_subquery()
    )
    sessions = (
        select(
            GatewaySession.campaign_id.label("campaign_id"),
            func.max(GatewaySession.started_at).label("last_at"),
            func.bool_or(GatewaySession.state != "ended").label("live"),
        )
        .where(GatewaySession.tenant_id == tenant_id)
        .group_by(GatewaySession.campaign_id)
        .subquery()
    )
    return npcs, sessions


# The card statements are built once per process with bound parameters (:tenant_id, :pattern,
# :campaign_id, :limit, :offset): building a SELECT with its subqueries and computing its cache key
# cost ~0.2-0.5 ms of Python on every request, a prebuilt statement's key is memoized (issue 18).
CardRow = tuple[Campaign, int, datetime | None, bool, bool]


def _tenant() -> BindParameter[str]:
    return bindparam("tenant_id", type_=Campaign.tenant_id.type)


@cache
def _cards_base() -> Select[CardRow]:
    npcs, sessions = _card_columns(_tenant())
    active = select(GatewayTenant.campaign_id).where(GatewayTenant.id == _tenant()).scalar_subquery()
    return (
        select(
            Campaign,
            npcs,
            sessions.c.last_at,
            func.coalesce(sessions.c.live, False),
            (Campaign.id == func.coalesce(active, "")),
        )
        .outerjoin(sessions, sessions.c.campaign_id == Campaign.id)
        .where(Campaign.tenant_id == _tenant())
    )


def _list_where(archived: bool, searching: bool) -> list[ColumnElement[bool]]:
    where = [
        Campaign.tenant_id == _tenant(),
        Campaign.archived_at.is_not(None) if archived else Campaign.archived_at.is_(None),
    ]
    if searching:
        pattern = bindparam("pattern", type_=Campaign.name.type)
        where.append(or_(Campaign.name.ilike(pattern), Campaign.game_system.ilike(pattern)))
    return where


@cache
def _list_count(archived: bool, searching: bool) -> Select[tuple[int]]:
    return select(func.count()).select_from(Campaign).where(*_list_where(archived, searching))


@cache
def _list_page(archived: bool, searching: bool) -> Select[Any]:
    """One page of cards with how many match in all (a window count, before LIMIT): one statement."""
    return (
        _cards_base()
        .add_columns(func.count().over())
        .where(*_list_where(archived, searching))
        .order_by(Campaign.updated_at.desc(), Campaign.id)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


@cache
def card_statement() -> Select[CardRow]:
    """``card``'s statement (:tenant_id, :campaign_id), whose first ``CARD_WIDTH`` items make a
    ``CampaignCard``; a page that reads more in the same round trip joins to it (``npcs.card_and_cast``)."""
    return _cards_base().where(Campaign.id == bindparam("campaign_id", type_=Campaign.id.type))


CARD_WIDTH = len(fields(CampaignCard))  # CardRow's items


def page_window(page: int, per_page: int) -> dict[str, int]:
    """The :limit and :offset of a 1-based page of ``per_page`` rows."""
    return {"limit": per_page, "offset": (page - 1) * per_page}


@cache
def _counts_stmt() -> Select[tuple[int, int]]:
    return select(
        func.count().filter(Campaign.archived_at.is_(None)), func.count().filter(Campaign.archived_at.is_not(None))
    ).where(Campaign.tenant_id == _tenant())


def list_cards(
    actor: Actor, *, q: str = "", archived: bool = False, page: int = 1, per_page: int = PER_PAGE
) -> Page[CampaignCard]:
    """The campaign cards of one page (the page and the count of all matches in one statement,
    whatever the page size; registering ids found in gateway data first, which asks nothing once
    they are known). A page past the last one shows the last (counted first, then read)."""
    return _cards(actor, q, archived, page, per_page, with_counts=False)[0]


def cards_and_counts(
    actor: Actor, *, q: str = "", archived: bool = False, page: int = 1, per_page: int = PER_PAGE
) -> tuple[Page[CampaignCard], dict[str, int]]:
    """``list_cards`` and ``counts`` (the tabs) in one statement: the page's cards outer-joined to
    the counts on nothing (issue 18: under load every round trip costs a page far more than its
    statement)."""
    return _cards(actor, q, archived, page, per_page, with_counts=True)


def _cards(
    actor: Actor, q: str, archived: bool, page: int, per_page: int, *, with_counts: bool
) -> tuple[Page[CampaignCard], dict[str, int]]:
    require(actor, Perm.VIEW_SESSIONS)
    register_found(actor)
    q = (q or "").strip()[:100]
    params: dict[str, Any] = {"tenant_id": actor.tenant_id}
    if q:
        params["pattern"] = like_pattern(q)
    statement = _list_page(archived, bool(q))
    page = max(1, page)
    window = page_window(page, per_page)
    tabs: dict[str, int] = {}
    if with_counts:
        found = dbconn.query(_cards_and_counts(archived, bool(q)), {**params, **window})
        tabs = {"current": found[0][0], "archived": found[0][1]}  # (the counts: always one row)
        rows = [r[2:] for r in found if r[2].id is not None]  # (no card: a snapshot of NULLs)
    else:
        rows = dbconn.query(statement, {**params, **window}).all()
    if rows:
        total = int(rows[0][-1])
    else:  # none at all, or past the last page: only then is the count asked on its own
        total = 0 if page == 1 else dbconn.query(_list_count(archived, bool(q)), params).scalar_one()
    pages = max(1, math.ceil(total / per_page))
    if page > pages:  # (a bookmark, a tab left open while campaigns were archived): the last page
        page = pages
        rows = dbconn.query(statement, {**params, **page_window(page, per_page)}).all()
    return Page([CampaignCard(*row[:-1]) for row in rows], page, pages, total, q), tabs


@cache
def _cards_and_counts(archived: bool, searching: bool) -> Select[Any]:
    """``counts``' statement with ``_list_page``'s rows outer-joined on nothing, in the page's
    order: the counts, then a card's items and the window count on every row."""
    counts = _counts_stmt().subquery("counts")
    cards = _list_page(archived, searching).subquery("cards")
    width = len(sa_inspect(Campaign).column_attrs)  # (the Campaign entity's columns lead the card's)
    return (
        select(*counts.c, aliased(Campaign, cards), *list(cards.c)[width:])
        .select_from(counts)
        .outerjoin(cards, true())
        .order_by(cards.c.updated_at.desc(), cards.c.id)
    )


def card(actor: Actor, campaign_id: str) -> CampaignCard:
    """One campaign with its counts and badges (one query)."""
    require(actor, Perm.VIEW_SESSIONS)
    params = {"tenant_id": actor.tenant_id, "campaign_id": campaign_id}
    row = dbconn.query(card_statement(), params).first()
    if row is None and campaign_id and register_found(actor, only=campaign_id):
        row = dbconn.query(card_statement(), params).first()
    if row is None:
        raise NotFound()
    return CampaignCard(*row)


def counts(actor: Actor) -> dict[str, int]:
    """How many live and archived campaigns the tenant has (for tabs and empty states)."""
    require(actor, Perm.VIEW_SESSIONS)
    row = dbconn.query(_counts_stmt(), {"tenant_id": actor.tenant_id}).one()
    return {"current": row[0], "archived": row[1]}


# --------------------------------------------------------------------------- validation


def _lines(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.splitlines()
    return [str(v).strip() for v in value if str(v).strip()]


def blank() -> dict[str, Any]:
    return {
        "name": "",
        "game_system": "",
        "description": "",
        "language": "",
        "tone": "",
        "lines_veils": [],
        "house_rules": "",
    }


def to_form(campaign: Campaign) -> dict[str, Any]:
    s = campaign.settings or {}
    return {
        "name": campaign.name,
        "game_system": campaign.game_system,
        "description": campaign.description,
        "language": s.get("language", ""),
        "tone": s.get("tone", ""),
        "lines_veils": list(s.get("lines_veils", [])),
        "house_rules": s.get("house_rules", ""),
        "version": campaign.version,
    }


def validate(data: dict[str, Any]) -> dict[str, Any]:
    """Clean campaign fields, or ValidationError with a message per field."""
    errors: dict[str, str] = {}
    clean: dict[str, Any] = {
        k: str(data.get(k) or "").strip()
        for k in ("name", "game_system", "description", "language", "tone", "house_rules")
    }
    clean["description"] = str(data.get("description") or "").strip("\n").rstrip()
    clean["lines_veils"] = _lines(data.get("lines_veils"))
    if not clean["name"]:
        errors["name"] = _("Give the campaign a name.")
    for key, message in TOO_LONG.items():
        if len(clean[key]) > LIMITS[key]:
            errors[key] = str(message) % {"max": format_number(LIMITS[key]), "n": format_number(len(clean[key]))}
    if len(clean["lines_veils"]) > LIMITS["lines_veils_count"]:
        errors["lines_veils"] = _("Keep it to %(max)s lines and veils.", max=LIMITS["lines_veils_count"])
    for i, item in enumerate(clean["lines_veils"], 1):
        if len(item) > LIMITS["lines_veils_item"]:
            errors["lines_veils"] = _(
                "Entry %(i)s is longer than %(max)s characters.", i=i, max=LIMITS["lines_veils_item"]
            )
            break
    if errors:
        raise ValidationError(errors)
    return clean


def _apply(campaign: Campaign, clean: dict[str, Any]) -> None:
    campaign.name = clean["name"]
    campaign.game_system = clean["game_system"]
    campaign.description = clean["description"]
    campaign.settings = {
        "language": clean["language"],
        "tone": clean["tone"],
        "lines_veils": clean["lines_veils"],
        "house_rules": clean["house_rules"],
    }


def snapshot(campaign: Campaign) -> dict[str, Any]:
    return {
        "name": campaign.name,
        "game_system": campaign.game_system,
        "description": campaign.description,
        "settings": dict(campaign.settings or {}),
        "archived": campaign.archived_at is not None,
    }


def new_campaign_id() -> str:
    return "cmp_" + secrets.token_hex(6)


# --------------------------------------------------------------------------- changes


def create(actor: Actor, data: dict[str, Any]) -> Campaign:
    require(actor, Perm.MANAGE_CAMPAIGNS)
    clean = validate(data)
    campaign = Campaign(id=new_campaign_id(), tenant_id=actor.tenant_id, settings={}, version=1)
    _apply(campaign, clean)
    db.session.add(campaign)
    audit.record("campaign.create", "campaign", campaign.id, actor=actor, after=snapshot(campaign))
    db.session.commit()
    return campaign


def _locked(actor: Actor, campaign_id: str) -> Campaign:
    """The actor's campaign, row-locked for this transaction (NotFound for anyone else's)."""
    return own(
        actor,
        db.session.execute(
            select(Campaign)
            .where(Campaign.tenant_id == actor.tenant_id, Campaign.id == campaign_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none(),
    )


def update(actor: Actor, campaign_id: str, data: dict[str, Any], *, version: int | str | None) -> Campaign:
    """Save the form. ``version`` is what the form was loaded with: someone else's newer save wins
    and this one is refused with Conflict instead of silently overwriting it."""
    get(actor, campaign_id)  # 404 for someone else's campaign, before the role or the input is judged
    require(actor, Perm.MANAGE_CAMPAIGNS)
    clean = validate(data)
    campaign = _locked(actor, campaign_id)
    if str(version) != str(campaign.version):
        db.session.rollback()
        raise Conflict(
            _(
                "Someone else changed this campaign since you opened it. Reload to see their "
                "changes, then make yours again."
            )
        )
    before = snapshot(campaign)
    _apply(campaign, clean)
    after = snapshot(campaign)
    if after != before:
        campaign.version += 1
        campaign.updated_at = func.now()
        audit.record("campaign.update", "campaign", campaign.id, actor=actor, before=before, after=after)
    db.session.commit()
    return campaign


def _active_locked(actor: Actor) -> str:
    """The gateway's active campaign for this tenant, read under an advisory lock so two of our
    own changes of it are serialised (the gateway's row itself is never written by us)."""
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"), {"key": f"active-campaign:{actor.tenant_id}"}
    )
    return active_id(actor)


def _gateway_set_campaign(actor: Actor, campaign: Campaign, *, clear: bool) -> None:
    """Change the active campaign on the gateway (UpdateTenant, the only writer of it). Raise
    GatewayRefused, having changed nothing."""
    client = gateway()
    if client is None:
        db.session.rollback()
        raise GatewayRefused(
            _("Couldn't clear the active campaign: no voice gateway is connected to this server. Nothing was changed.")
            if clear
            else _(
                "Couldn't make “%(name)s” the active campaign: no voice gateway is connected to this server. "
                "Nothing was changed.",
                name=campaign.name,
            )
        )
    from glyphoxa_htmx.adapters.gateway.errors import GatewayError

    try:
        if clear:
            client.update_tenant(actor.tenant_id, clear_campaign_id=True)
        else:
            client.update_tenant(actor.tenant_id, campaign_id=campaign.id)
    except GatewayError as exc:
        db.session.rollback()
        raise GatewayRefused(
            _("Couldn't clear the active campaign: %(reason)s Nothing was changed.", reason=exc.message)
            if clear
            else _(
                "Couldn't make “%(name)s” the active campaign: %(reason)s Nothing was changed.",
                name=campaign.name,
                reason=exc.message,
            )
        ) from exc


def _commit_after_gateway(actor: Actor, previous_campaign_id: str) -> None:
    """Commit our side of a change the gateway already applied; if our commit fails, put the
    gateway's campaign back (best effort, logged)."""
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        client = gateway()
        if client is not None:
            from glyphoxa_htmx.adapters.gateway.errors import GatewayError

            try:
                if previous_campaign_id:
                    client.update_tenant(actor.tenant_id, campaign_id=previous_campaign_id)
                else:
                    client.update_tenant(actor.tenant_id, clear_campaign_id=True)
            except GatewayError:
                log.error(
                    "could not restore the gateway's active campaign after a failed commit",
                    extra={"tenant_id": actor.tenant_id},
                )
        raise


def make_active(actor: Actor, campaign_id: str) -> Campaign:
    """Make this the tenant's default campaign for sessions started from Discord."""
    campaign = _locked(actor, campaign_id)  # 404 first, then the role (403)
    require(actor, Perm.MANAGE_CAMPAIGNS)
    if campaign.archived_at is not None:
        db.session.rollback()
        message = _("Archived campaigns can't be active. Unarchive it first.")
        raise ValidationError({"": message}, message)
    previous = _active_locked(actor)
    if previous == campaign.id:
        db.session.rollback()
        return campaign
    _gateway_set_campaign(actor, campaign, clear=False)
    audit.record(
        "campaign.activate",
        "campaign",
        campaign.id,
        actor=actor,
        before={"active_campaign_id": previous},
        after={"active_campaign_id": campaign.id},
    )
    _commit_after_gateway(actor, previous)
    return campaign


def set_archived(actor: Actor, campaign_id: str, archived: bool) -> Campaign:
    """Archive (hide from pickers; the active campaign is cleared on the gateway too) or unarchive."""
    campaign = _locked(actor, campaign_id)  # 404 first, then the role (403)
    require(actor, Perm.MANAGE_CAMPAIGNS)
    if (campaign.archived_at is not None) == archived:
        db.session.rollback()
        return campaign
    before = snapshot(campaign)
    details = {}
    if archived and _active_locked(actor) == campaign.id:
        _gateway_set_campaign(actor, campaign, clear=True)
        details["active_campaign_cleared"] = True
    campaign.archived_at = func.now() if archived else None
    campaign.version += 1
    campaign.updated_at = func.now()
    after = {**before, "archived": archived}
    audit.record(
        "campaign.archive" if archived else "campaign.unarchive",
        "campaign",
        campaign.id,
        actor=actor,
        before=before,
        after=after,
        details=details,
    )
    if details.get("active_campaign_cleared"):
        _commit_after_gateway(actor, campaign.id)
    else:
        db.session.commit()
    return campaign


def live_session_exists(actor: Actor, campaign_id: str) -> bool:
    return (
        db.session.execute(
            select(func.count())
            .select_from(GatewaySession)
            .where(
                GatewaySession.tenant_id == actor.tenant_id,
                GatewaySession.campaign_id == campaign_id,
                GatewaySession.state != "ended",
            )
        ).scalar_one()
        > 0
    )


def lock_cast(actor: Actor, campaign_id: str) -> None:
    """Serialise changes to one campaign's NPCs (gm_helper and name uniqueness, ordering, delete)
    for the rest of the transaction. Also blocks inserts, which row locks cannot."""
    db.session.execute(
        text("SELECT pg_advisory_xact_lock(hashtextextended(:key, 0))"),
        {"key": f"npcs:{actor.tenant_id}:{campaign_id}"},
    )


class Deleted(TypedDict):
    name: str
    npcs_deleted: int


def delete(actor: Actor, campaign_id: str, confirm_name: str) -> Deleted:
    """Delete an archived campaign, its NPC definitions and their positions, in one transaction.
    Refused while a session of it is live, and unless its exact name was typed."""
    campaign = _locked(actor, campaign_id)  # 404 first, then the role (403)
    require(actor, Perm.MANAGE_CAMPAIGNS)
    errors = {}
    if campaign.archived_at is None:
        errors[""] = _("Only archived campaigns can be deleted. Archive it first.")
    elif live_session_exists(actor, campaign.id):
        errors[""] = _("A session of this campaign is running. Stop it before deleting the campaign.")
    if (confirm_name or "").strip() != campaign.name:
        errors["confirm_name"] = _("Type the campaign's name exactly as shown to confirm.")
    if errors:
        db.session.rollback()
        raise ValidationError(errors, errors.get("") or errors["confirm_name"])
    lock_cast(actor, campaign.id)
    gateway_cleared = _active_locked(actor) == campaign.id  # rare: archiving clears it already
    if gateway_cleared:
        _gateway_set_campaign(actor, campaign, clear=True)
    scope = and_(NpcDefinition.tenant_id == actor.tenant_id, NpcDefinition.campaign_id == campaign.id)
    npc_names = list(db.session.execute(select(NpcDefinition.name).where(scope).order_by(NpcDefinition.name)).scalars())
    db.session.execute(sql_delete(NpcDefinition).where(scope))
    db.session.execute(
        sql_delete(NpcPosition).where(NpcPosition.tenant_id == actor.tenant_id, NpcPosition.campaign_id == campaign.id)
    )
    summary: Deleted = {"name": campaign.name, "npcs_deleted": len(npc_names)}
    audit.record(
        "campaign.delete",
        "campaign",
        campaign.id,
        actor=actor,
        before=snapshot(campaign),
        after=None,
        details={"npcs_deleted": npc_names},
    )
    db.session.delete(campaign)
    db.session.merge(CampaignTombstone(tenant_id=actor.tenant_id, id=campaign.id))  # old sessions keep the id
    if gateway_cleared:
        _commit_after_gateway(actor, campaign.id)
    else:
        db.session.commit()
    return summary
