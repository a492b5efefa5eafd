"""Transcripts: the worker-owned ``tenant_<id>.session_entries`` (read-only), full-text search
over them, and the session recaps in ``tenant_<id>.recaps``.

The memory schema is created lazily by the worker on a tenant's first session, so every reader
first asks whether its tables exist (``to_regclass``, one query) and returns an empty result
when they don't. The schema name is built from the actor's tenant id only after validating it
against the gateway's rule, and always interpolated as a quoted identifier.

Every function takes the acting user, checks the permission and scopes by tenant: the schema is
the tenant's own, and session ids are checked against ``public.sessions.tenant_id``.
"""

from __future__ import annotations

import io
import math
import re
import struct
import time
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any, NamedTuple

from markupsafe import Markup
from psycopg import sql
from sqlalchemy import Row, TextClause, text

from glyphoxa_htmx.adapters.gateway.tenant_id import tenant_id_problem
from glyphoxa_htmx.core import dbconn, fulltext
from glyphoxa_htmx.core.authz import Actor, Perm, own, require
from glyphoxa_htmx.core.dbconn import sql_text
from glyphoxa_htmx.core.errors import NotFound, ValidationError
from glyphoxa_htmx.core.i18n import _
from glyphoxa_htmx.core.memo import Memo
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import Campaign, GatewaySession
from glyphoxa_htmx.models.gateway import GatewayBase
from glyphoxa_htmx.services import campaigns

PAGE_LINES = 100
SNAPSHOT_LINES = 50
SEARCH_RESULTS = 25
SPEAKER_COLOURS = 8
CONTEXT_LINES = 5  # lines shown before a linked line ("around")
MAX_QUERY = 200


# --------------------------------------------------------------------------- schema helpers


def schema_name(tenant_id: str) -> str:
    """``tenant_<id>``; NotFound for an id that fails the gateway's rule (never interpolated)."""
    if tenant_id_problem(tenant_id or ""):
        raise NotFound()
    return f"tenant_{tenant_id}"


@lru_cache(maxsize=4096)
def qualified(schema: str, table: str) -> str:
    """A quoted, schema-qualified table name for SQL text."""
    return sql.Identifier(schema, table).as_string()


# A memory table, once there, stays: the gateway's worker creates a tenant's tables when its memory
# is first set up, and only removing the tenant drops them. So a table seen present is taken as
# present for MEMORY_TABLES_SECONDS in this process, sparing the transcript, search, knowledge and
# session pages a statement and a round trip (issue 18); an absent one is asked again every time
# (it appears when the worker starts), except those in ABSENT_SECONDS, taken as absent that long:
# ``recaps``, which gateway versions without recaps never create, was asked on every session page
# (a first recap shows up to that much later; nothing polls for it). A table dropped within that
# time makes the page's read fail
# with UndefinedTable: web/errors.py then forgets these answers and asks the user to try again
# (the retry checks afresh and shows the page without it), as when the database drops a connection.
MEMORY_TABLES_SECONDS = 60.0
ABSENT_SECONDS = {"recaps": 10.0}
MAX_PRESENT = 50_000
_present: Memo[tuple[str, str], float] = Memo(MAX_PRESENT)
_absent: Memo[tuple[str, str], float] = Memo(MAX_PRESENT)


def memory_tables(tenant_id: str, *tables: str) -> set[str]:
    """Which of the tenant's memory tables exist (one query, none while all were seen lately)."""
    schema = schema_name(tenant_id)
    now = time.monotonic()
    present = {t for t in tables if now - _present.get((schema, t), -MEMORY_TABLES_SECONDS) < MEMORY_TABLES_SECONDS}
    if all(t in present or now - _absent.get((schema, t), -math.inf) < ABSENT_SECONDS.get(t, 0.0) for t in tables):
        return present
    names = [qualified(schema, t) for t in tables]
    cols = ", ".join(f"to_regclass(:t{i}) IS NOT NULL" for i in range(len(names)))
    row = dbconn.query(sql_text(f"SELECT {cols}"), {f"t{i}": n for i, n in enumerate(names)}).one()
    found = {t for t, there in zip(tables, row, strict=True) if there}
    for t in tables:
        if t in found:
            _present.keep((schema, t), now)
            _absent.pop((schema, t), None)
        elif t in ABSENT_SECONDS:
            _absent.keep((schema, t), now)
    return found


def forget_memory_tables() -> None:
    """Ask the database again which memory tables exist (after a read found one gone; tests)."""
    _present.clear()
    _absent.clear()


