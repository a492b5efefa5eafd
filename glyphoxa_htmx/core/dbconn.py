"""The fixed database cost of a request (issue 18): three of a page's round trips were the pool's
pre-ping, ``BEGIN`` and ``ROLLBACK``, on every request.

* Ping only connections that sat idle in the pool for more than ``IDLE_PING_SECONDS`` (a restarted
  server or a proxy's idle cut shows there); a connection used a moment ago is handed out as is. A
  failed ping discards the connection and the pool connects afresh (SQLAlchemy's
  ``DisconnectionError`` protocol); a connection that breaks anyway makes SQLAlchemy invalidate the
  pool, so the next request starts clean.
* Read-only pages (``READ_ONLY_ENDPOINTS``, GET/HEAD only) read on a connection in autocommit mode:
  no ``BEGIN``, and nothing to roll back when it goes back to the pool (psycopg switches the mode
  on the client, without a round trip). Each statement sees committed data as of its start, as
  under READ COMMITTED. Their ``query`` statements go through a pooled connection of the request's
  own (``_read_connection``), not the ORM session's: opening, switching and closing a Session for a
  page that only reads cost ~0.08 ms of Python a request, about 5 % of a page. The two writes such
  a page may make run through ``query`` too, as single statements in autocommit on that connection:
  the sign-in touch (one ``UPDATE`` about once a minute per sign-in) and a first-view registration
  of found campaigns (one ``INSERT``; its audit entry, when it registered something, goes through
  the session). Whatever starts a session transaction first hands that connection back, so a
  request never holds two; the session's own connection then runs in autocommit too
  (``_session_connected``), so its writes commit as they run and no ROLLBACK ends the request.
  Only list endpoints here whose services never write (beyond those); a view that starts writing
  must leave this list.

And the Python cost of a statement (``query``): a prebuilt SELECT of columns through
``Session.execute`` cost ~0.3-0.5 ms of Python (the ORM's execution setup, SQLAlchemy's result
metadata, psycopg's column descriptions) against ~0.15 ms for psycopg alone; on the dashboard that
was a quarter of the request. ``query`` runs such a statement on the session's own connection (same
transaction, same autocommit page mode, same ``statement_timeout``) straight through psycopg, with
SQLAlchemy's statement events and error handling kept.
"""

from __future__ import annotations

import itertools
import re
import time
from collections import namedtuple
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, cast

from flask import Flask, request
from flask.globals import _cv_app
from psycopg import RawCursor
from psycopg.pq import TransactionStatus
from sqlalchemy import Select, TextClause, event, text
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import Connection, CursorResult, Result
from sqlalchemy.engine.interfaces import DBAPIConnection, Dialect
from sqlalchemy.exc import DisconnectionError, MultipleResultsFound, NoResultFound
from sqlalchemy.orm import Session, SessionTransaction
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection, QueuePool
from sqlalchemy.util.queue import Queue

from glyphoxa_htmx.core.memo import Memo
from glyphoxa_htmx.extensions import db

IDLE_PING_SECONDS = 10.0

READ_ONLY_ENDPOINTS = frozenset(
    {
        "pages.dashboard",
        "campaigns.index",
        "campaigns.show",
        "npcs.index",
        "npcs.edit",
        "sessions.index",
        "sessions.detail",
        "sessions.transcript",
        "sessions.search",
        "knowledge.index",
        "knowledge.campaign",
        "knowledge.entity",
        "knowledge.graph",
        "knowledge.graph_json",
        "usage.index",
        "sessions.poll",
    }
)


