"""The knowledge graph the workers build per campaign: ``tenant_<id>.entities`` and
``tenant_<id>.relationships`` (read-only; the schema may not exist yet).

A campaign's graph is visible when the campaign is one of the tenant's web campaigns or has
entities in the tenant's own memory schema (campaign ids are free-form on the gateway side,
"default" for sessions without one). Everything else is a NotFound.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Row

from glyphoxa_htmx.core import dbconn
from glyphoxa_htmx.core.authz import Actor, Perm, require
from glyphoxa_htmx.core.dbconn import sql_text as text
from glyphoxa_htmx.core.errors import NotFound, ValidationError
from glyphoxa_htmx.core.i18n import _, lazy_gettext
from glyphoxa_htmx.core.parse import like_pattern
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.services import campaigns
from glyphoxa_htmx.services.transcripts import memory_tables, qualified, schema_name

PAGE_SIZE = 50
GRAPH_NODES = 300
GRAPH_EDGES = 1000
MAX_Q = 100
DEFAULT_CAMPAIGN_NAME = lazy_gettext("Default campaign")


def _object(value: Any) -> dict[str, Any]:
    """A JSONB column the gateway's tools write as an object, as a dict; anything else they may
    have written there (a list, a number, a string, JSON null) has no keys."""
    return value if isinstance(value, dict) else {}


@dataclass(frozen=True)
class Entity:
    id: str
    type: str
    name: str
    attributes: Any  # JSON as written: an object as a rule, but a list, number or string is shown as it is
    updated_at: datetime | None = None
    degree: int = 0


@dataclass(frozen=True)
class EntityRow:
    """One row of the entity list: what it shows. Of the attributes, PostgreSQL reads out only the
    description (``attributes -> 'description'``: none when they aren't an object), so a large
    attribute object isn't decoded for one key."""

    id: str
    type: str
    name: str
    description: Any = None
    degree: int = 0


@dataclass(frozen=True)
class Relationship:
    source_id: str
    source_name: str
    source_type: str
    target_id: str
    target_name: str
    target_type: str
    rel_type: str
    attributes: Any
    provenance: Any  # JSON as written; the properties below read it when it is an object
    created_at: datetime | None = None

    @property
    def session_id(self) -> str:
        return str(_object(self.provenance).get("session_id") or "")

    @property
    def source(self) -> Any:
        return _object(self.provenance).get("source")

    @property
    def confidence(self) -> float | None:
        try:
            return float(_object(self.provenance)["confidence"])
        except (KeyError, TypeError, ValueError):
            return None

    @property
    def dm_confirmed(self) -> bool:
        return bool(_object(self.provenance).get("dm_confirmed"))


@dataclass
class CampaignRef:
    id: str
    name: str
    entities: int = 0
    known: bool = True  # a web campaign (False: only seen in the memory schema)


def _display_name(campaign_id: str) -> str:
    """How a campaign seen only in the memory schema is named: by its id ("default" in words)."""
    return str(DEFAULT_CAMPAIGN_NAME) if campaign_id == "default" else campaign_id


def _tables(actor: Actor) -> tuple[str, str] | None:
    present = memory_tables(actor.tenant_id, "entities", "relationships")
    if present != {"entities", "relationships"}:
        return None
    schema = schema_name(actor.tenant_id)
    return qualified(schema, "entities"), qualified(schema, "relationships")


def campaign_index(actor: Actor) -> tuple[list[CampaignRef], bool]:
    """The tenant's campaigns with their entity counts, and whether the memory schema exists."""
    require(actor, Perm.VIEW_TRANSCRIPTS)
    web = campaigns.choices(actor, include_archived=True)
    tables = _tables(actor)
    counts: dict[str, int] = {}
    if tables:
        ent = tables[0]
        counts = {
            r.campaign_id: int(r.n)
            for r in dbconn.query(
                text(
                    f"SELECT campaign_id, count(*) AS n FROM {ent} GROUP BY campaign_id ORDER BY campaign_id LIMIT 500"
                ),
                tenant=actor.tenant_id,
            )
        }
    refs = [CampaignRef(cid, name, counts.pop(cid, 0)) for cid, name in web]
    refs += [CampaignRef(cid, _display_name(cid), n, known=False) for cid, n in sorted(counts.items())]
    return refs, tables is not None


def campaign(actor: Actor, campaign_id: str) -> CampaignRef:
    """The campaign if the tenant may see its graph (web campaign or present in its memory)."""
    require(actor, Perm.VIEW_TRANSCRIPTS)
    if not campaign_id or len(campaign_id) > 200:
        raise NotFound()
    # The tenant's campaign directory kept per process answers without a statement; a campaign it
    # doesn't hold (or none kept) is asked of the database: one created a moment ago elsewhere is
    # never taken for missing.
    kept = campaigns.cached_directory(actor.tenant_id)
    name = kept.names.get(campaign_id) if kept is not None else None
    if name is None:
        name = campaigns.read_directory(actor).names.get(campaign_id)
    if name is not None:
        return CampaignRef(campaign_id, name)
    tables = _tables(actor)
    if tables:
        present = dbconn.query(
            text(f"SELECT EXISTS (SELECT 1 FROM {tables[0]} WHERE campaign_id = :c)"),
            {"c": campaign_id},
            tenant=actor.tenant_id,
        ).scalar()
        if present:
            return CampaignRef(campaign_id, _display_name(campaign_id), known=False)
    raise NotFound()


@dataclass
class EntityPage:
    entities: list[EntityRow] = field(default_factory=list)
    types: list[tuple[str, int]] = field(default_factory=list)
    next_after: str | None = None
    ready: bool = True
    total: int = 0


def _entity(row: Row[Any]) -> Entity:
    m = row._mapping
    attributes = m["attributes"]
    return Entity(
        id=m["id"],
        type=m["type"],
        name=m["name"],
        attributes={} if attributes is None else attributes,  # (JSON null: none recorded)
        updated_at=m.get("updated_at"),
        degree=int(m.get("degree") or 0),
    )


# The type filter's choices are ordered as PostgreSQL orders ``ORDER BY type``: by the database's
# collation. Counted from a page that holds the whole campaign (below) they must come out in the
# same order, and Python's sort gives it only where the collation orders by code point (C, POSIX,
# C.UTF-8, ucs_basic). Asked once per process, by behaviour: the probe below sorted by the
# database's default collation must come back as Python sorts it (a linguistic collation puts
# "a" before "B" and "Ä" before "z"), and no entities table may give its ``type`` a collation
# of its own. Otherwise the choices always come from their statement.
_PROBE = ["a", "B", "_", "1", "Ä", "z", "ä", "aa", "å", "a b", "ab", "ch", "h"]
_CODEPOINT_ORDER = text(
    "SELECT (SELECT array_agg(v ORDER BY v) FROM unnest(CAST(:probe AS text[])) AS v) AS probe, "
    "NOT EXISTS (SELECT 1 FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
    "WHERE c.relname = 'entities' AND a.attname = 'type' AND a.attcollation NOT IN (0, 100)) AS plain"
)
_sorts_like_python: bool | None = None


def types_sort_like_python() -> bool:
    """Whether the database orders entity types by code point, as Python's ``sorted`` does."""
    global _sorts_like_python
    if _sorts_like_python is None:
        row = dbconn.query(_CODEPOINT_ORDER, {"probe": _PROBE}).one()
        _sorts_like_python = bool(row.plain) and list(row.probe) == sorted(_PROBE)
    return _sorts_like_python


def entities(
    actor: Actor,
    campaign_id: str,
    *,
    type_: str = "",
    q: str = "",
    after: str | None = None,
    limit: int = PAGE_SIZE,
    facets: bool = True,
) -> EntityPage:
    """Entities of a campaign by name (keyset on name, id), with type filter and name search.
    Two queries: the page (with each entity's relationship count) and, with ``facets``, the
    campaign's types and their counts (the type filter's choices, outside the entity list's htmx
    block, which skips them). Merging the two into one statement (a UNION ALL in a stated order)
    was measured: one round trip fewer, but PostgreSQL's CPU went up by as much. A first page
    without a filter that holds every entity of the campaign counts its own rows' types instead,
    where the database orders types as Python does (``types_sort_like_python``): one query."""
    require(actor, Perm.VIEW_TRANSCRIPTS)
    q = (q or "").strip()
    if len(q) > MAX_Q:
        raise ValidationError({"q": _("Keep the search under %(max)s characters.", max=MAX_Q)})
    tables = _tables(actor)
    if tables is None:
        return EntityPage(ready=False)
    ent, rel = tables
    where = ["e.campaign_id = :c"]
    params: dict[str, Any] = {"c": campaign_id, "n": limit + 1}
    if type_:
        where.append("e.type = :type")
        params["type"] = type_
    if q:
        where.append("e.name ILIKE :q ESCAPE '\\'")
        params["q"] = like_pattern(q)
    if after:
        name, _sep, eid = after.partition("\x1f")
        where.append("(e.name, e.id) > (:after_name, :after_id)")
        params.update(after_name=name, after_id=eid)
    rows = dbconn.query(
        text(
            f"SELECT e.id, e.type, e.name, e.attributes -> 'description' AS description, "
            f"(SELECT count(*) FROM {rel} r WHERE r.campaign_id = e.campaign_id "
            f"AND (r.source_id = e.id OR r.target_id = e.id)) AS degree "
            f"FROM {ent} e WHERE {' AND '.join(where)} ORDER BY e.name, e.id LIMIT :n"
        ),
        params,
        tenant=actor.tenant_id,
    ).all()
    page = EntityPage(entities=[EntityRow(r.id, r.type, r.name, r.description, int(r.degree)) for r in rows[:limit]])
    if len(rows) > limit:
        last = page.entities[-1]
        page.next_after = f"{last.name}\x1f{last.id}"
    complete = not (type_ or q or after) and len(rows) <= limit  # every entity of the campaign
    if facets and complete and types_sort_like_python():
        page.types = sorted(Counter(e.type for e in page.entities).items())
    elif facets:
        page.types = [
            (r.type, int(r.n))
            for r in dbconn.query(
                text(
                    f"SELECT type, count(*) AS n FROM {ent} WHERE campaign_id = :c GROUP BY type ORDER BY type LIMIT 100"
                ),
                {"c": campaign_id},
                tenant=actor.tenant_id,
            )
        ]
    page.total = sum(n for _type, n in page.types)
    return page


_REL_COLS = (
    "r.source_id, s.name AS source_name, s.type AS source_type, r.target_id, t.name AS target_name, "
    "t.type AS target_type, r.rel_type, r.attributes, r.provenance, r.created_at"
)


def _relationship(row: Row[Any]) -> Relationship:
    m = row._mapping
    return Relationship(
        **{
            k: m[k]
            for k in (
                "source_id",
                "source_name",
                "source_type",
                "target_id",
                "target_name",
                "target_type",
                "rel_type",
                "created_at",
            )
        },
        attributes=m["attributes"],
        provenance=m["provenance"],
    )


@dataclass
class EntityDetail:
    entity: Entity
    outgoing: list[Relationship]
    incoming: list[Relationship]


def entity(actor: Actor, campaign_id: str, entity_id: str) -> EntityDetail:
    """One entity with its attributes and relationships in both directions (three queries)."""
    require(actor, Perm.VIEW_TRANSCRIPTS)
    tables = _tables(actor)
    if tables is None:
        raise NotFound()
    ent, rel = tables
    row = dbconn.query(
        text(f"SELECT id, type, name, attributes, updated_at FROM {ent} WHERE campaign_id = :c AND id = :id"),
        {"c": campaign_id, "id": entity_id},
        tenant=actor.tenant_id,
    ).one_or_none()
    if row is None:
        raise NotFound()
    joins = (
        f"FROM {rel} r JOIN {ent} s ON s.campaign_id = r.campaign_id AND s.id = r.source_id "
        f"JOIN {ent} t ON t.campaign_id = r.campaign_id AND t.id = r.target_id"
    )
    params = {"c": campaign_id, "id": entity_id}
    outgoing = [
        _relationship(r)
        for r in dbconn.query(
            text(
                f"SELECT {_REL_COLS} {joins} WHERE r.campaign_id = :c AND r.source_id = :id "
                "ORDER BY r.rel_type, t.name LIMIT 500"
            ),
            params,
            tenant=actor.tenant_id,
        )
    ]
    incoming = [
        _relationship(r)
        for r in dbconn.query(
            text(
                f"SELECT {_REL_COLS} {joins} WHERE r.campaign_id = :c AND r.target_id = :id "
                "ORDER BY r.rel_type, s.name LIMIT 500"
            ),
            params,
            tenant=actor.tenant_id,
        )
    ]
    return EntityDetail(_entity(row), outgoing, incoming)


@dataclass
class Graph:
    nodes: list[Entity] = field(default_factory=list)
    edges: list[Relationship] = field(default_factory=list)
    truncated: bool = False
    ready: bool = True


def graph(actor: Actor, campaign_id: str, *, max_nodes: int = GRAPH_NODES, max_edges: int = GRAPH_EDGES) -> Graph:
    """The campaign's graph for the graph view: the best-connected entities and the
    relationships among them (two queries)."""
    require(actor, Perm.VIEW_TRANSCRIPTS)
    tables = _tables(actor)
    if tables is None:
        return Graph(ready=False)
    ent, rel = tables
    rows = db.session.execute(
        text(
            f"SELECT e.id, e.type, e.name, e.attributes, e.updated_at, count(r.rel_type) AS degree FROM {ent} e "
            f"LEFT JOIN {rel} r ON r.campaign_id = e.campaign_id AND (r.source_id = e.id OR r.target_id = e.id) "
            f"WHERE e.campaign_id = :c GROUP BY e.campaign_id, e.id ORDER BY degree DESC, e.name LIMIT :n"
        ),
        {"c": campaign_id, "n": max_nodes + 1},
    ).all()
    out = Graph(nodes=[_entity(r) for r in rows[:max_nodes]], truncated=len(rows) > max_nodes)
    ids = [n.id for n in out.nodes]
    if ids:
        edges = db.session.execute(
            text(
                f"SELECT {_REL_COLS} FROM {rel} r JOIN {ent} s ON s.campaign_id = r.campaign_id AND s.id = r.source_id "
                f"JOIN {ent} t ON t.campaign_id = r.campaign_id AND t.id = r.target_id "
                "WHERE r.campaign_id = :c AND r.source_id = ANY(:ids) AND r.target_id = ANY(:ids) "
                "ORDER BY r.source_id, r.target_id, r.rel_type LIMIT :n"
            ),
            {"c": campaign_id, "ids": ids, "n": max_edges + 1},
        ).all()
        out.edges = [_relationship(r) for r in edges[:max_edges]]
        out.truncated = out.truncated or len(edges) > max_edges
    return out