def memory_campaign(campaign_id: str) -> str:
    """The worker scopes memory rows by campaign, with "default" for none."""
    return campaign_id or "default"


# --------------------------------------------------------------------------- settled sessions

#: How long after a session ended its transcript counts as final: the worker may still flush its
#: last lines just after the gateway marks the session ended.
SETTLED_AFTER = timedelta(minutes=2)
MAX_SETTLED = 20_000
# (tenant, session, ended_at, what...) -> figures of an ended session's transcript (issue 18): they
# never change, so each process computes them once. Never holds anything of a live session.
_settled: Memo[tuple[str, ...], Any] = Memo(MAX_SETTLED)
#: How long a process keeps what it read of an ended session's row (its campaign and start for
#: search, ``_ended_sessions``; the whole row for the pages that show it, ``sessions._kept_rows``):
#: the gateway never changes an ended row (contract §1.2); this bounds an edit made outside that
#: contract (an operator's SQL).
KEPT_ROW_SECONDS = 60.0
MAX_ENDED_SESSIONS = 50_000  # ~0.3 KB each
# (tenant, session id) -> (when read, campaign id, started_at) of an ended session of that tenant
# in public.sessions, as search shows it over the session's hits: the gateway sets both when it
# inserts the row, so each process reads them once a KEPT_ROW_SECONDS. Never holds a session that
# isn't ended, nor one read in a transaction.
_ended_sessions: Memo[tuple[str, str], tuple[float, str, datetime]] = Memo(MAX_ENDED_SESSIONS)


def settled(session: GatewaySession) -> bool:
    """Whether the session ended at least SETTLED_AFTER ago: its transcript (and its row, which the
    gateway never changes once ended) can no longer change."""
    ended = session.ended_at
    return session.state == "ended" and ended is not None and datetime.now(UTC) - ended >= SETTLED_AFTER


def _settled_key(actor: Actor, session: GatewaySession, *what: str) -> tuple[str, ...] | None:
    """The cache key for figures of a session whose transcript can no longer change, else None."""
    ended = session.ended_at
    if ended is None or not settled(session):
        return None
    return (actor.tenant_id, session.id, ended.isoformat(), *what)


def _remember(key: tuple[str, ...] | None, value: Any) -> None:
    if key is not None:
        _settled.keep(key, value)


def forget_settled() -> None:
    """Empty this process's caches of ended sessions' transcript figures and of their campaign and
    start (tests reuse ids)."""
    _settled.clear()
    _ended_sessions.clear()


# --------------------------------------------------------------------------- lines


class Line(NamedTuple):
    """One transcript line (immutable; a named tuple: a transcript page makes 100 of them, and a
    frozen dataclass took 1.1 µs each to build against 0.3)."""

    id: int
    session_id: str
    speaker_id: str
    speaker_name: str
    npc_id: str
    text: str
    timestamp: datetime
    raw_text: str = ""
    campaign_id: str = ""

    @property
    def is_npc(self) -> bool:
        return bool(self.npc_id)

    @property
    def colour(self) -> int:
        return speaker_colour(self.speaker_id or self.speaker_name)

    @property
    def speaker(self) -> str:
        return self.speaker_name or self.speaker_id or "Unknown"

    @property
    def at_us(self) -> int:
        """The timestamp in whole microseconds since the epoch (exact): with the id, the key
        the live view's script places a line by."""
        return (self.timestamp - _EPOCH) // timedelta(microseconds=1)

    @property
    def order_key(self) -> tuple[Any, ...]:
        """Transcript order: by time, ties (and equal clocks) by id."""
        return (self.timestamp, self.id)


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def speaker_colour(key: str) -> int:
    """A stable colour slot (0..N-1) per speaker: the same person keeps the same colour."""
    return zlib.crc32((key or "").encode()) % SPEAKER_COLOURS


_LINE_COLS = "id, session_id, speaker_id, speaker_name, npc_id, text, timestamp"


def _line(row: Row[Any], raw: bool = False) -> Line:
    # By attribute, positionally: a transcript page makes 100 of these (``_mapping`` built a dict each).
    return Line(
        int(row.id),
        row.session_id,
        row.speaker_id or "",
        row.speaker_name or "",
        row.npc_id or "",
        row.text or "",
        row.timestamp,
        (row.raw_text or "") if raw else "",
        getattr(row, "campaign_id", "") or "",
    )


@dataclass(frozen=True)
class Snapshot:
    lines: list[Line]  # the last lines in transcript order (timestamp, id)
    cursor: int  # the highest line id of the session: the live stream sends what arrives after it


