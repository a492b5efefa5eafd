"""NPCs: rows of `public.npc_definitions`, which the web service owns and the gateway reads when a
session starts (contract §1.4). Every column is written, `tenant_id` always. The gateway's rules are
enforced here; display order lives beside the rows in `web.npc_positions`, so the gateway's reads
never change."""

from __future__ import annotations

import hashlib
import json
import math
import re
import uuid
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any, NamedTuple

from flask_babel import format_number
from sqlalchemy import (
    ARRAY,
    Integer,
    Text,
    and_,
    bindparam,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    true,
)
from sqlalchemy import update as sql_update
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import InstrumentedAttribute
from sqlalchemy.sql.elements import ColumnElement, UnaryExpression
from sqlalchemy.sql.selectable import Select

from glyphoxa_htmx.core import audit, dbconn
from glyphoxa_htmx.core.authz import Actor, Perm, own, require
from glyphoxa_htmx.core.errors import Conflict, NotFound, ValidationError
from glyphoxa_htmx.core.i18n import _, lazy_gettext
from glyphoxa_htmx.core.parse import like_pattern
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import Campaign, NpcDefinition, NpcPosition
from glyphoxa_htmx.services import campaigns, plans
from glyphoxa_htmx.services.campaigns import CampaignCard, Page, lock_cast, page_window

# The ids are what the gateway stores; the labels are shown (translated when rendered).
ENGINES = {
    "cascaded": lazy_gettext("Cascaded: listen, think, speak"),
    "sentence_cascade": lazy_gettext("Sentence cascade: starts speaking sooner"),
    "s2s": lazy_gettext("Speech-to-speech: one realtime model"),
}
BUDGET_TIERS = {
    "fast": lazy_gettext("Fast: quick, cheap answers"),
    "standard": lazy_gettext("Standard: balanced"),
    "deep": lazy_gettext("Deep: slower, more thoughtful"),
}
# Their short names, for badges and lists.
ENGINE_NAMES = {
    "cascaded": lazy_gettext("Cascaded"),
    "sentence_cascade": lazy_gettext("Sentence cascade"),
    "s2s": lazy_gettext("Speech-to-speech"),
}
TIER_NAMES = {"fast": lazy_gettext("Fast"), "standard": lazy_gettext("Standard"), "deep": lazy_gettext("Deep")}


def engine_label(value: str) -> str:
    """The short name of an engine for badges, lists and toasts ('Sentence cascade', not the id)."""
    return str(ENGINE_NAMES[value]) if value in ENGINE_NAMES else str(value or "").replace("_", " ").capitalize()


def tier_label(value: str) -> str:
    """The short name of a budget tier ('Deep', not 'deep')."""
    return str(TIER_NAMES[value]) if value in TIER_NAMES else str(value or "").replace("_", " ").capitalize()


LIST_FIELDS = ("knowledge_scope", "secret_knowledge", "behavior_rules", "tools")
#: What the gateway actually sends to the running NPC (contract §1.4); everything else is stored only.
FORWARDED = frozenset(
    {"name", "personality", "engine", "voice_id", "knowledge_scope", "budget_tier", "gm_helper", "address_only"}
)
LIMITS = {
    "name": 120,
    "personality": 8_000,
    "list_item": 500,
    "list_count": 100,
    "voice_id": 100,
    "attr_key": 64,
    "attr_value": 500,
    "attr_count": 50,
}
PITCH_RANGE = (-10.0, 10.0)
SPEED_RANGE = (0.5, 2.0)
PER_PAGE = 50
PROVIDER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")
VOICE_ID_RE = re.compile(r"^[A-Za-z0-9_.:+/-]*$")
TOOL_RE = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")


# --------------------------------------------------------------------------- reading


class CastNpc(NamedTuple):
    """What the cast list shows of an NPC (issue 18: the whole row decoded six JSON columns per NPC,
    ~0.5 ms for a page of 50); the editor reads the whole row."""

    id: str
    name: str
    personality: str
    engine: str
    voice: Any  # JSON as the gateway stored it (an object, normally)
    budget_tier: str
    gm_helper: bool
    address_only: bool


_CAST_COLUMNS = tuple(getattr(NpcDefinition, name) for name in CastNpc._fields)


@dataclass
class CastMember:
    npc: CastNpc
    position: int  # 1-based place in the whole cast (not just this page)


def get(actor: Actor, npc_id: str) -> NpcDefinition:
    """An NPC of the actor's tenant, or NotFound (other tenants' rows and legacy rows without a tenant)."""
    require(actor, Perm.VIEW_SESSIONS)
    return own(actor, db.session.get(NpcDefinition, npc_id))


@cache
def _view_stmt() -> Select[Any]:
    """An NPC of a tenant with its campaign's row (built once per process, see the cast list)."""
    tenant = bindparam("tenant_id", type_=NpcDefinition.tenant_id.type)
    return (
        select(NpcDefinition, Campaign)
        .outerjoin(Campaign, and_(Campaign.tenant_id == tenant, Campaign.id == NpcDefinition.campaign_id))
        .where(NpcDefinition.id == bindparam("npc_id", type_=NpcDefinition.id.type), NpcDefinition.tenant_id == tenant)
    )