# --------------------------------------------------------------------------- tenant homes
#
# A statement over a tenant's own schema (``tenant_<id>.session_entries``, the knowledge tables)
# costs PostgreSQL far more on a connection that hasn't met that tenant yet: the backend builds its
# catalog entries for the table and each of its indexes and loads their statistics, ~1-2 ms of
# database CPU against ~0.2 ms for the same statement once they are cached (measured with EXPLAIN
# on 1,000 seeded tenants: planning 0.85-1.3 ms for the first statement on a new tenant's table,
# 0.04-0.07 ms after). Those entries stay in the backend. With the pool handing connections out in
# turn, every one of a process's connections met every tenant in time, so under 1,000 tenants most
# such statements paid it (in the 1,000-user run a tenant's few requests landed on as many
# connections), and each backend's catalog memory grew with all the tenants' tables (~58 KB a
# tenant). pg_stat_statements in alternating 1,000-user runs: planning these statements fell by
# 20-40 % a call (README, Performance, "A tenant's statements go home").
#
# So each tenant has a home: the connection that last ran one of its tenant-schema statements in
# this process. ``query(..., tenant=...)`` on a read-only page checks out that connection when it
# is idle in the pool (else whichever the pool hands out, which becomes the new home) and keeps it
# as the request's read connection: the page's other statements run there too, one checkout
# instead of two (a checkout and checkin cost ~35 µs of Python; search, transcript and knowledge
# -1 to -4 % in alternating in-process runs). A page's read connection is itself taken from the
# signed-in tenant's home when that is idle (``prefer_home``, called as the sign-in resolves), so
# a page whose first statement reads the web schema (the transcript's session, the knowledge
# page's campaign) needs no second checkout for its tenant statement; and a connection the page
# already holds serves a tenant that has no home in this process yet, and becomes its home. The
# first version gave the home back right after the statement, so it was idle more often (43-48 %
# of lookups under wrk found it idle; 70-95 % with a pool of its own made no difference in
# throughput). It is a preference only: correctness never depends on which connection runs a
# statement (every statement is scoped by tenant; a read-only page runs in autocommit with
# nothing to carry over).

_numbers = itertools.count(1)  # numbers the pool's database connections (record.info["gx_no"])
_want: ContextVar[int | None] = ContextVar("gx_want_connection", default=None)
MAX_HOMES = 50_000  # tenant id -> connection number, ~100 B each; above the 1,000-tenant working set
_homes: Memo[str, int] = Memo(MAX_HOMES)


class _PreferringQueue(Queue[Any]):
    """The pool's queue of idle connections: hands out the one numbered ``_want`` when it is idle
    (a scan of at most pool_size entries, under the queue's own lock), else the next in turn."""

    def _get(self) -> Any:
        want = _want.get()
        if want is not None:
            for record in self.queue:
                if record.info.get("gx_no") == want:
                    self.queue.remove(record)
                    return record
        return super()._get()


class TenantHomePool(QueuePool):
    """SQLAlchemy's QueuePool (same sizes, overflow, timeouts and events) whose checkout can
    prefer one idle connection: see "tenant homes" above."""

    _queue_class = _PreferringQueue


def _tenant_connection(session: Session | None, tenant: str) -> Connection | None:
    """For a statement over ``tenant``'s own schema on a read-only page: its home connection (or
    a new home), in autocommit, which then stays the request's read connection (its later
    statements run there too: one checkout a page fewer). The request's read connection, if it
    holds another, goes back first (one connection per request at a time); one the tenant has no
    home yet becomes its home. None where a statement must run on the request's own connection:
    not a read-only page, or the session has begun a transaction."""
    ctx = _cv_app.get(None)
    if ctx is None or not _reads_alone(ctx.g.__dict__, session):
        return None
    values = ctx.g.__dict__
    home = _homes.get(tenant)
    held: Connection | None = values.get(READ_CONNECTION)
    if held is not None:
        conn = _in_autocommit(held)
        number = conn.connection.info.get("gx_no")
        if home is None and number is not None:
            _homes.keep(tenant, number)
            return conn
        if number == home:
            return conn
        release_read_connection()
    token = _want.set(home)
    try:
        conn = _in_autocommit(db.engine.connect())
    finally:
        _want.reset(token)
    number = conn.connection.info.get("gx_no")
    if number is not None and number != home:
        _homes.keep(tenant, number)
    values[READ_CONNECTION] = conn
    return conn