def snapshot(actor: Actor, session: GatewaySession, limit: int = SNAPSHOT_LINES) -> Snapshot:
    """The live view's first paint: the last ``limit`` lines by time, oldest first, and the
    stream's resume cursor, in one statement (so the two agree).

    The cursor is an arrival mark, not a place in time: the worker's ids grow as lines are
    written, so a line that arrives late with an earlier timestamp still gets a higher id and
    is streamed exactly once; the page places it by (timestamp, id)."""
    require(actor, Perm.VIEW_TRANSCRIPTS)
    own(actor, session)
    if "session_entries" not in memory_tables(actor.tenant_id, "session_entries"):
        return Snapshot([], 0)
    table = qualified(schema_name(actor.tenant_id), "session_entries")
    rows = dbconn.query(
        sql_text(
            f"SELECT {_LINE_COLS}, (SELECT max(id) FROM {table} WHERE session_id = :sid) AS top FROM {table} "
            "WHERE session_id = :sid ORDER BY timestamp DESC, id DESC LIMIT :n"
        ),
        {"sid": session.id, "n": limit},
        tenant=actor.tenant_id,
    ).all()
    return Snapshot([_line(r) for r in reversed(rows)], int(rows[0].top) if rows else 0)


@dataclass
class TranscriptFilters:
    speaker: str = ""
    kind: str = "all"  # all | npc | players
    at: int | None = None  # seconds after the session started
    raw: bool = False

    @classmethod
    def parse(cls, args: Mapping[str, str]) -> TranscriptFilters:
        kind = args.get("kind", "all")
        at = parse_elapsed(args.get("at", ""))
        return cls(
            speaker=(args.get("speaker") or "")[:200],
            kind=kind if kind in ("all", "npc", "players") else "all",
            at=at,
            raw=args.get("raw") in ("1", "on", "true"),
        )

    def as_args(self) -> dict[str, Any]:
        out = {}
        if self.speaker:
            out["speaker"] = self.speaker
        if self.kind != "all":
            out["kind"] = self.kind
        if self.raw:
            out["raw"] = "1"
        return out


_ELAPSED = re.compile(r"^\s*(?:(\d{1,3}):)?(\d{1,3})(?::(\d{1,2}))?\s*$")


def parse_elapsed(value: str) -> int | None:
    """'1:15' -> 4500 s (hours:minutes), '45' -> 2700 s (minutes), '1:15:30' -> h:m:s."""
    match = _ELAPSED.match(value or "")
    if not match:
        return None
    first, second, third = match.groups()
    if third is not None:
        return int(first or 0) * 3600 + int(second) * 60 + int(third)
    if first is not None:
        return int(first) * 3600 + int(second) * 60
    return int(second) * 60


def format_elapsed(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}"


@dataclass
class TranscriptPage:
    lines: list[Line] = field(default_factory=list)
    ready: bool = True  # False: the tenant's memory schema does not exist yet
    total: int = 0  # lines matching the filters
    first_id: int | None = None  # the first matching line in transcript order (timestamp, id)
    last_id: int | None = None  # the last one
    speakers: list[tuple[str, bool]] = field(default_factory=list)  # (name, is_npc)
    target: int | None = None

    @property
    def has_earlier(self) -> bool:
        return bool(self.lines) and self.first_id is not None and self.lines[0].id != self.first_id

    @property
    def has_later(self) -> bool:
        return bool(self.lines) and self.last_id is not None and self.lines[-1].id != self.last_id


def _cursor(table: str, *, session: bool = True, end: bool = False) -> tuple[str, str]:
    """SQL for the place in transcript order, (timestamp, id), of the line whose id is ``:cur``,
    as two scalar subqueries. They run once, before the scan, so the planner can start an ordered
    scan of the (session_id, timestamp) index there and stop at the page's LIMIT. A cursor that
    isn't such a line counts as the start (or with ``end``, the end)."""
    scope = "session_id = :sid AND " if session else ""
    ts, last = ("'infinity'", "9223372036854775807") if end else ("'-infinity'", "0")
    where = f"FROM {table} WHERE {scope}id = :cur"
    return (
        f"(SELECT coalesce(max(timestamp), {ts}::timestamptz) {where})",
        f"(SELECT coalesce(max(id), {last}) {where})",
    )