def view(actor: Actor, npc_id: str) -> tuple[Any, Any]:
    """An NPC of the actor's tenant and its campaign (None when the campaign has no row, even
    after registering an id found in the gateway's data), for the editor page: one statement,
    both as read-only snapshots (dbconn.query). NotFound like :func:`get`."""
    require(actor, Perm.VIEW_SESSIONS)
    row = dbconn.query(_view_stmt(), {"tenant_id": actor.tenant_id, "npc_id": npc_id}).one_or_none()
    npc = own(actor, row.NpcDefinition if row is not None else None)
    if row.Campaign.id is not None:  # (an outer join's missing campaign is a snapshot of NULLs)
        return npc, row.Campaign
    return npc, campaign_of(actor, npc)


def campaign_of(actor: Actor, npc: Any) -> Campaign | None:
    """The NPC's campaign, registered on the way when only the gateway's data names it; None when
    it has no row (an NPC whose campaign row is missing is still editable)."""
    try:
        return campaigns.get(actor, npc.campaign_id)
    except NotFound:
        return None


def _scope(actor: Actor, campaign_id: str) -> ColumnElement[bool]:
    return and_(NpcDefinition.tenant_id == actor.tenant_id, NpcDefinition.campaign_id == campaign_id)


def _order_by() -> tuple[UnaryExpression[int], InstrumentedAttribute[datetime], InstrumentedAttribute[str]]:
    return (NpcPosition.position.asc().nulls_last(), NpcDefinition.created_at, NpcDefinition.id)


def _ordered(actor: Actor, campaign_id: str, *columns: Any) -> Select[Any]:
    """The cast in display order: by saved position, then unpositioned rows by creation."""
    cols = columns or (NpcDefinition, func.row_number().over(order_by=_order_by()).label("rank"))
    return (
        select(*cols)
        .outerjoin(NpcPosition, and_(NpcPosition.npc_id == NpcDefinition.id, NpcPosition.tenant_id == actor.tenant_id))
        .where(_scope(actor, campaign_id))
    )


@cache
def _cast_statements(searching: bool) -> tuple[Select[Any], Select[tuple[int]]]:
    """(one page, the filtered count) of a campaign's cast, built once per process with bound
    parameters (:tenant_id, :campaign_id, :pattern, :limit, :offset): building these with their
    window subquery and cache key on every request cost more than running them (issue 18)."""
    tenant = bindparam("tenant_id", type_=NpcDefinition.tenant_id.type)
    campaign = bindparam("campaign_id", type_=NpcDefinition.campaign_id.type)
    ranked = (
        select(
            *_CAST_COLUMNS,
            func.row_number().over(order_by=_order_by()).label("rank"),
            func.count().over().label("size"),
        )
        .outerjoin(NpcPosition, and_(NpcPosition.npc_id == NpcDefinition.id, NpcPosition.tenant_id == tenant))
        .where(NpcDefinition.tenant_id == tenant, NpcDefinition.campaign_id == campaign)
        .subquery()
    )
    where = []
    if searching:
        pattern = bindparam("pattern", type_=NpcDefinition.name.type)
        where.append(or_(ranked.c.name.ilike(pattern), ranked.c.personality.ilike(pattern)))
    page = (
        select(
            *(ranked.c[name] for name in CastNpc._fields),
            ranked.c.rank,
            ranked.c.size,
            func.count().over().label("total"),
        )
        .where(*where)
        .order_by(ranked.c.rank)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )
    return page, select(func.count()).select_from(ranked).where(*where)


def list_cast(
    actor: Actor, campaign_id: str, *, q: str = "", page: int = 1, per_page: int = PER_PAGE
) -> Page[CastMember]:
    """One page of a campaign's NPCs in display order, optionally filtered: one query (the page
    carries the filtered count), two when the page asked for lies past the end."""
    require(actor, Perm.VIEW_SESSIONS)
    q = (q or "").strip()[:100]
    page = max(1, page)
    params = _cast_params(actor, campaign_id, q)
    rows = dbconn.query(_cast_statements(bool(q))[0], {**params, **page_window(page, per_page)})
    return _cast_page(params, q, page, per_page, rows)


def card_and_cast(
    actor: Actor, campaign_id: str, *, q: str = "", page: int = 1, per_page: int = PER_PAGE
) -> tuple[CampaignCard, Page[CastMember]]:
    """``campaigns.card`` and ``list_cast`` of the campaign page in one statement: the card's
    columns with one page of the cast joined on nothing (a row per NPC of the page, or one with
    the cast's columns NULL when the page is empty). Under load every round trip costs a page
    far more than its statement: the thread gives up the interpreter while it waits and takes it
    back among the others (issue 18: one trivial extra statement took the campaign page from 1.7x
    to 2.0-2.3x the floor under wrk). An id that isn't a campaign of the tenant (yet) finds no
    row and goes the two statements' way: ``campaigns.card`` registers an id the gateway's data
    names, or refuses with NotFound."""
    require(actor, Perm.VIEW_SESSIONS)
    q = (q or "").strip()[:100]
    page = max(1, page)
    params = _cast_params(actor, campaign_id, q)
    rows = dbconn.query(_card_and_cast_stmt(bool(q)), {**params, **page_window(page, per_page)})
    if not rows:
        return campaigns.card(actor, campaign_id), list_cast(actor, campaign_id, q=q, page=page, per_page=per_page)
    width = campaigns.CARD_WIDTH
    card = CampaignCard(*rows[0][:width])
    rank = width + len(CastNpc._fields)  # (never NULL on an NPC's row: row_number)
    return card, _cast_page(params, q, page, per_page, [r[width:] for r in rows if r[rank] is not None])