def init_app(app: Flask) -> None:
    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        dialect = engine.dialect

        def _checkin(dbapi_conn: DBAPIConnection | None, record: ConnectionPoolEntry) -> None:
            record.info["gx_idle_since"] = time.monotonic()
            # A read-only page's connections (its read connection, its session's) go back in
            # autocommit: switched off here, best effort; checkout makes sure.
            if dbapi_conn is not None and dbapi_conn.autocommit:
                try:
                    dbapi_conn.autocommit = False
                except Exception:  # noqa: BLE001 - a broken connection: checkout discards it
                    pass

        def _checkout(
            dbapi_conn: DBAPIConnection,
            record: ConnectionPoolEntry,
            _proxy: PoolProxiedConnection,
            dialect: Dialect = dialect,
        ) -> None:
            if "gx_no" not in record.info:  # this database connection's number (TenantHomePool)
                record.info["gx_no"] = next(_numbers)
            if dbapi_conn.autocommit:
                # Fail closed: a connection still in autocommit must not give a session autocommit
                # (its writes would commit one by one); one that can't be switched is discarded.
                try:
                    dbapi_conn.autocommit = False
                except Exception as exc:  # noqa: BLE001
                    raise DisconnectionError("connection can't leave autocommit") from exc
            since = record.info.get("gx_idle_since")
            if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
                return  # fresh from connect, or used a moment ago
            try:
                dialect.do_ping(dbapi_conn)
            except Exception as exc:  # noqa: BLE001 - any failure: this connection is gone
                raise DisconnectionError("idle connection failed its ping") from exc

        event.listen(engine, "checkin", _checkin)
        event.listen(engine, "checkout", _checkout)
    # Registered before every other before_request hook (init_app runs before Flask-Limiter's and
    # ours): the first statement of a request, e.g. a rate-limit key resolving the sign-in, must
    # already know the page only reads.
    app.before_request(begin_request)


READ_ONLY = "gx_read_only"  # g: this request's statements may use a read connection
READ_CONNECTION = "gx_read_connection"  # g: the request's read connection, while it holds one
HOME_TENANT = "gx_home_tenant"  # g: the tenant whose home the read connection prefers


def prefer_home(tenant_id: str) -> None:
    """The request reads for ``tenant_id`` (the signed-in user's tenant, set as the sign-in
    resolves): its read connection is checked out from that tenant's home when it is idle."""
    ctx = _cv_app.get(None)
    if ctx is not None:
        ctx.g.__dict__[HOME_TENANT] = tenant_id


def begin_request() -> None:
    """before_request: a read-only page reads on a connection of its own, in autocommit mode."""
    if request.method in ("GET", "HEAD") and request.endpoint in READ_ONLY_ENDPOINTS:
        setattr(_cv_app.get().g, READ_ONLY, True)


def _read_connection(session: Session | None) -> Connection | None:
    """The request's read connection (checked out on first use), or None: not a read-only page,
    or the session has begun a transaction (then its connection sees what it wrote, and reads go
    there)."""
    ctx = _cv_app.get(None)
    if ctx is None:
        return None
    values = ctx.g.__dict__
    conn: Connection | None = values.get(READ_CONNECTION)
    if conn is None:
        if not _reads_alone(values, session):
            return None
        # The signed-in tenant's home when it is idle: its tenant statements then run on this
        # connection too, without a checkout of their own.
        tenant = values.get(HOME_TENANT)
        token = _want.set(_homes.get(tenant) if tenant is not None else None)
        try:
            conn = values[READ_CONNECTION] = db.engine.connect()
        finally:
            _want.reset(token)
    # (a connection invalidated by a failed statement reconnects here: autocommit again each time)
    return _in_autocommit(conn)


def _reads_alone(values: dict[str, Any], session: Session | None) -> bool:
    """Whether this request (``values``: its ``g``) reads on connections of its own in autocommit:
    a read-only page whose session has begun no transaction (else its connection sees what it
    wrote, and reads go there)."""
    return bool(values.get(READ_ONLY)) and not (session is not None and session.in_transaction())


def reads_committed() -> bool:
    """Whether what this request reads now is only what others committed: a read-only page whose
    session has begun no transaction (per-process caches of shared rows fill only from such reads,
    never from a transaction that may still roll back)."""
    ctx = _cv_app.get(None)
    return ctx is not None and _reads_alone(ctx.g.__dict__, existing_session())


def _in_autocommit(conn: Connection) -> Connection:
    dbapi: Any = conn.connection.dbapi_connection
    if not dbapi.autocommit:
        dbapi.autocommit = True
    return conn