def page(
    actor: Actor,
    session: GatewaySession,
    filters: TranscriptFilters,
    *,
    after: int | None = None,
    before: int | None = None,
    around: int | None = None,
    limit: int = PAGE_LINES,
) -> TranscriptPage:
    """One keyset page of a session's transcript in time order, ``(timestamp, id)``: the gateway's
    meaning, and its index on (session_id, timestamp). Cursors in URLs stay line ids; each is
    resolved to its (timestamp, id) inside the page's statement. Three queries whatever the
    length: table check, the page, and the aggregates (count, first/last line, speakers), which
    for a settled ended session run once per process and filter (``_settled_key``)."""
    require(actor, Perm.VIEW_TRANSCRIPTS)
    own(actor, session)
    if "session_entries" not in memory_tables(actor.tenant_id, "session_entries"):
        return TranscriptPage(ready=False)
    table = qualified(schema_name(actor.tenant_id), "session_entries")
    where = ["e.session_id = :sid"]
    params: dict[str, Any] = {"sid": session.id, "n": limit}
    if filters.speaker:
        where.append("e.speaker_name = :speaker")
        params["speaker"] = filters.speaker
    if filters.kind == "npc":
        where.append("e.npc_id <> ''")
    elif filters.kind == "players":
        where.append("e.npc_id = ''")
    base = " AND ".join(where)
    cols = ", ".join(f"e.{c}" for c in (*_LINE_COLS.split(", "), *(["raw_text"] if filters.raw else [])))
    asc, desc = "ORDER BY e.timestamp, e.id", "ORDER BY e.timestamp DESC, e.id DESC"
    if before is not None:
        ts, cid = _cursor(table, end=True)
        stmt = (
            f"SELECT {cols} FROM {table} e WHERE {base} AND e.timestamp <= {ts} "
            f"AND (e.timestamp, e.id) < ({ts}, {cid}) {desc} LIMIT :n"
        )
        params["cur"] = before
    elif around is not None:
        ts, cid = _cursor(table)
        stmt = (
            f"WITH ctx AS (SELECT e.timestamp AS ts, e.id FROM {table} e WHERE {base} AND e.timestamp <= {ts} "
            f"AND (e.timestamp, e.id) < ({ts}, {cid}) {desc} LIMIT {CONTEXT_LINES}), "
            f"start AS (SELECT ts, id FROM (SELECT ts, id FROM ctx UNION ALL SELECT {ts}, {cid}) s "
            "ORDER BY ts, id LIMIT 1) "
            f"SELECT {cols} FROM {table} e WHERE {base} AND e.timestamp >= (SELECT ts FROM start) "
            f"AND (e.timestamp, e.id) >= ((SELECT ts FROM start), (SELECT id FROM start)) {asc} LIMIT :n"
        )
        params["cur"] = around
    elif filters.at is not None and after is None:
        stmt = f"SELECT {cols} FROM {table} e WHERE {base} AND e.timestamp >= :at {asc} LIMIT :n"
        params["at"] = session.started_at + timedelta(seconds=filters.at)
    elif after:
        ts, cid = _cursor(table)
        stmt = (
            f"SELECT {cols} FROM {table} e WHERE {base} AND e.timestamp >= {ts} "
            f"AND (e.timestamp, e.id) > ({ts}, {cid}) {asc} LIMIT :n"
        )
        params["cur"] = after
    else:
        stmt = f"SELECT {cols} FROM {table} e WHERE {base} {asc} LIMIT :n"
    rows = dbconn.query(sql_text(stmt), params, tenant=actor.tenant_id).all()
    lines = [_line(r, raw=filters.raw) for r in rows]
    if before is not None:
        lines.reverse()
    key = _settled_key(actor, session, "page", filters.speaker or "", filters.kind or "")
    agg = _settled.get(key) if key is not None else None
    if agg is None:
        agg = _aggregates(actor, table, base, {k: v for k, v in params.items() if k in ("sid", "speaker")})
        _remember(key, agg)
    total, first_id, last_id, speakers = agg
    return TranscriptPage(
        lines=lines,
        ready=True,
        total=total,
        first_id=first_id,
        last_id=last_id,
        speakers=list(speakers),
        target=around,
    )