def _cast_params(actor: Actor, campaign_id: str, q: str) -> dict[str, Any]:
    params: dict[str, Any] = {"tenant_id": actor.tenant_id, "campaign_id": campaign_id}
    if q:
        params["pattern"] = like_pattern(q)
    return params


def _cast_page(params: dict[str, Any], q: str, page: int, per_page: int, rows: Any) -> Page[CastMember]:
    """The Page of a cast page's ``rows`` (each CastNpc's fields, then rank, size and the filtered
    total, as ``_cast_statements`` selects them). No rows on a page past the end (or for a filter
    that matches nothing): then the count, and the last page."""
    fields = len(CastNpc._fields)
    if rows:
        total = int(rows[0][fields + 2])
    elif page > 1:
        page_stmt, count_stmt = _cast_statements(bool(q))
        total = dbconn.query(count_stmt, params).scalar_one()
        page = max(1, math.ceil(total / per_page))
        rows = dbconn.query(page_stmt, {**params, **page_window(page, per_page)}) if total else []
    else:
        total = 0
    pages = max(1, math.ceil(total / per_page))
    size = int(rows[0][fields + 1]) if rows else (total if not q else 0)
    return Page([CastMember(CastNpc._make(r[:fields]), int(r[fields])) for r in rows], page, pages, total, q, size)


@cache
def _card_and_cast_stmt(searching: bool) -> Select[Any]:
    """``campaigns.card``'s statement with ``_cast_statements``' page outer-joined on nothing,
    in the page's order (built once per process, as both are)."""
    cast_page = _cast_statements(searching)[0].subquery("cast_page")
    return campaigns.card_statement().add_columns(*cast_page.c).outerjoin(cast_page, true()).order_by(cast_page.c.rank)


def order_ids(actor: Actor, campaign_id: str) -> list[str]:
    """Every NPC id of the campaign, in display order."""
    return list(db.session.execute(_ordered(actor, campaign_id, NpcDefinition.id).order_by(*_order_by())).scalars())


# --------------------------------------------------------------------------- forms and validation


def blank(default_provider: str = "espeak") -> dict[str, Any]:
    return {
        "name": "",
        "personality": "",
        "engine": "cascaded",
        "budget_tier": "fast",
        "voice": {"provider": default_provider, "voice_id": "", "pitch_shift": 0, "speed_factor": 1.0},
        "knowledge_scope": [],
        "secret_knowledge": [],
        "behavior_rules": [],
        "tools": [],
        "gm_helper": False,
        "address_only": False,
        "attributes": [],
        "updated_at": "",
    }


@dataclass(frozen=True)
class AttrRow:
    """One attribute row of the editor: what the inputs show, the JSON type of the stored value
    (``kind``: "" for a string, else number, boolean, null, array or object) and the key the row
    was loaded with (``orig``), so that an untouched row keeps its value exactly."""

    key: str
    value: str
    kind: str = ""
    orig: str = ""


ATTR_KINDS = {
    "": lazy_gettext("text"),
    "number": lazy_gettext("number"),
    "boolean": lazy_gettext("true or false"),
    "null": lazy_gettext("empty (null)"),
    "array": lazy_gettext("JSON list"),
    "object": lazy_gettext("JSON object"),
}


def json_kind(value: object) -> str:
    if isinstance(value, str):
        return ""
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if value is None:
        return "null"
    return "array" if isinstance(value, list) else "object"


def shown(value: object) -> str:
    """How the editor shows a stored JSON value: strings as they are, anything else as JSON."""
    return value if isinstance(value, str) else _json(value)


def _stored_items(value: object) -> list[str]:
    """A list column as the editor's textarea shows it (other tooling may store non-strings)."""
    if value is None:
        return []
    if not isinstance(value, list):
        value = [value]
    return [shown(x) for x in value]


def to_form(npc: NpcDefinition) -> dict[str, Any]:
    voice = npc.voice if isinstance(npc.voice, dict) else {}
    attributes = npc.attributes if isinstance(npc.attributes, dict) else {}
    return {
        "name": shown(npc.name or ""),
        "personality": shown(npc.personality or ""),
        "engine": shown(npc.engine or ""),
        "budget_tier": shown(npc.budget_tier or ""),
        "voice": {
            "provider": _voice_shown(voice, "provider", ""),
            "voice_id": _voice_shown(voice, "voice_id", ""),
            "pitch_shift": _voice_shown(voice, "pitch_shift", 0),
            "speed_factor": _voice_shown(voice, "speed_factor", 0),
        },
        **{f: _stored_items(getattr(npc, f)) for f in LIST_FIELDS},
        "gm_helper": bool(npc.gm_helper),
        "address_only": bool(npc.address_only),
        "attributes": [AttrRow(str(k), shown(v), json_kind(v), str(k)) for k, v in attributes.items()],
        "updated_at": token(npc),
    }