def release_read_connection() -> None:
    """Hand the request's read connection back to the pool (teardown, and whenever a session
    transaction begins); the pool switches its autocommit off (``init_app``)."""
    ctx = _cv_app.get(None)
    conn: Connection | None = ctx.g.__dict__.pop(READ_CONNECTION, None) if ctx is not None else None
    if conn is not None:
        conn.close()


def release_connections() -> None:
    """Hand back every connection the request holds, the read connection and the session's, before
    it waits on something that isn't the database (the live hub, a socket's lifetime)."""
    db.session.remove()
    release_read_connection()


@event.listens_for(Session, "after_transaction_create")
def _session_begins(_session: Session, transaction: SessionTransaction) -> None:
    # Before the session checks out its own connection: one connection per request at a time (two
    # would let a full pool deadlock requests that each hold one and wait for another).
    if transaction.parent is None:
        release_read_connection()


@event.listens_for(Session, "after_begin")
def _session_connected(_session: Session, transaction: SessionTransaction, connection: Connection) -> None:
    """On a read-only page, the session's own connection runs in autocommit too, as before the
    read connection existed: its writes (the sign-in touch, a first-view campaign registration)
    commit as they run, and the request ends without a ROLLBACK. A real ROLLBACK makes psycopg
    deallocate every statement it had prepared on that connection (the static ones a page runs
    over and over), and PostgreSQL then plans them again: on a read-only page that ended in one,
    that cost ~0.3 ms of database CPU a request under 1,000 users. Switched back at checkin."""
    ctx = _cv_app.get(None)
    if ctx is not None and ctx.g.__dict__.get(READ_ONLY) and transaction.parent is None:
        dbapi: Any = connection.connection.dbapi_connection
        if not dbapi.autocommit and dbapi.info.transaction_status == TransactionStatus.IDLE:  # nothing run yet
            dbapi.autocommit = True


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. ``Session.execute`` is typed as returning a ``Result``;
    for those statements it is a ``CursorResult``, which has the count."""
    return cast(CursorResult[Any], result).rowcount


# --------------------------------------------------------------------------- query: columns via psycopg


class Rows(list[Any]):
    """The rows of ``query``: a list with the Result methods the services use."""

    def all(self) -> list[Any]:
        return list(self)

    def first(self) -> Any:
        return self[0] if self else None

    def one_or_none(self) -> Any:
        if len(self) > 1:
            raise MultipleResultsFound("Multiple rows were found when one or none was required")
        return self[0] if self else None

    def one(self) -> Any:
        if len(self) != 1:
            raise (MultipleResultsFound if self else NoResultFound)(f"Expected one row, got {len(self)}")
        return self[0]

    def scalar(self) -> Any:
        return self[0][0] if self else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalar_one_or_none(self) -> Any:
        row = self.one_or_none()
        return None if row is None else row[0]

    def scalars(self) -> Iterator[Any]:
        return (row[0] for row in self)


@dataclass
class _Plan:
    statement: Any  # kept so the id it is cached under stays this statement's
    sql: str
    defaults: dict[str, Any]
    required: frozenset[str]
    columns: tuple[Any, ...]  # the SELECT's column expressions (typed), empty for text()
    layout: tuple[tuple[str, int, Any], ...]  # per selected item: (name, columns, snapshot type or None)
    raw: bytes  # ``sql`` with $1, $2... placeholders, as psycopg sends it (``positional``)
    order: tuple[str, ...]  # the parameter of each placeholder
    make: Any = None  # the row maker, set on the first result once its types are checked


MAX_PLANS = 16_384  # bounded: text() statements name a tenant's own schema (~16 per tenant), ~1 KB each
_plans: Memo[Any, _Plan] = Memo(MAX_PLANS)
_row_types: dict[tuple[str, ...], type] = {}


# A text statement over a tenant's own schema differs from the same statement for another tenant
# only in the schema's quoted name ("tenant_<id>": the gateway's rule allows letters, digits and
# underscores, nothing SQLAlchemy's text compilation touches). Compiling one costs ~90 µs, and a
# tenant's first visit to each page in each worker compiled its own (6-10 of them; ~3 % of the CPU
# of first visits, which are most of the 1,000-user mix: issue 18). So a statement naming exactly
# one such identifier is compiled once per shape (the identifier replaced by a slot), and its plan
# is that shape's with the statement's own identifier put back: the same text, placeholders and
# parameters as compiling it (``_compile_plan``; ``tests/test_dbconn_query.py`` compares them).
_TENANT_SCHEMA = re.compile(r'"tenant_[a-z0-9_]+"')
_SCHEMA_SLOT = '"gx_tenant_schema_slot"'


def _plan(statement: Select[Any] | TextClause, dialect: Dialect) -> _Plan:
    key: Any = ("text", statement.text) if isinstance(statement, TextClause) else id(statement)
    plan = _plans.get(key)
    if plan is not None and (plan.statement is statement or isinstance(statement, TextClause)):
        return plan
    if isinstance(statement, TextClause) and _SCHEMA_SLOT not in statement.text:
        named = set(_TENANT_SCHEMA.findall(statement.text))
        if len(named) == 1:
            (schema,) = named
            shape = _plan(sql_text(statement.text.replace(schema, _SCHEMA_SLOT)), dialect)
            plan = _Plan(
                statement,
                shape.sql.replace(_SCHEMA_SLOT, schema),
                shape.defaults,
                shape.required,
                (),
                (),
                shape.raw.replace(_SCHEMA_SLOT.encode(), schema.encode()),
                shape.order,
            )
            return _plans.keep(key, plan)
    return _plans.keep(key, _compile_plan(statement, dialect))


def _compile_plan(statement: Select[Any] | TextClause, dialect: Dialect) -> _Plan:
    """A statement's plan, compiled by SQLAlchemy (see ``query``)."""
    layout = _layout(statement) if isinstance(statement, Select) else ()
    # IN lists of constants (``state.in_(LIVE_STATES)``) are expanded into the SQL once; an IN
    # list given per call can't be (bind an array: ``= ANY(:ids)``).
    compiled = statement.compile(dialect=dialect)
    required = frozenset(n for n, b in compiled.binds.items() if b.required)
    expanded = "POSTCOMPILE" in compiled.string
    if expanded:
        if any(compiled.binds[n].expanding for n in required):
            raise TypeError("query() can't expand IN lists per call; bind an array (= ANY(:ids)) instead")
        placeholders = statement.params(dict.fromkeys(required))  # rendered as %(name)s all the same
        compiled = placeholders.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    sql = compiled.string
    # (an expanded statement is hard-linked to the placeholders' values: no new ones)
    values = compiled.construct_params() if expanded else compiled.construct_params(dict.fromkeys(required))
    defaults = {n: v for n, v in values.items() if n not in required}
    for bind in compiled.binds.values():
        process = bind.type.dialect_impl(dialect).bind_processor(dialect)
        if process is None:
            continue
        if bind.required:  # a value given per call would go out unconverted
            raise TypeError(f"query(): parameter {bind.key!r} needs SQLAlchemy's conversion")
        name = compiled.bind_names[bind]
        if name in defaults:  # a constant of the statement (coalesce(x, false)): converted once
            defaults[name] = process(defaults[name])
    raw, order = positional(sql)
    return _Plan(
        statement,
        sql,
        defaults,
        required,
        tuple(statement.selected_columns) if isinstance(statement, Select) else (),
        layout,
        raw,
        order,
    )