def _aggregates(
    actor: Actor, table: str, base: str, params: dict[str, Any]
) -> tuple[int, int | None, int | None, tuple[tuple[str, bool], ...]]:
    """Count, first and last line id of the matching lines, and the session's speakers."""
    asc, desc = "ORDER BY e.timestamp, e.id", "ORDER BY e.timestamp DESC, e.id DESC"
    agg = dbconn.query(
        sql_text(
            f"SELECT (SELECT count(*) FROM {table} e WHERE {base}) AS total, "
            f"(SELECT e.id FROM {table} e WHERE {base} {asc} LIMIT 1) AS first_id, "
            f"(SELECT e.id FROM {table} e WHERE {base} {desc} LIMIT 1) AS last_id, "
            f"(SELECT coalesce(json_agg(json_build_array(name, npc) ORDER BY npc DESC, name), '[]') FROM ("
            f"SELECT speaker_name AS name, bool_or(npc_id <> '') AS npc FROM {table} "
            f"WHERE session_id = :sid GROUP BY speaker_name LIMIT 200) s) AS speakers"
        ),
        params,
        tenant=actor.tenant_id,
    ).one()
    return int(agg.total), agg.first_id, agg.last_id, tuple((name, bool(npc)) for name, npc in agg.speakers)


def stats(actor: Actor, session: GatewaySession) -> dict[str, Any] | None:
    """Line counts of a session (None when the memory schema does not exist). A settled ended
    session's are computed once per process; a live session's on every call."""
    require(actor, Perm.VIEW_TRANSCRIPTS)
    own(actor, session)
    key = _settled_key(actor, session, "stats")
    cached = _settled.get(key) if key is not None else None
    if cached is not None:
        return dict(cached)
    if "session_entries" not in memory_tables(actor.tenant_id, "session_entries"):
        return None
    table = qualified(schema_name(actor.tenant_id), "session_entries")
    row = dbconn.query(
        sql_text(
            f"SELECT count(*) AS lines, count(*) FILTER (WHERE npc_id <> '') AS npc_lines, "
            f"count(DISTINCT speaker_name) AS speakers, min(timestamp) AS first_at, max(timestamp) AS last_at "
            f"FROM {table} WHERE session_id = :sid"
        ),
        {"sid": session.id},
        tenant=actor.tenant_id,
    ).one()
    result = dict(row._mapping) | {"player_lines": row.lines - row.npc_lines}
    _remember(key, dict(result))
    return result


def iter_lines(actor: Actor, session: GatewaySession) -> Iterator[Line]:
    """Every line of a session in transcript order (timestamp, id), streamed from one
    server-side cursor."""
    require(actor, Perm.VIEW_TRANSCRIPTS)
    own(actor, session)
    if "session_entries" not in memory_tables(actor.tenant_id, "session_entries"):
        return
    table = qualified(schema_name(actor.tenant_id), "session_entries")
    result = db.session.execute(
        text(f"SELECT {_LINE_COLS} FROM {table} WHERE session_id = :sid ORDER BY timestamp, id"),
        {"sid": session.id},
        execution_options={"yield_per": 500},
    )
    for row in result:
        yield _line(row)


def as_text(session: GatewaySession, campaign_name: str, lines: Iterator[Line]) -> Iterator[str]:
    yield _("Transcript: %(campaign)s", campaign=campaign_name) + "\n"
    started = f"{session.started_at:%Y-%m-%d %H:%M} UTC"
    yield _("Session %(id)s, started %(started)s", id=session.id, started=started) + "\n\n"
    for line in lines:
        who = f"{line.speaker} (NPC)" if line.is_npc else line.speaker
        yield f"[{format_elapsed((line.timestamp - session.started_at).total_seconds())}] {who}: {line.text}\n"


_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]<>()#+\-.!|~])")


def md_escape(value: str) -> str:
    return _MD_SPECIAL.sub(r"\\\1", value.replace("\n", " "))


def as_markdown(session: GatewaySession, campaign_name: str, lines: Iterator[Line]) -> Iterator[str]:
    yield "# " + _("Transcript: %(campaign)s", campaign=md_escape(campaign_name)) + "\n\n"
    code = f"`{session.id}`"
    yield "- " + _("Session: %(id)s", id=code) + "\n"
    started = f"{session.started_at:%Y-%m-%d %H:%M} UTC"
    yield "- " + _("Started: %(when)s", when=started) + "\n"
    if session.ended_at:
        ended = f"{session.ended_at:%Y-%m-%d %H:%M} UTC"
        yield "- " + _("Ended: %(when)s", when=ended) + "\n"
    yield "\n"
    for line in lines:
        stamp = format_elapsed((line.timestamp - session.started_at).total_seconds())
        who = md_escape(line.speaker) + (" *(NPC)*" if line.is_npc else "")
        yield f"**{stamp} {who}:** {md_escape(line.text)}\n\n"


# --------------------------------------------------------------------------- search


class SearchHit(NamedTuple):
    line: Line
    highlight: Markup