def _voice_shown(voice: dict[str, Any], key: str, default: object) -> str:
    value = voice.get(key, default)
    return "" if value is None else shown(value)


def _json(value: object) -> str:
    return json.dumps(value, ensure_ascii=False)


def token(npc: NpcDefinition) -> str:
    """The concurrency token a form carries: the row's updated_at and a digest of its columns, so
    a change by tooling that doesn't touch updated_at is noticed too."""
    if not npc.updated_at:
        return ""
    content = json.dumps([getattr(npc, c) for c in ("campaign_id", *COLUMNS)], sort_keys=True, default=str)
    return f"{npc.updated_at.isoformat()}~{hashlib.sha256(content.encode()).hexdigest()[:16]}"


def _items(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, str):
        value = value.splitlines()
    return [str(v).strip() for v in value if str(v).strip()]


def _number(raw: object, default: float | None) -> float | None:
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return default
    if isinstance(raw, bool):
        return None
    try:
        value = float(str(raw).strip().replace("−", "-").replace(",", "."))
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _tidy(value: float) -> int | float:
    value = round(value, 2)
    return int(value) if value == int(value) else value


def _pairs(value: Any) -> list[tuple[str, str]]:
    if isinstance(value, dict):
        return [(str(k), shown(v)) for k, v in value.items()]
    return [(r.key, r.value) if isinstance(r, AttrRow) else (str(r[0] or ""), str(r[1] or "")) for r in (value or [])]


def validate(data: dict[str, Any]) -> dict[str, Any]:
    """Clean NPC columns from form-ish input, enforcing the gateway's rules; ValidationError maps
    each bad field to a message shown next to it."""
    errors: dict[str, str] = {}
    name = str(data.get("name") or "").strip()
    if not name:
        errors["name"] = _("Give the NPC a name: players address NPCs by it.")
    elif len(name) > LIMITS["name"]:
        errors["name"] = _("Names can be at most %(max)s characters.", max=LIMITS["name"])
    personality = str(data.get("personality") or "").replace("\r\n", "\n").strip()
    if len(personality) > LIMITS["personality"]:
        errors["personality"] = _(
            "Keep the personality under %(max)s characters (it has %(n)s); it is sent with every prompt.",
            max=format_number(LIMITS["personality"]),
            n=format_number(len(personality)),
        )
    engine = str(data.get("engine") or "cascaded")
    if engine not in ENGINES:
        errors["engine"] = _("Pick one of: %(choices)s.", choices="cascaded, sentence_cascade, s2s")
    budget = str(data.get("budget_tier") or "fast")
    if budget not in BUDGET_TIERS:
        errors["budget_tier"] = _("Pick one of: %(choices)s.", choices="fast, standard, deep")

    voice = validate_voice(data.get("voice") or {}, errors)

    lists = {}
    for list_key in LIST_FIELDS:
        items = _items(data.get(list_key))
        lists[list_key] = items
        if len(items) > LIMITS["list_count"]:
            errors[list_key] = _("Keep it to %(max)s entries.", max=LIMITS["list_count"])
            continue
        for i, item in enumerate(items, 1):
            if len(item) > LIMITS["list_item"]:
                errors[list_key] = _("Entry %(i)s is longer than %(max)s characters.", i=i, max=LIMITS["list_item"])
                break
            if list_key == "tools" and not TOOL_RE.match(item):
                errors[list_key] = _(
                    "“%(item)s” isn't a tool name: use the tool's identifier, like dice_roll "
                    "(letters, digits, _ . : -).",
                    item=item[:40],
                )
                break

    attributes: dict[str, str] = {}
    for key, value in _pairs(data.get("attributes")):
        key, value = key.strip(), value.strip()
        if not key and not value:
            continue
        if not key:
            errors["attributes"] = _("The value “%(value)s” needs a key.", value=value[:40])
        elif len(key) > LIMITS["attr_key"] or len(value) > LIMITS["attr_value"]:
            errors["attributes"] = _(
                "Keys can be at most %(key)s characters and values %(value)s.",
                key=LIMITS["attr_key"],
                value=LIMITS["attr_value"],
            )
        elif key in attributes:
            errors["attributes"] = _("The key “%(key)s” appears twice.", key=key)
        else:
            attributes[key] = value
    if len(attributes) > LIMITS["attr_count"]:
        errors["attributes"] = _("Keep it to %(max)s attributes.", max=LIMITS["attr_count"])

    if errors:
        raise ValidationError(errors)
    return {
        "name": name,
        "personality": personality,
        "engine": engine,
        "budget_tier": budget,
        "voice": voice,
        **lists,
        "gm_helper": _flag(data.get("gm_helper")),
        "address_only": _flag(data.get("address_only")),
        "attributes": attributes,
    }