_PYFORMAT = re.compile(r"%(?:(%)|\(([^)]+)\)s|(.?))", re.DOTALL)


def positional(sql: str) -> tuple[bytes, tuple[str, ...]]:
    """A compiled statement (``%(name)s`` placeholders, ``%%`` a percent sign) as the query
    PostgreSQL receives (``$1``; a name used twice is one placeholder) and the names in order.

    Done once per plan, run through psycopg's ``RawCursor`` (issue 18): psycopg converts a
    statement with named placeholders on every execution through an LRU cache of 128 texts, so
    past 128 tenants every statement naming a tenant's schema was split and rebuilt again
    (~20 µs of Python). The same conversion psycopg does; anything else after a ``%`` (a
    positional ``%s``, ``%b``) is refused: no statement of ours is written that way."""
    order: list[str] = []
    numbers: dict[str, int] = {}

    def placeholder(m: re.Match[str]) -> str:
        percent, name, other = m.groups()
        if percent:
            return "%"
        if name is None:
            raise TypeError(f"query(): unsupported placeholder %{other} in {sql[:80]!r}")
        if name not in numbers:
            order.append(name)
            numbers[name] = len(order)
        return f"${numbers[name]}"

    return _PYFORMAT.sub(placeholder, sql).encode(), tuple(order)