@dataclass(frozen=True)
class SearchSession:
    """What the results show of a hit's session (``public.sessions``): read after the hits, one
    statement for all of them (``_HIT_SESSIONS``)."""

    id: str
    campaign_id: str
    started_at: datetime
    campaign_name: str | None = None  # the name of the tenant's web campaign of that id, if any


@dataclass
class SearchGroup:
    session_id: str
    session: SearchSession | None  # None: not one of the tenant's sessions in public.sessions
    campaign_id: str
    hits: list[SearchHit] = field(default_factory=list)


@dataclass
class SearchResult:
    query: str = ""
    groups: list[SearchGroup] = field(default_factory=list)
    ready: bool = True
    next_before: int | None = None
    count: int = 0
    choices: list[tuple[str, str]] | None = None  # (id, name) of the tenant's campaigns, when asked


# The gateway's sessions table (public.sessions), named as the ORM names it (GatewaySession).
_SESSIONS = qualified(str(GatewayBase.metadata.schema), GatewaySession.__tablename__)
# The tenant's web campaigns (web.campaigns), for the filter and the names over the hits.
_CAMPAIGNS = qualified(str(Campaign.__table__.schema), Campaign.__tablename__)
# The hits' sessions (the actor's tenant's only; ``ended``: never to change again, so kept): a
# statement of its own, the same text for every tenant, so psycopg prepares it and PostgreSQL plans
# it once per connection. Joined into the hits' statement, which names the tenant's schema and is
# planned on every search, it had the planner weigh public.sessions' indexes every time.
# With ``:choices`` true it also returns the tenant's campaigns, as
# ``campaigns.choices(include_archived=True)`` lists them (by name: ``pick`` numbers them in that
# order, NULL on the sessions' rows): the campaign directory (``campaigns.keep_directory``), which
# gives the page's filter and the names of the hits' sessions' campaigns. Run only when something
# it brings isn't kept: a session not kept, the directory, or a headline (issue 18: it was ~0.25 ms
# of a search's Python and a round trip; kept, a search is the hits' statement alone). And
# PostgreSQL's headline of each of ``:texts`` (the hits
# that aren't plain, see core/fulltext.py; ``pick`` is minus the text's place, from -1): asked in
# the hits' statement, as a ``CASE`` around ``ts_headline``, it was parsed and planned with that
# statement on every search, ~25 % of its database CPU; here the statement is planned once per
# connection, and the query is parsed once per statement (the InitPlan: a generic plan would
# otherwise parse it again for every headline). The markers and options are fulltext's constants,
# written into the text (no quote, colon or percent sign in them: checked below).
_HIT_SESSIONS = sql_text(
    "SELECT s.id, s.campaign_id, s.started_at, CAST(NULL AS text) AS name, s.state = 'ended' AS ended, "
    f"CAST(NULL AS bigint) AS pick FROM {_SESSIONS} s "
    "WHERE s.tenant_id = :tenant AND s.id = ANY(CAST(:ids AS text[])) "
    f"UNION ALL SELECT c.id, c.id, NULL, c.name, NULL, row_number() OVER (ORDER BY c.name) FROM {_CAMPAIGNS} c "
    "WHERE c.tenant_id = :tenant AND CAST(:choices AS boolean) "
    f"UNION ALL SELECT NULL, NULL, NULL, ts_headline('english', replace(replace(u.t, '{fulltext.START}', ''), "
    f"'{fulltext.STOP}', ''), (SELECT websearch_to_tsquery('english', CAST(:q AS text))), '{fulltext.HEADLINE_OPTS}'), "
    "NULL, -u.i FROM unnest(CAST(:texts AS text[])) WITH ORDINALITY AS u(t, i) "
    "ORDER BY pick NULLS FIRST"
)
if set(fulltext.START + fulltext.STOP + fulltext.HEADLINE_OPTS) & set("'\\:%"):
    raise RuntimeError("fulltext's markers and headline options must be safe inside an SQL literal")


# How the hits are found (issue 18): every match through the gateway's GIN index, then the newest
# (ORDER BY an expression of the timestamp, which no index yields in order). Left to choose,
# PostgreSQL often took the timestamp index instead, testing each line in time order until a page
# was full: it costs ``to_tsvector`` (~12 µs a line) far below what it takes, and a name from an
# earlier arc, or any word sparse among the latest lines, made that scan read most of the table
# (0.26 s on a 40k-line table, growing with it). This way the cost follows the number of matches:
# 2-5 ms on 40k lines for common, rare and earlier-arc words alike (bench/run.py, part "large").
# A quoted phrase has each line holding all its words tested for their order.
#
# Each hit's marks: PostgreSQL's ``ts_headline`` only for a line that isn't plain ASCII prose
# (``fulltext.plain``; asked with the hits' sessions, ``_HIT_SESSIONS``), the rest marked in Python
# with the query's lexemes as PostgreSQL wrote them (``tsq``, folded to a constant when the
# statement is planned): core/fulltext.py. Where the database's text search isn't ours
# (``fulltext.enabled``), every hit gets PostgreSQL's headline.