def validate_voice(voice_in: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    """The voice object {provider, voice_id, pitch_shift, speed_factor}; problems go into ``errors``."""
    provider = str(voice_in.get("provider") or "").strip().lower()
    if provider and not PROVIDER_RE.match(provider):
        errors["voice_provider"] = _("Pick a voice provider from the list.")
    voice_id = str(voice_in.get("voice_id") or "").strip()
    if len(voice_id) > LIMITS["voice_id"] or not VOICE_ID_RE.match(voice_id):
        errors["voice_id"] = _("Voice ids are short codes without spaces, e.g. en-gb or 21m00Tcm4TlvDq8ikWAM.")
    pitch = _number(voice_in.get("pitch_shift"), 0.0)
    if pitch is None or not PITCH_RANGE[0] <= pitch <= PITCH_RANGE[1]:
        errors["pitch_shift"] = _("Pitch shift must be a number from −10 to 10.")
    speed = _number(voice_in.get("speed_factor"), 0.0)
    if speed is None or not (speed == 0 or SPEED_RANGE[0] <= speed <= SPEED_RANGE[1]):
        errors["speed_factor"] = _("Speed must be 0 (the engine's default) or from 0.5 to 2.0.")
    return {
        "provider": provider,
        "voice_id": voice_id,
        "pitch_shift": _tidy(pitch or 0.0),
        "speed_factor": _tidy(speed or 0.0),
    }


def _flag(value: object) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in {"1", "true", "on", "yes"}
    return bool(value)


COLUMNS = (
    "name",
    "personality",
    "engine",
    "voice",
    *LIST_FIELDS,
    "budget_tier",
    "gm_helper",
    "address_only",
    "attributes",
)


def snapshot(npc: NpcDefinition) -> dict[str, Any]:
    return {"campaign_id": npc.campaign_id, **{c: getattr(npc, c) for c in COLUMNS}}


def _check_cast_rules(
    actor: Actor, campaign_id: str, clean: dict[str, Any], *, npc_id: str | None, name: bool = True, helper: bool = True
) -> None:
    """Name unique within the campaign, at most one gm_helper (each checked only when ``name`` /
    ``helper`` say it is being set). Call with the cast lock held."""
    others = [NpcDefinition.id != npc_id] if npc_id else []
    errors = {}
    clash = (
        None
        if not name
        else db.session.execute(
            select(NpcDefinition.name)
            .where(_scope(actor, campaign_id), func.lower(NpcDefinition.name) == clean["name"].lower(), *others)
            .limit(1)
        ).scalar_one_or_none()
    )
    if clash is not None:
        errors["name"] = _(
            "This campaign already has an NPC called “%(name)s”. Names must be unique within a campaign.", name=clash
        )
    if clean["gm_helper"] and helper:
        current = db.session.execute(
            select(NpcDefinition.name)
            .where(_scope(actor, campaign_id), NpcDefinition.gm_helper.is_(True), *others)
            .limit(1)
        ).scalar_one_or_none()
        if current is not None:
            errors["gm_helper"] = _(
                "“%(name)s” is already this campaign's GM helper; a campaign can have only one. "
                "Turn it off there first.",
                name=current,
            )
    if errors:
        db.session.rollback()
        raise ValidationError(errors)


def _write_order(actor: Actor, campaign_id: str, ids: list[str]) -> None:
    db.session.execute(
        delete(NpcPosition).where(NpcPosition.tenant_id == actor.tenant_id, NpcPosition.campaign_id == campaign_id)
    )
    if ids:
        db.session.execute(
            insert(NpcPosition),
            [
                {"npc_id": npc_id, "tenant_id": actor.tenant_id, "campaign_id": campaign_id, "position": i}
                for i, npc_id in enumerate(ids)
            ],
        )


# --------------------------------------------------------------------------- changes


def create(actor: Actor, campaign_id: str, data: dict[str, Any]) -> NpcDefinition:
    campaign = campaigns.get(actor, campaign_id)  # 404 first, then the role (403)
    require(actor, Perm.MANAGE_NPCS)
    clean = validate(data)
    lock_cast(actor, campaign.id)
    plans.check_npc_limit(actor)
    _check_cast_rules(actor, campaign.id, clean, npc_id=None)
    order = order_ids(actor, campaign.id)
    npc = NpcDefinition(id=str(uuid.uuid4()), tenant_id=actor.tenant_id, campaign_id=campaign.id, **clean)
    db.session.add(npc)
    db.session.flush()
    _write_order(actor, campaign.id, [*order, npc.id])
    audit.record("npc.create", "npc", npc.id, actor=actor, after=snapshot(npc))
    db.session.commit()
    return npc


def _locked(actor: Actor, npc_id: str) -> NpcDefinition:
    return own(
        actor,
        db.session.execute(
            select(NpcDefinition)
            .where(NpcDefinition.id == npc_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none(),
    )


def _same_token(expected: str | None, npc: NpcDefinition) -> bool:
    return bool(expected) and str(expected) == token(npc)


@dataclass
class Saved:
    npc: NpcDefinition
    changed: tuple[str, ...]  # the columns written; empty when the form changed nothing


def update(actor: Actor, npc_id: str, data: dict[str, Any], *, updated_at: str | None) -> Saved:
    """Save the editor. ``updated_at`` is the token the form was loaded with; if the row changed
    since, raise Conflict rather than overwrite someone else's save.

    Only what the form changed is written: each field is compared with how the editor shows the
    stored value (the token proves that is what the user saw), and only changed columns, voice
    keys and attribute keys are written, merged in SQL so that keys and JSON values the form
    doesn't know stay exactly as they are. Unchanged fields are not validated (rows written by
    other tooling may hold values our rules would refuse). An unchanged form writes nothing."""
    npc = get(actor, npc_id)  # 404 first, then the role (403)
    require(actor, Perm.MANAGE_NPCS)
    lock_cast(actor, npc.campaign_id)
    npc = _locked(actor, npc_id)
    if not _same_token(updated_at, npc):
        db.session.rollback()
        raise Conflict(
            _(
                "Someone else changed this NPC since you opened it. Reload to see their version; "
                "your changes here were not saved."
            )
        )
    try:
        changes = _changes(npc, data)
    except ValidationError:
        db.session.rollback()
        raise
    if not changes.columns:
        db.session.rollback()  # nothing to write: release the locks, bump nothing, audit nothing
        return Saved(npc, ())
    clean = {"name": changes.values.get("name", npc.name), "gm_helper": changes.values.get("gm_helper", npc.gm_helper)}
    _check_cast_rules(
        actor,
        npc.campaign_id,
        clean,
        npc_id=npc.id,
        name="name" in changes.values,
        helper="gm_helper" in changes.values,
    )
    before = snapshot(npc)
    values = dict(changes.values)
    if changes.voice:
        values["voice"] = _merged(NpcDefinition.voice, changes.voice, ())
    if changes.attributes or changes.removed:
        values["attributes"] = _merged(NpcDefinition.attributes, changes.attributes, changes.removed)
    values["updated_at"] = func.clock_timestamp()
    db.session.execute(
        sql_update(NpcDefinition)
        .where(NpcDefinition.id == npc.id)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.refresh(npc)
    audit.record("npc.update", "npc", npc.id, actor=actor, before=before, after=snapshot(npc))
    db.session.commit()
    return Saved(npc, changes.columns)


def _merged(column: InstrumentedAttribute[Any], patch: dict[str, Any], removed: Collection[str]) -> ColumnElement[Any]:
    """SQL for ``column`` with the ``removed`` keys dropped and ``patch`` set. Every other key is
    left to PostgreSQL, never round-tripped through Python (a number keeps its exact digits)."""
    base: ColumnElement[Any] = case((func.jsonb_typeof(column) == "object", column), else_=cast(literal("{}"), JSONB))
    if removed:
        base = base.op("-", return_type=JSONB)(literal(sorted(removed), ARRAY(Text)))
    return base.op("||", return_type=JSONB)(literal(patch, JSONB))


@dataclass
class Changes:
    values: dict[str, Any] = field(default_factory=dict)  # whole columns: name, personality, lists, flags, ...
    voice: dict[str, Any] = field(default_factory=dict)  # voice keys to set
    attributes: dict[str, Any] = field(default_factory=dict)  # attribute keys to set
    removed: set[str] = field(default_factory=set)  # attribute keys to drop

    @property
    def columns(self) -> tuple[str, ...]:
        cols = list(self.values)
        if self.voice:
            cols.append("voice")
        if self.attributes or self.removed:
            cols.append("attributes")
        return tuple(cols)


def _line(value: object) -> str:
    """A single-line input as a browser sends it back (line breaks dropped), trimmed."""
    return str(value if value is not None else "").replace("\r", "").replace("\n", "").strip()


def _block(value: object) -> str:
    """A textarea as a browser sends it back (CRLF line breaks), normalised and trimmed."""
    return str(value if value is not None else "").replace("\r\n", "\n").replace("\r", "\n").strip()


def _lines(value: object) -> list[str]:
    if isinstance(value, (list, tuple)):
        value = "\n".join(str(v) for v in value)
    return [line.strip() for line in str(value or "").splitlines() if line.strip()]


def _same_number(sent: object, stored: str) -> bool:
    if _line(sent) == _line(stored):
        return True
    a, b = _number(sent, None), _number(stored, None)
    return a is not None and a == b


VOICE_ERRORS = {
    "provider": "voice_provider",
    "voice_id": "voice_id",
    "pitch_shift": "pitch_shift",
    "speed_factor": "speed_factor",
}


def _changes(npc: NpcDefinition, data: dict[str, Any]) -> Changes:
    """What the submitted form changed, with clean values; ValidationError for changed fields
    only."""
    seen = to_form(npc)
    changed: set[str] = set()
    if _line(data.get("name")) != _line(seen["name"]):
        changed.add("name")
    if _block(data.get("personality")) != _block(seen["personality"]):
        changed.add("personality")
    for col in ("engine", "budget_tier"):
        if _line(data.get(col)) != _line(seen[col]):
            changed.add(col)
    for col in LIST_FIELDS:
        if _lines(data.get(col)) != _lines(seen[col]):
            changed.add(col)
    for col in ("gm_helper", "address_only"):
        if _flag(data.get(col)) != seen[col]:
            changed.add(col)
    voice_in = data.get("voice") or {}
    voice_changed = set()
    if _line(voice_in.get("provider")).lower() != _line(seen["voice"]["provider"]).lower():
        voice_changed.add("provider")
    if _line(voice_in.get("voice_id")) != _line(seen["voice"]["voice_id"]):
        voice_changed.add("voice_id")
    for key in ("pitch_shift", "speed_factor"):
        if not _same_number(voice_in.get(key), seen["voice"][key]):
            voice_changed.add(key)

    errors: dict[str, str] = {}
    clean: dict[str, Any] = {}
    if changed or voice_changed:
        # Unchanged fields stand in with their valid blank values: they are not written.
        stand_in = {
            **blank(),
            "name": "unchanged",
            **{k: data.get(k) for k in changed},
            "voice": {k: voice_in.get(k) for k in voice_changed},
            "attributes": [],
        }
        try:
            clean = validate(stand_in)
        except ValidationError as exc:
            errors = dict(exc.errors)
    to_set, removed = _attribute_changes(npc, data.get("attributes") or [], errors)
    if errors:
        raise ValidationError(errors)
    return Changes(
        values={col: clean[col] for col in COLUMNS if col in changed},
        voice={key: clean["voice"][key] for key in VOICE_ERRORS if key in voice_changed},
        attributes=to_set,
        removed=removed,
    )


# What to enter instead when a typed attribute's new text isn't of its type (whole sentences).
_KIND_HELP = {
    "number": lazy_gettext(
        "“%(key)s” holds a number: enter one like 52 or 1.5. To store text instead, clear the row and add the "
        "attribute again."
    ),
    "boolean": lazy_gettext(
        "“%(key)s” holds true or false: enter true or false. To store text instead, clear the row and add the "
        "attribute again."
    ),
    "array": lazy_gettext(
        '“%(key)s” holds a list: enter JSON like ["a", "b"]. To store text instead, clear the row and add the '
        "attribute again."
    ),
    "object": lazy_gettext(
        '“%(key)s” holds an object: enter JSON like {"key": "value"}. To store text instead, clear the row and '
        "add the attribute again."
    ),
}


def _typed(text: str, kind: str) -> Any:
    """The JSON value a changed attribute input means, by the type the value had; ValueError if
    the text isn't one of that type. Text (and a null given text) becomes a string."""
    text = text.strip()
    if kind == "number":
        if re.fullmatch(r"[+-]?\d+", text.replace("−", "-")):
            return int(text.replace("−", "-"))
        number = _number(text, None)
        if number is None or not text:
            raise ValueError
        return number
    if kind == "boolean":
        if text.lower() not in ("true", "false"):
            raise ValueError
        return text.lower() == "true"
    if kind in ("array", "object"):
        value = json.loads(text)
        if json_kind(value) != kind:
            raise ValueError
        return value
    if kind == "null" and text in ("", "null"):
        return None
    return text


def _attribute_changes(npc: NpcDefinition, rows: Any, errors: dict[str, str]) -> tuple[dict[str, Any], set[str]]:
    """Attribute keys to set (values typed like the ones they replace) and keys to remove. A row
    whose key and text are as loaded keeps its stored value exactly, whatever its type."""
    stored = npc.attributes if isinstance(npc.attributes, dict) else {}
    rows = [r if isinstance(r, AttrRow) else AttrRow(*[str(x or "") for x in r]) for r in rows]
    claimed = {r.orig for r in rows if r.orig in stored}
    to_set: dict[str, Any] = {}
    final: set[str] = set()
    for row in rows:
        orig = row.orig if row.orig in stored else ""
        if not orig and row.key in stored and row.key not in claimed:
            orig = row.key  # a client that doesn't send the original keys: match by key
            claimed.add(orig)
        key = orig if orig and _line(row.key) == _line(orig) else row.key.strip()
        if not key and not row.value.strip():
            continue  # a cleared row: its original key is removed below
        if orig and key == orig and _line(row.value) == _line(shown(stored[orig])):
            final.add(orig)  # untouched: the stored value stays as it is
            continue
        if not key:
            errors["attributes"] = _("The value “%(value)s” needs a key.", value=row.value.strip()[:40])
            continue
        if key in final:
            errors["attributes"] = _("The key “%(key)s” appears twice.", key=key)
            continue
        if len(key) > LIMITS["attr_key"] or len(row.value.strip()) > LIMITS["attr_value"]:
            errors["attributes"] = _(
                "Keys can be at most %(key)s characters and values %(value)s.",
                key=LIMITS["attr_key"],
                value=LIMITS["attr_value"],
            )
            continue
        kind = row.kind if row.kind in _KIND_HELP or row.kind == "null" else ""
        try:
            value = _typed(row.value, kind)
        except ValueError:
            errors["attributes"] = str(_KIND_HELP[kind]) % {"key": key[:40]}
            continue
        final.add(key)
        if key not in stored or stored[key] != value or json_kind(stored[key]) != json_kind(value):
            to_set[key] = value
    removed = {k for k in stored if k not in final}
    if len(final) > max(LIMITS["attr_count"], len(stored)):
        errors["attributes"] = _("Keep it to %(max)s attributes.", max=LIMITS["attr_count"])
    return to_set, removed


def _copy_name(actor: Actor, campaign_id: str, name: str) -> str:
    taken = {
        n.lower() for n in db.session.execute(select(NpcDefinition.name).where(_scope(actor, campaign_id))).scalars()
    }
    for n in range(1, 1000):
        suffix = " (copy)" if n == 1 else f" (copy {n})"
        candidate = name[: LIMITS["name"] - len(suffix)] + suffix
        if candidate.lower() not in taken:
            return candidate
    raise ValidationError({"name": _("Too many copies of this NPC already.")})  # pragma: no cover


def duplicate(actor: Actor, npc_id: str) -> NpcDefinition:
    """A copy right after the original, named "… (copy)"; never a second GM helper."""
    source = get(actor, npc_id)  # 404 first, then the role (403)
    require(actor, Perm.MANAGE_NPCS)
    lock_cast(actor, source.campaign_id)
    plans.check_npc_limit(actor)
    source = _locked(actor, npc_id)
    values = {c: getattr(source, c) for c in COLUMNS}
    values.update(name=_copy_name(actor, source.campaign_id, source.name), gm_helper=False)
    order = order_ids(actor, source.campaign_id)
    copy = NpcDefinition(id=str(uuid.uuid4()), tenant_id=actor.tenant_id, campaign_id=source.campaign_id, **values)
    db.session.add(copy)
    db.session.flush()
    at = order.index(source.id) + 1 if source.id in order else len(order)
    _write_order(actor, source.campaign_id, [*order[:at], copy.id, *order[at:]])
    audit.record("npc.create", "npc", copy.id, actor=actor, after=snapshot(copy), details={"duplicate_of": source.id})
    db.session.commit()
    return copy


def delete_npc(actor: Actor, npc_id: str) -> NpcDefinition:
    npc = get(actor, npc_id)  # 404 first, then the role (403)
    require(actor, Perm.MANAGE_NPCS)
    lock_cast(actor, npc.campaign_id)
    npc = _locked(actor, npc_id)
    audit.record("npc.delete", "npc", npc.id, actor=actor, before=snapshot(npc), after=None)
    db.session.execute(
        delete(NpcPosition).where(NpcPosition.npc_id == npc.id, NpcPosition.tenant_id == actor.tenant_id)
    )
    db.session.delete(npc)
    db.session.commit()
    return npc


def move(actor: Actor, npc_id: str, direction: str) -> NpcDefinition:
    """Keyboard/no-JS ordering: swap with the neighbour above ("up") or below ("down")."""
    npc = get(actor, npc_id)  # another tenant's NPC is a 404 whatever else is wrong (the role too)
    require(actor, Perm.MANAGE_NPCS)
    if direction not in ("up", "down", "top", "bottom"):
        message = _("Move up or down.")
        raise ValidationError({"direction": message}, message)
    lock_cast(actor, npc.campaign_id)
    order = order_ids(actor, npc.campaign_id)
    i = order.index(npc.id)
    target = {"up": i - 1, "down": i + 1, "top": 0, "bottom": len(order) - 1}[direction]
    if 0 <= target < len(order) and target != i:
        new = order[:i] + order[i + 1 :]
        new.insert(target, npc.id)
        _write_order(actor, npc.campaign_id, new)
        audit.record(
            "npc.reorder",
            "campaign",
            npc.campaign_id,
            actor=actor,
            before={"order": order},
            after={"order": new},
            details={"moved": npc.id, "direction": direction},
        )
    db.session.commit()
    return npc


def reorder(actor: Actor, campaign_id: str, ids: list[str]) -> list[str]:
    """Drag and drop: ``ids`` is the new order of the NPCs that were visible (a page or a filtered
    list). They keep the places they held among the whole cast, in their new order."""
    campaign = campaigns.get(actor, campaign_id)  # 404 first, then the role (403)
    require(actor, Perm.MANAGE_NPCS)
    lock_cast(actor, campaign.id)
    order = order_ids(actor, campaign.id)
    ids = [str(i) for i in ids]
    if len(set(ids)) != len(ids) or not set(ids) <= set(order):
        db.session.rollback()
        message = _("The cast changed while you were dragging. Reload and try again.")
        raise ValidationError({"order": message}, message)
    slots = sorted(order.index(i) for i in ids)
    new = list(order)
    for slot, npc_id in zip(slots, ids, strict=True):
        new[slot] = npc_id
    if new != order:
        _write_order(actor, campaign.id, new)
        audit.record("npc.reorder", "campaign", campaign.id, actor=actor, before={"order": order}, after={"order": new})
    db.session.commit()
    return new