def _layout(statement: Select[Any]) -> tuple[tuple[str, int, Any], ...]:
    """How a SELECT's result columns group into what it selects: a mapped class (``Campaign``) or
    an alias of one spans its column attributes and comes back as a read-only snapshot of them;
    anything else is one column. Empty when no ORM class is selected (plain rows)."""
    items: list[tuple[str, int, Any]] = []
    for d in statement.column_descriptions:
        expr = d.get("expr")
        if isinstance(expr, type) or (expr is not None and expr is d.get("entity")):
            # A mapped class, or an alias of one over a subquery (``aliased(NpcDefinition, ranked)``).
            insp: Any = sa_inspect(expr)
            mapper = insp.mapper
            props = list(mapper.column_attrs)
            if any(p.deferred for p in props) or mapper.polymorphic_on is not None:
                raise TypeError(
                    f"query(): {mapper.class_.__name__} has deferred or polymorphic columns; use db.session"
                )
            items.append((d["name"], len(props), _snapshot_type(mapper)))
        else:
            items.append((d["name"], 1, None))
    if sum(n for _name, n, _snap in items) != len(statement.selected_columns):
        raise TypeError("query(): the statement's columns don't match what it selects; use db.session")
    return tuple(items) if any(snap is not None for _n, _w, snap in items) else ()


_snapshot_types: dict[Any, Any] = {}


def _snapshot_type(mapper: Any) -> Any:
    """A named tuple of a mapped class's column attributes (``metadata_``, not the column's
    ``metadata``), named after the class: reads like the ORM object, can't be changed (assigning
    to it raises, so a caller can't write to it expecting a flush), and has no lazy loads."""
    cls = _snapshot_types.get(mapper)
    if cls is None:
        keys = tuple(p.key for p in mapper.column_attrs)
        cls = _snapshot_types[mapper] = namedtuple(f"{mapper.class_.__name__}Snapshot", keys)  # noqa: PYI024
    return cls


def _grouped(layout: tuple[tuple[str, int, Any], ...], make: Any) -> Any:
    """A row maker that folds each selected ORM class's columns into its snapshot."""
    spans: list[tuple[int, int, Any]] = []
    start = 0
    for _name, width, snap in layout:
        spans.append((start, start + width, snap._make if snap is not None else None))
        start += width

    def grouped(values: Any) -> Any:
        return make([snap(values[a:b]) if snap is not None else values[a] for a, b, snap in spans])

    return grouped


def _row_type(names: tuple[str, ...]) -> Any:
    cls = _row_types.get(names)
    if cls is None:
        base = namedtuple("Row", names, rename=True)  # type: ignore[misc]  # noqa: PYI024
        cls = _row_types[names] = type("Row", (base,), {"__slots__": (), "_mapping": property(_mapping)})
    return cls


def _mapping(row: Any) -> Mapping[str, Any]:
    return row._asdict()  # type: ignore[no-any-return]


def _maker(plan: _Plan, description: Any, dialect: Dialect) -> Any:
    """The row maker of a plan's result (kept on the plan), after checking its types once. Fail closed: a column
    SQLAlchemy would convert (a TypeDecorator, an Enum class, a float read as Decimal) can't come
    back as psycopg gives it."""
    if description is None:
        raise TypeError("query() is for statements that return rows")
    if plan.columns and len(plan.columns) != len(description):
        raise TypeError("query(): the statement's columns and the result's differ")
    for column, desc in zip(plan.columns, description, strict=False):
        if column.type.dialect_impl(dialect).result_processor(dialect, desc.type_code) is not None:
            raise TypeError(f"query(): column {desc.name!r} needs SQLAlchemy's conversion; use db.session")
    if plan.layout:
        plan.make = _grouped(plan.layout, _row_type(tuple(name for name, _w, _s in plan.layout))._make)
    else:
        plan.make = _row_type(tuple(d.name for d in description))._make
    return plan.make