@lru_cache(maxsize=4096)
def _search_sql(schema: str, campaign: bool, cursor: bool) -> TextClause:
    """The search statement for one tenant and set of filters: at most ``:n`` hits newest first,
    each with the query's lexemes."""
    table = qualified(schema, "session_entries")
    where = ["to_tsvector('english', e.text) @@ websearch_to_tsquery('english', :q)"]
    if campaign:
        where.append("e.campaign_id = :campaign")
    if cursor:
        ts, cid = _cursor(table, session=False, end=True)
        where.append(f"e.timestamp <= {ts} AND (e.timestamp, e.id) < ({ts}, {cid})")
    return sql_text(
        "SELECT e.id, e.session_id, e.campaign_id, e.speaker_id, e.speaker_name, e.npc_id, e.text, e.timestamp, "
        "websearch_to_tsquery('english', :q)::text AS tsq "
        f"FROM {table} e WHERE {' AND '.join(where)} "
        "ORDER BY e.timestamp + interval '0 s' DESC, e.id DESC LIMIT :n"
    )


def _probe(statement: str, params: dict[str, str]) -> Any:
    return dbconn.query(sql_text(statement), params).one()


def search(
    actor: Actor,
    q: str,
    *,
    campaign: str = "",
    before: int | None = None,
    limit: int = SEARCH_RESULTS,
    choices: bool = False,
) -> SearchResult:
    """Full-text search over the tenant's transcripts, newest first by (timestamp, id), grouped
    by session; ``before`` is the id of the last hit shown (resolved to its place in time).

    Uses ``to_tsvector('english', text) @@ websearch_to_tsquery('english', q)``, which is the
    expression of the gateway's GIN index (``_search_sql``). Up to three queries: the table check
    (kept, see ``memory_tables``), the hits, and ``_HIT_SESSIONS`` for what of the rest isn't kept
    in this process: the hits' sessions (``public.sessions`` rows of the actor's tenant; an ended
    one's kept), the tenant's campaign directory (``campaigns.cached_directory``: the names over
    the hits and the filter), PostgreSQL's headlines of the hits that aren't plain. ``choices``:
    also ``result.choices``, the campaign filter's (``campaigns.choices(include_archived=True)``),
    from the directory (read even when nothing matched, if not kept)."""
    require(actor, Perm.VIEW_TRANSCRIPTS)
    q = (q or "").strip()
    if len(q) > MAX_QUERY:
        raise ValidationError({"q": _("Keep the search under %(num)s characters.", num=MAX_QUERY)})
    result = SearchResult(query=q)
    if not q or "session_entries" not in memory_tables(actor.tenant_id, "session_entries"):
        result.ready = not q
        if choices:
            result.choices = campaigns.choices(actor, include_archived=True)
        return result
    params: dict[str, Any] = {"q": q, "n": limit + 1}
    if campaign:
        params["campaign"] = memory_campaign(campaign)
    if before is not None:
        params["cur"] = before
    statement = _search_sql(schema_name(actor.tenant_id), bool(campaign), before is not None)
    rows = dbconn.query(statement, params, tenant=actor.tenant_id).all()
    more = len(rows) > limit
    rows = rows[:limit]
    result.count = len(rows)
    result.next_before = rows[-1].id if more else None
    tenant = actor.tenant_id
    # The hits' sessions: an ended one's campaign and start never change (kept per process); the
    # rest, and every session of a page whose sessions weren't all kept, are read.
    ids = list({r.session_id for r in rows if isinstance(r.session_id, str)})
    now = time.monotonic()
    facts = {
        sid: kept[1:]
        for sid in ids
        if (kept := _ended_sessions.get((tenant, sid))) is not None and now - kept[0] < KEPT_ROW_SECONDS
    }
    missing = [sid for sid in ids if sid not in facts]
    # The hits PostgreSQL marks: those that aren't plain, or all where its text search isn't ours.
    ours = fulltext.enabled(_probe)
    theirs = [i for i, r in enumerate(rows) if not (ours and fulltext.plain(r.text))]
    if choices:
        campaigns.register_found(actor)  # as campaigns.choices does (before the directory is read)
    directory = campaigns.cached_directory(tenant) if rows or choices else None
    headlines: dict[int, str] = {}
    if missing or theirs or (directory is None and (rows or choices)):
        generation = campaigns.directory_generation()  # read before the statement (see keep_directory)
        found = dbconn.query(
            _HIT_SESSIONS,
            {
                "tenant": tenant,
                "ids": missing,
                "choices": directory is None,
                "q": q,
                "texts": [rows[i].text for i in theirs],
            },
        )
        for s in found:
            if s.pick is None:
                facts[s.id] = (s.campaign_id, s.started_at)
                if s.ended and dbconn.reads_committed():
                    _ended_sessions.keep((tenant, s.id), (now, s.campaign_id, s.started_at))
            elif s.pick < 0:
                headlines[theirs[-s.pick - 1]] = s.name
        if directory is None:
            directory = campaigns.keep_directory(
                tenant, generation, [(s.id, s.name) for s in found if s.pick is not None and s.pick > 0]
            )
    names = directory.names if directory is not None else {}
    sessions = {sid: SearchSession(sid, cid, at, names.get(cid)) for sid, (cid, at) in facts.items()}
    if choices and directory is not None:
        result.choices = list(directory.choices)
    if not rows:
        return result
    # One pass over the hits (issue 18: ~25 hits a page, each a few µs here and in its HTML).
    mark = fulltext.marker(fulltext.query_lexemes(rows[0].tsq))
    current: SearchGroup | None = None
    for i, r in enumerate(rows):
        sid = r.session_id
        if current is None or current.session_id != sid:
            current = SearchGroup(sid, sessions.get(sid), r.campaign_id)
            result.groups.append(current)
        headline = headlines.get(i) if headlines else None
        current.hits.append(SearchHit(_line(r), mark(r.text) if headline is None else fulltext.from_headline(headline)))
    return result