def existing_session() -> Session | None:
    """The request's ORM session if something made one, else None (without making one)."""
    registry = db.session.registry
    return registry() if registry.has() else None


@lru_cache(maxsize=4096)
def sql_text(statement: str) -> TextClause:
    """The TextClause of an SQL text, parsed once per process (issue 18: ``text()`` scans for
    bind parameters on every call). Keyed by the exact SQL, so a statement naming one tenant's
    schema is only ever reused for that same schema; values are always bound parameters."""
    return text(statement)


def query(
    statement: Select[Any] | TextClause, params: Mapping[str, Any] | None = None, *, tenant: str | None = None
) -> Rows:
    """Run a SELECT (or a text() statement) on the request's connection (a read-only page's read
    connection, else the session's) and return its
    rows (named tuples: ``row.name``, ``row[0]``, ``row._mapping``); a selected ORM class comes
    back as a read-only snapshot of its columns (``row.Campaign.name``), for pages that only show
    it. Pending ORM changes are flushed first, as ``Session.execute`` does.

    For hot read paths (issue 18). The statement is compiled once per process; its parameters are
    sent as given (no SQLAlchemy type conversion: a parameter or column type that needs one is
    refused with TypeError, as are deferred or polymorphic columns). The engine's
    ``before/after_cursor_execute`` events fire as for any statement (tests count statements,
    tracing makes spans), and a database error is raised as SQLAlchemy raises it (a lost
    connection invalidates it), through the connection's own handler.

    ``tenant``: the statement reads that tenant's own schema; on a read-only page it runs on the
    tenant's home connection (see "tenant homes"), elsewhere on the request's connection as any."""
    session = existing_session()  # (a read-only page may never need one)
    if session is not None and session.autoflush and (session.new or session.deleted or session.dirty):
        session.flush()  # as Session.execute does: read what this request changed
    conn = _tenant_connection(session, tenant) if tenant is not None else None
    return _run(conn or _read_connection(session) or db.session.connection(), statement, params)


def _run(conn: Connection, statement: Select[Any] | TextClause, params: Mapping[str, Any] | None) -> Rows:
    dialect = conn.dialect
    plan = _plan(statement, dialect)
    values = {**plan.defaults, **(params or {})}
    missing = plan.required.difference(values)
    if missing:
        raise KeyError(f"query(): no value for {', '.join(sorted(missing))}")
    context = SimpleNamespace()  # what event listeners (tracing) may keep per execution
    cursor = None
    # One cursor per pooled connection, kept with it: a new psycopg cursor builds its adaptation
    # context afresh (~13 µs of a ~65 µs statement). Only the thread holding the connection uses it.
    # A RawCursor: the plan holds the statement as PostgreSQL receives it (``positional``).
    fairy = conn.connection
    dbapi: Any = fairy.dbapi_connection
    try:
        cursor = fairy.info.get("gx_cursor")
        if cursor is None or cursor.closed or cursor.connection is not dbapi:
            cursor = fairy.info["gx_cursor"] = RawCursor(dbapi)
        conn.dispatch.before_cursor_execute(conn, cursor, plan.sql, values, context, False)
        cursor.execute(plan.raw, [values[name] for name in plan.order])
        conn.dispatch.after_cursor_execute(conn, cursor, plan.sql, values, context, False)
        description = None if plan.make else cursor.description  # (read once: psycopg builds it anew)
        found = cursor.fetchall() if plan.make or description is not None else []
    except BaseException as exc:  # noqa: BLE001 - SQLAlchemy's handler wraps, invalidates, re-raises
        fairy.info.pop("gx_cursor", None)
        if cursor is not None:
            cursor.close()
        conn._handle_dbapi_exception(exc, plan.sql, values, cursor, None)
        raise  # not reached: the handler always raises
    make = plan.make or _maker(plan, description, dialect)
    return Rows(map(make, found))