# --------------------------------------------------------------------------- recaps


@dataclass(frozen=True)
class Recap:
    session_id: str
    text: str
    sample_rate: int
    channels: int
    duration_ns: int
    generated_at: datetime | None
    audio_bytes: int


def recap(actor: Actor, session: GatewaySession) -> Recap | None:
    """The session's recap (text and audio metadata, not the audio itself), if any."""
    require(actor, Perm.VIEW_TRANSCRIPTS)
    own(actor, session)
    if "recaps" not in memory_tables(actor.tenant_id, "recaps"):
        return None
    table = qualified(schema_name(actor.tenant_id), "recaps")
    row = dbconn.query(
        sql_text(
            f"SELECT session_id, text, sample_rate, channels, duration_ns, generated_at, "
            f"octet_length(audio_data) AS audio_bytes FROM {table} WHERE session_id = :sid"
        ),
        {"sid": session.id},
        tenant=actor.tenant_id,
    ).one_or_none()
    if row is None:
        return None
    return Recap(**row._mapping)


def recap_audio(actor: Actor, session: GatewaySession) -> bytes:
    """The recap audio as a WAV file. Raw PCM (what the columns describe) gets a WAV header;
    data that already is a RIFF/WAVE file is passed through. NotFound when there is none."""
    require(actor, Perm.VIEW_TRANSCRIPTS)
    own(actor, session)
    if "recaps" not in memory_tables(actor.tenant_id, "recaps"):
        raise NotFound()
    table = qualified(schema_name(actor.tenant_id), "recaps")
    row = db.session.execute(
        text(f"SELECT audio_data, sample_rate, channels FROM {table} WHERE session_id = :sid"), {"sid": session.id}
    ).one_or_none()
    if row is None or not row.audio_data:
        raise NotFound()
    data = bytes(row.audio_data)
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return data
    return pcm16_wav(data, int(row.sample_rate or 16000), int(row.channels or 1))


def pcm16_wav(pcm: bytes, sample_rate: int, channels: int) -> bytes:
    """Wrap 16-bit little-endian PCM in a WAV header."""
    channels = max(1, channels)
    block = channels * 2
    pcm = pcm[: len(pcm) - len(pcm) % block]
    buf = io.BytesIO()
    buf.write(b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVE")
    buf.write(b"fmt " + struct.pack("<IHHIIHH", 16, 1, channels, sample_rate, sample_rate * block, block, 16))
    buf.write(b"data" + struct.pack("<I", len(pcm)) + pcm)
    return buf.getvalue()
