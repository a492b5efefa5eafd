"""core/dbconn.query: hot read paths run their SELECTs straight through psycopg on the session's
own connection (issue 18). What it must keep from SQLAlchemy: the same transaction, the statement
events (statement counts, tracing), SQLAlchemy's errors and invalidation of a lost connection; and
what it must refuse rather than answer differently (fail closed)."""

from __future__ import annotations

from contextlib import contextmanager
from types import SimpleNamespace

import psycopg
import pytest
from sqlalchemy import (
    MetaData,
    Numeric,
    String,
    Text,
    TextClause,
    TypeDecorator,
    bindparam,
    event,
    func,
    literal_column,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import MultipleResultsFound, NoResultFound, OperationalError, ProgrammingError
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

from glyphoxa_htmx.core import dbconn
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import Campaign, GatewaySession
from tests.test_campaigns import add_session


def test_rows_are_read_in_the_sessions_own_transaction_with_names_and_mapping(app, make_tenant):
    tenant = make_tenant()
    stmt = select(Campaign.id, Campaign.name, Campaign.settings).where(
        Campaign.tenant_id == bindparam("tenant_id", type_=Campaign.tenant_id.type)
    )
    with app.app_context():
        db.session.add(Campaign(id="c1", tenant_id=tenant, name="Salt Road", settings={"x": 1, "odd": [2]}))
        db.session.flush()  # not committed: only this session's connection can see it
        rows = dbconn.query(stmt, {"tenant_id": tenant})
        assert len(rows) == 1
        row = rows.one()
        assert (row.id, row.name, row[1], row._mapping["name"]) == ("c1", "Salt Road", "Salt Road", "Salt Road")
        assert row.settings == {"x": 1, "odd": [2]}  # JSONB decoded as SQLAlchemy returns it
        assert rows == [tuple(r) for r in db.session.execute(stmt, {"tenant_id": tenant}).all()]
        db.session.rollback()
        assert dbconn.query(stmt, {"tenant_id": tenant}) == []
        assert dbconn.query(stmt, {"tenant_id": tenant}).first() is None
        with pytest.raises(NoResultFound):
            dbconn.query(stmt, {"tenant_id": tenant}).one()
        assert dbconn.query(text("SELECT 1 AS a UNION ALL SELECT 2")).scalar() == 1
        with pytest.raises(MultipleResultsFound):
            dbconn.query(text("SELECT 1 AS a UNION ALL SELECT 2")).one_or_none()
        assert list(dbconn.query(text("SELECT 1 AS a UNION ALL SELECT 2 ORDER BY 1")).scalars()) == [1, 2]


def test_statement_events_fire_as_for_any_statement(app):
    seen: list[tuple[str, str, object]] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        context.mark = "kept"  # tracing keeps its span on the context
        seen.append(("before", statement, parameters))

    def after(conn, cursor, statement, parameters, context, executemany):
        seen.append(("after", statement, context.mark))

    with app.app_context():
        engine = db.engine
        event.listen(engine, "before_cursor_execute", before)
        event.listen(engine, "after_cursor_execute", after)
        try:
            assert dbconn.query(text("SELECT CAST(:n AS int) + 1 AS m"), {"n": 41}).scalar_one() == 42
        finally:
            event.remove(engine, "before_cursor_execute", before)
            event.remove(engine, "after_cursor_execute", after)
    assert [s[0] for s in seen] == ["before", "after"]
    assert "SELECT CAST(%(n)s AS int) + 1" in seen[0][1] and seen[0][2] == {"n": 41}
    assert seen[1][2] == "kept"


def test_constant_in_lists_are_expanded_once_and_bound_values_stay_values(app):
    stmt = (
        select(literal_column("v"))
        .select_from(text("(VALUES ('live'), ('ended'), ('x'' OR true --')) AS t(v)"))
        .where(literal_column("v", String).in_(("live", "x' OR true --")), literal_column("v") != bindparam("skip"))
    )
    with app.app_context():
        assert sorted(dbconn.query(stmt, {"skip": "nothing"}).scalars()) == ["live", "x' OR true --"]
        assert list(dbconn.query(stmt, {"skip": "live"}).scalars()) == ["x' OR true --"]


class Shouting(TypeDecorator[str]):
    impl = String
    cache_ok = True

    def process_result_value(self, value, dialect):
        return None if value is None else value.upper()


def test_it_refuses_what_psycopg_alone_would_answer_differently(app):
    with app.app_context():
        # A column SQLAlchemy converts on the way out: refused, not returned unconverted.
        with pytest.raises(TypeError, match="conversion"):
            dbconn.query(select(literal_column("'quiet'", Shouting())))
        with pytest.raises(TypeError, match="conversion"):  # float8 read as Decimal
            dbconn.query(select(literal_column("1.5::float8", Numeric())))
        # An IN list given per call can't be expanded into a statement compiled once.
        with pytest.raises(TypeError, match="IN lists"):
            dbconn.query(
                select(literal_column("1")).where(literal_column("'a'").in_(bindparam("ids", expanding=True))),
                {"ids": ["a"]},
            )
        with pytest.raises(KeyError, match="tenant_id"):  # a missing value is not NULL
            dbconn.query(select(Campaign.id).where(Campaign.tenant_id == bindparam("tenant_id")))
        with pytest.raises(TypeError, match="return rows"):
            dbconn.query(text("SET LOCAL statement_timeout = 1000"))
        db.session.rollback()


def test_database_errors_are_sqlalchemys_and_the_session_recovers(app):
    with app.app_context():
        with pytest.raises(ProgrammingError):
            dbconn.query(text("SELECT * FROM web.no_such_table"))
        db.session.rollback()
        db.session.execute(text("SET LOCAL statement_timeout = 50"))
        with pytest.raises(OperationalError):  # what web/errors.py turns into the slow-database page
            dbconn.query(text("SELECT pg_sleep(1)"))
        db.session.rollback()
        assert dbconn.query(text("SELECT 7")).scalar_one() == 7


def _lose_the_connection(database_url) -> int:
    """Kill the backend the next statement runs on; the statement after fails, invalidating it."""
    pid = dbconn.query(text("SELECT pg_backend_pid()")).scalar_one()
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    with pytest.raises(OperationalError) as caught:
        dbconn.query(text("SELECT 1"))
    assert caught.value.connection_invalidated
    return pid


def test_a_connection_lost_mid_request_is_invalidated_not_reused(app, database_url):
    with app.app_context():
        pid = _lose_the_connection(database_url)
        db.session.rollback()
        assert dbconn.query(text("SELECT pg_backend_pid()")).scalar_one() != pid


def test_statements_share_the_connections_cursor_until_one_fails(app):
    """One psycopg cursor per pooled connection (a new one rebuilds its adaptation context): the
    next statement and the next request on that connection use it; a failed statement drops it, and
    a new connection gets its own."""
    seen: list = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(cursor)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        with app.app_context():
            pid = dbconn.query(text("SELECT pg_backend_pid()")).scalar_one()
            assert dbconn.query(text("SELECT 2")).scalar_one() == 2
        with app.app_context():  # the next request: mostly the same pooled connection (told by its pid)
            again = dbconn.query(text("SELECT pg_backend_pid()")).scalar_one()
            with pytest.raises(ProgrammingError):
                dbconn.query(text("SELECT * FROM web.no_such_table"))
            db.session.rollback()
            assert dbconn.query(text("SELECT 3")).scalar_one() == 3
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert seen[0] is seen[1]
    if again == pid:
        assert seen[2] is seen[0]
    assert seen[3] is seen[2] and seen[3].closed  # the failed statement's cursor is closed...
    assert seen[4] is not seen[3] and not seen[4].closed  # ...and not used again


def test_a_selected_orm_class_comes_back_as_a_read_only_snapshot_after_a_flush(app, make_tenant, database_url):
    tenant = make_tenant()
    stmt = select(Campaign, func.coalesce(literal_column("NULL::boolean"), False), literal_column("7")).where(
        Campaign.tenant_id == bindparam("tenant_id", type_=Campaign.tenant_id.type)
    )
    with app.app_context():
        campaign = Campaign(id="c1", tenant_id=tenant, name="Salt Road", settings={"unknown": {"k": 1}})
        db.session.add(campaign)
        db.session.commit()
        campaign.name = "Renamed, not flushed"  # read back as Session.execute would: flushed first
        row = dbconn.query(stmt, {"tenant_id": tenant}).one()
        snap, flag, seven = row
        assert (row.Campaign is snap, flag, seven) == (True, False, 7)
        assert (snap.id, snap.tenant_id, snap.name, snap.settings) == (
            "c1",
            tenant,
            "Renamed, not flushed",
            {"unknown": {"k": 1}},
        )
        with pytest.raises(AttributeError):  # nobody can change it expecting a write
            snap.name = "x"
        db.session.rollback()
        # A mapped attribute whose column is named otherwise (here the gateway's "metadata" column,
        # which the app's own GatewaySession leaves unmapped) keeps the attribute's name.
        add_session(database_url, tenant, "c1")
        found = dbconn.query(
            select(SessionWithMetadata).where(SessionWithMetadata.tenant_id == bindparam("t")), {"t": tenant}
        )
        snap = found.one().SessionWithMetadata
        assert snap.metadata_ == {} and snap.tenant_id == tenant
        # The app's own mapping doesn't load it (a JSON decode per row on every sessions list).
        plain = dbconn.query(select(GatewaySession).where(GatewaySession.tenant_id == bindparam("t")), {"t": tenant})
        assert not hasattr(plain.one().GatewaySession, "metadata_")


class GatewayTables(DeclarativeBase):
    metadata = MetaData(schema="public")


class SessionWithMetadata(GatewayTables):
    """public.sessions with the gateway's "metadata" column under another attribute name."""

    __tablename__ = "sessions"
    id: Mapped[str] = mapped_column(Text, primary_key=True)
    tenant_id: Mapped[str] = mapped_column(Text)
    metadata_: Mapped[dict] = mapped_column("metadata", JSONB)


# --------------------------------------------------------------------------- read-only pages' own connection


def _idle_connections_in_autocommit(engine) -> list[bool]:
    # (an entry invalidated earlier holds no connection until its next checkout)
    entries = list(engine.pool._pool.queue)
    return [entry.dbapi_connection.autocommit for entry in entries if entry.dbapi_connection is not None]


def test_a_read_only_page_reads_on_one_autocommit_connection_of_its_own_and_hands_it_back(app, as_role):
    owner = as_role("tenant_owner")
    seen: list[tuple[bool, object, int, bool]] = []
    with app.app_context():
        engine = db.engine

    def before(conn, cursor, statement, parameters, context, executemany):
        dbapi = conn.connection.dbapi_connection
        seen.append((dbapi.autocommit, dbapi, engine.pool.checkedout(), db.session.registry.has()))

    owner.get("/dashboard")  # warm: first-view registrations write through the session
    event.listen(engine, "before_cursor_execute", before)
    try:
        assert owner.get("/dashboard").status_code == 200
        assert owner.get("/campaigns").status_code == 200
        assert owner.get("/usage").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert len(seen) >= 4
    assert all(autocommit for autocommit, *_rest in seen)  # no BEGIN, nothing to roll back
    assert all(held == 1 for _a, _c, held, _s in seen)  # one connection per request
    assert not any(session for *_rest, session in seen)  # no ORM session was even created
    assert engine.pool.checkedout() == 0
    assert not any(_idle_connections_in_autocommit(engine))  # switched back before the pool got it


def test_pages_that_write_still_read_in_the_sessions_transaction(app, as_role):
    owner = as_role("tenant_owner")
    seen: list[bool] = []
    with app.app_context():
        engine = db.engine

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(conn.connection.dbapi_connection.autocommit)

    event.listen(engine, "before_cursor_execute", before)
    try:
        assert owner.get("/settings").status_code == 200  # not in READ_ONLY_ENDPOINTS
    finally:
        event.remove(engine, "before_cursor_execute", before)
    assert seen and not any(seen)


def test_a_session_transaction_takes_over_from_the_read_connection_in_autocommit_too(app, make_tenant, database_url):
    """On a read-only page a session that begins (the sign-in touch, a first-view registration)
    gets the connection after the read connection went back, and runs in autocommit as the page
    did before it had a read connection: its writes commit as they run and the request ends
    without a ROLLBACK (which would make psycopg drop the statements it prepared)."""
    tenant = make_tenant()
    stmt = select(Campaign.name).where(Campaign.id == bindparam("cid", type_=Campaign.id.type))
    try:
        with app.test_request_context("/dashboard"):
            engine = db.engine
            dbconn.begin_request()
            dbconn.query(text("SELECT pg_backend_pid()")).scalar_one()
            assert engine.pool.checkedout() == 1
            db.session.add(Campaign(id="c_over", tenant_id=tenant, name="Salt Road"))
            db.session.flush()  # the session begins: the read connection goes back first
            assert engine.pool.checkedout() == 1
            assert db.session.connection().connection.dbapi_connection.autocommit
            with psycopg.connect(database_url) as other:  # committed as it ran
                assert other.execute("SELECT name FROM web.campaigns WHERE id = 'c_over'").fetchone() == ("Salt Road",)
            db.session.rollback()  # nothing to undo
            assert dbconn.query(stmt, {"cid": "c_over"}).scalar_one() == "Salt Road"
            assert engine.pool.checkedout() == 1  # read connection again (the session has none now)
        assert engine.pool.checkedout() == 0
        assert not any(_idle_connections_in_autocommit(engine))
        with app.test_request_context("/settings"):  # not a read-only page: the session's transaction
            db.session.add(Campaign(id="c_txn", tenant_id=tenant, name="Undone"))
            db.session.flush()
            assert not db.session.connection().connection.dbapi_connection.autocommit
            db.session.rollback()
            assert dbconn.query(stmt, {"cid": "c_txn"}).first() is None
    finally:
        with psycopg.connect(database_url, autocommit=True) as other:
            other.execute("DELETE FROM web.campaigns WHERE id IN ('c_over', 'c_txn')")


def test_a_read_connection_lost_mid_request_is_invalidated_and_the_next_statement_reconnects(app, database_url):
    with app.test_request_context("/dashboard"):
        dbconn.begin_request()
        pid = _lose_the_connection(database_url)
        assert dbconn.query(text("SELECT pg_backend_pid()")).scalar_one() != pid
        assert dbconn.query(text("SHOW transaction_isolation")).scalar_one()  # still usable
    with app.app_context():
        assert db.engine.pool.checkedout() == 0
        assert not any(_idle_connections_in_autocommit(db.engine))


def test_a_connection_given_back_in_autocommit_is_switched_off_at_its_next_checkout(app):
    """Fail closed: whatever returns a connection with autocommit on, a session never gets it so
    (its writes would commit one statement at a time)."""
    with app.app_context():
        engine = db.engine
        raw = engine.raw_connection()
        target = raw.dbapi_connection
        target.autocommit = True
        raw.close()
        held = []
        try:
            for _ in range(engine.pool.size() + 1):
                held.append(engine.raw_connection())
                if held[-1].dbapi_connection is target:
                    break
            assert held[-1].dbapi_connection is target
            assert target.autocommit is False
        finally:
            for conn in held:
                conn.close()


@contextmanager
def _watched(engine):
    """What a request did on ``engine`` meanwhile: ``statements`` as (first word, autocommit,
    connections checked out, the pooled connection's number), ``checkouts``, and ``sessions``, the
    ORM session transactions that took a connection."""
    did = SimpleNamespace(statements=[], checkouts=0, sessions=0)

    def before(conn, cursor, statement, parameters, context, executemany):
        fairy = conn.connection
        did.statements.append(
            (statement.split()[0], fairy.dbapi_connection.autocommit, engine.pool.checkedout(), fairy.info.get("gx_no"))
        )

    def checkout(*_args):
        did.checkouts += 1

    def began(*_args):
        did.sessions += 1

    listeners = [
        (engine, "before_cursor_execute", before),
        (engine, "checkout", checkout),
        (Session, "after_begin", began),
    ]
    for target, name, fn in listeners:
        event.listen(target, name, fn)
    try:
        yield did
    finally:
        for target, name, fn in listeners:
            event.remove(target, name, fn)


def test_the_sign_in_touch_on_a_read_only_page_runs_on_the_read_connection_where_the_sign_in_was_read(
    app, as_role, database_url
):
    """A user's first request after a while touches ``last_seen_at`` in the statement that reads
    the sign-in (a data-modifying CTE), in autocommit on the read connection (no transaction, no
    second checkout), committed as it ran; the page's reads go on there."""
    from glyphoxa_htmx.services import signin_cache

    owner = as_role("tenant_owner")
    owner.get("/dashboard")  # warm: the tenant's first found-campaign round
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(
            "UPDATE web.login_sessions SET last_seen_at = now() - interval '5 minutes' WHERE user_id = %s",
            (owner.user.id,),
        )
    signin_cache.invalidate()  # resolved afresh: the touch is due
    with app.app_context():
        engine = db.engine
    with _watched(engine) as did:
        assert owner.get("/dashboard").status_code == 200
    seen = [(verb, autocommit, held) for verb, autocommit, held, _no in did.statements]
    assert did.checkouts == 1  # the sign-in's read connection served the touch and the page
    assert all(held == 1 for *_rest, held in seen)
    # The sign-in read with its touch, then the page's own statement on that same connection.
    assert [verb for verb, _a, _h in seen] == ["WITH", "SELECT"]
    numbers = [no for *_rest, no in did.statements]
    assert numbers[0] is not None and numbers[1] == numbers[0]
    assert all(autocommit for _verb, autocommit, _h in seen)  # the touch committed as it ran
    with psycopg.connect(database_url) as check:
        age = check.execute(
            "SELECT now() - last_seen_at FROM web.login_sessions WHERE user_id = %s", (owner.user.id,)
        ).fetchone()[0]
    assert age.total_seconds() < 60
    assert engine.pool.checkedout() == 0 and not any(_idle_connections_in_autocommit(engine))


# --------------------------------------------------------------------------- tenant homes


def _pid(tenant: str | None = None) -> int:
    return int(dbconn.query(text("SELECT pg_backend_pid()"), tenant=tenant).scalar_one())


def _read_only_request(app):
    ctx = app.test_request_context("/dashboard")
    ctx.push()
    dbconn.begin_request()
    return ctx


def _pids_in_turn(app, n: int, tenant: str | None) -> list[int]:
    """The backend of one statement in each of ``n`` read-only requests in a row."""
    pids = []
    for _ in range(n):
        ctx = _read_only_request(app)
        try:
            pids.append(_pid(tenant))
        finally:
            ctx.pop()
    return pids


def _fill_pool(app, n: int = 4) -> None:
    """Make the pool hold ``n`` idle connections (the pool hands them out in turn)."""
    with app.app_context():
        held = [db.engine.connect() for _ in range(n)]
        for conn in held:
            conn.close()


@contextmanager
def _checkouts(app):
    """The pool's checkouts while the block runs: a list that grows by one each."""
    with app.app_context():
        engine = db.engine
    seen: list[int] = []

    def counted(*_args):
        seen.append(1)

    event.listen(engine, "checkout", counted)
    try:
        yield seen
    finally:
        event.remove(engine, "checkout", counted)


@contextmanager
def _home_busy(app, home: int):
    """Another request holds the pool's connection whose backend is ``home``."""
    with app.app_context():
        engine = db.engine
        held = []
        try:
            while not held or held[-1].exec_driver_sql("SELECT pg_backend_pid()").scalar() != home:
                held.append(engine.connect())
            for conn in held[:-1]:
                conn.close()
            yield
        finally:
            for conn in held:
                conn.close()


def test_a_tenants_statements_come_home_to_the_connection_that_last_ran_them(app):
    """A statement over a tenant's schema on a read-only page runs on the connection that last ran
    one for that tenant (whose backend has its tables' catalog entries cached), while other
    statements take the pool's connections in turn; each goes back to the pool when its request
    ends, out of autocommit."""
    _fill_pool(app)
    assert len(set(_pids_in_turn(app, 4, None))) > 1  # without a tenant: in turn, as before
    dbconn._homes.clear()
    home = _pids_in_turn(app, 1, "tenant_a")[0]
    assert _pids_in_turn(app, 4, "tenant_a") == [home] * 4
    other = _pids_in_turn(app, 1, "tenant_b")[0]
    ctx = _read_only_request(app)
    try:  # mixed with the page's other statements, in one request
        assert _pid("tenant_a") == home
        _pid()
        assert _pid("tenant_b") == other
        assert _pid("tenant_a") == home
    finally:
        ctx.pop()
    with app.app_context():
        assert db.engine.pool.checkedout() == 0
        assert not any(_idle_connections_in_autocommit(db.engine))


def test_a_home_stays_the_requests_read_connection_and_a_held_one_becomes_a_new_home(app):
    """After a tenant statement the page's other statements run on the same home (one checkout a
    page, not one per statement); a read connection the page already holds serves a tenant
    without a home in this process and becomes its home; a tenant with a home elsewhere still goes
    there (the held connection goes back first: one connection per request at a time)."""
    _fill_pool(app)
    dbconn._homes.clear()
    with app.app_context():
        engine = db.engine
    home = _pids_in_turn(app, 1, "tenant_a")[0]
    with _checkouts(app) as checkouts:
        ctx = _read_only_request(app)
        try:
            assert _pid("tenant_a") == home
            assert _pid() == home  # the page's next statement: same connection, no checkout
            assert _pid("tenant_a") == home
            assert len(checkouts) == 1 and engine.pool.checkedout() == 1
        finally:
            ctx.pop()
        checkouts.clear()
        ctx = _read_only_request(app)
        try:
            held = _pid()  # the page reads first...
            assert _pid("tenant_new") == held  # ...and a tenant without a home takes that one
            assert len(checkouts) == 1
            if held != home:
                assert _pid("tenant_a") == home  # a known home elsewhere: go there
                assert engine.pool.checkedout() == 1
        finally:
            ctx.pop()
    assert _pids_in_turn(app, 2, "tenant_new") == [held] * 2
    assert engine.pool.checkedout() == 0
    assert not any(_idle_connections_in_autocommit(engine))


def test_a_pages_read_connection_comes_from_its_signed_in_tenants_home(app):
    """The sign-in names the request's tenant (``prefer_home``): the page's first statement, over
    any table, already takes that tenant's home when it is idle, so its tenant statements need no
    checkout of their own; without a known home, or with it busy, any connection does."""
    _fill_pool(app)
    dbconn._homes.clear()
    home = _pids_in_turn(app, 1, "tenant_a")[0]
    _pids_in_turn(app, 1, "tenant_b")
    with _checkouts(app) as checkouts:
        for _ in range(3):
            ctx = _read_only_request(app)
            try:
                dbconn.prefer_home("tenant_a")
                assert _pid() == home  # (the pool alone hands connections out in turn)
                assert _pid("tenant_a") == home
            finally:
                ctx.pop()
    assert len(checkouts) == 3
    with _home_busy(app, home):  # the home busy elsewhere: the page reads all the same
        ctx = _read_only_request(app)
        try:
            dbconn.prefer_home("tenant_a")
            assert _pid() != home
        finally:
            ctx.pop()


def test_a_busy_home_gives_way_and_the_connection_used_instead_becomes_the_home(app):
    _fill_pool(app)
    dbconn._homes.clear()
    home = _pids_in_turn(app, 1, "tenant_a")[0]
    with _home_busy(app, home):  # another request holds the home
        moved = _pids_in_turn(app, 1, "tenant_a")[0]
        assert moved != home
    assert _pids_in_turn(app, 3, "tenant_a") == [moved] * 3


def test_a_tenant_statement_off_a_read_only_page_runs_in_the_sessions_transaction(app, make_tenant, database_url):
    """Homes are for read-only pages' autocommit reads only: on a page that writes, and on a read
    page once its session began a transaction, the statement sees the transaction's own writes."""
    tenant = make_tenant()
    try:
        for path, read_only in (("/settings", False), ("/dashboard", True)):
            with app.test_request_context(path):
                if read_only:
                    dbconn.begin_request()
                db.session.add(Campaign(id="c_home", tenant_id=tenant, name="Unsaved"))
                db.session.flush()
                assert (
                    dbconn.query(text("SELECT name FROM web.campaigns WHERE id = 'c_home'"), tenant=tenant).scalar_one()
                    == "Unsaved"
                )
                assert _pid(tenant) == db.session.connection().exec_driver_sql("SELECT pg_backend_pid()").scalar()
                db.session.rollback()
    finally:
        with psycopg.connect(database_url, autocommit=True) as other:
            other.execute("DELETE FROM web.campaigns WHERE id = 'c_home'")


def test_a_home_that_failed_or_died_in_the_pool_doesnt_fail_the_next_page(app, database_url):
    """A statement that fails on a home hands it back usable; a home whose backend died while idle
    in the pool (a database restart, a proxy's idle cut) is pinged at checkout and replaced."""
    _fill_pool(app)
    dbconn._homes.clear()
    home = _pids_in_turn(app, 1, "tenant_a")[0]
    ctx = _read_only_request(app)
    try:
        with pytest.raises(ProgrammingError):
            dbconn.query(text("SELECT * FROM no_such_table"), tenant="tenant_a")
        assert _pid("tenant_a") == home
    finally:
        ctx.pop()
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (home,))
    with app.app_context():  # idle long enough to be pinged
        for entry in db.engine.pool._pool.queue:
            entry.info["gx_idle_since"] = -1e9
    replaced = _pids_in_turn(app, 1, "tenant_a")[0]
    assert replaced != home
    assert _pids_in_turn(app, 2, "tenant_a") == [replaced] * 2
    with app.app_context():
        assert db.engine.pool.checkedout() == 0


def test_statements_go_to_postgresql_with_numbered_placeholders_converted_once(app, make_tenant):
    """``positional`` turns a compiled statement into what PostgreSQL receives, once per plan: a
    name used twice is one placeholder, ``%%`` a percent sign; a placeholder we never write is
    refused (fail closed) instead of being sent as text."""
    assert dbconn.positional("SELECT %(a)s, %(b)s || %(a)s, 'x%%' LIKE 'x%%'") == (
        b"SELECT $1, $2 || $1, 'x%' LIKE 'x%'",
        ("a", "b"),
    )
    assert dbconn.positional("SELECT 1") == (b"SELECT 1", ())
    for bad in ("SELECT %s", "SELECT %(a)b", "SELECT 5 %"):
        with pytest.raises(TypeError):
            dbconn.positional(bad)
    tenant = make_tenant()
    with app.app_context():
        db.session.add(Campaign(id="c%1", tenant_id=tenant, name="50% off"))
        db.session.add(Campaign(id="c2", tenant_id=tenant, name="Salt"))
        db.session.flush()
        stmt = text(
            "SELECT id, name, CAST(:t AS text) = tenant_id AS same FROM web.campaigns "
            "WHERE tenant_id = :t AND name LIKE '%\\%%' ORDER BY id"
        )
        rows = dbconn.query(stmt, {"t": tenant, "unused": 1})
        assert [(r.id, r.name, r.same) for r in rows] == [("c%1", "50% off", True)]
        db.session.rollback()


# --------------------------------------------------------------------------- one compile per statement shape


def _same_plan(a, b) -> bool:
    return (a.sql, a.raw, a.order, a.required, a.defaults) == (b.sql, b.raw, b.order, b.required, b.defaults)


def test_a_tenant_statement_is_planned_from_its_shape_exactly_as_compiling_it(app, table, database_url, monkeypatch):
    """Statements over a tenant's own schema are compiled once per shape and given each tenant's
    schema back (issue 18: ~90 µs a compile, 6-10 on a tenant's first visit to each worker). Every
    such statement the pages plan must come out exactly as compiling it would: the same SQL,
    the same placeholders and parameters, and its own tenant's schema, never another's."""
    from sqlalchemy.dialects import postgresql

    from tests.support.ws_server import seed

    sid = seed(database_url, table.tenant, table.campaign, sessions=2)[-1]
    planned = []
    real = dbconn._plan

    def spy(statement, dialect):
        if isinstance(statement, TextClause):
            planned.append(statement)
        return real(statement, dialect)

    with psycopg.connect(database_url) as conn:
        entity = conn.execute(f'SELECT id FROM "tenant_{table.tenant}".entities LIMIT 1').fetchone()[0]
    monkeypatch.setattr(dbconn, "_plan", spy)
    dbconn._plans.clear()
    for url in (
        "/dashboard",
        f"/sessions/{sid}",
        f"/sessions/{sid}/transcript",
        f"/sessions/{sid}/transcript?q=salt",
        f"/sessions/{sid}/transcript?kind=npc&speaker=Sister+Vey",
        "/sessions/search?q=salt",
        f"/sessions/search?q=salt+-goblin&campaign={table.campaign}",
        f"/knowledge/{table.campaign}",
        f"/knowledge/{table.campaign}?q=a",
        f"/knowledge/{table.campaign}/entities/{entity}",
        f"/knowledge/{table.campaign}/graph",
    ):
        assert table.dm.get(url).status_code == 200, url
    schema = f'"tenant_{table.tenant}"'
    own = [s for s in planned if schema in s.text]
    assert len({s.text for s in own}) >= 6  # the tenant's statements did go this way
    dialect = postgresql.psycopg.dialect()
    for statement in own:
        plan = real(statement, dialect)
        assert plan.raw.count(schema.encode()) == statement.text.count(schema)
        assert _same_plan(plan, dbconn._compile_plan(statement, dialect)), statement.text
        assert ("text", statement.text.replace(schema, dbconn._SCHEMA_SLOT)) in dbconn._plans  # by its shape
        # Another tenant's statement of the same shape: planned from it, with its own schema.
        other = dbconn.sql_text(statement.text.replace(schema, '"tenant_someone_else"'))
        theirs = real(other, dialect)
        assert _same_plan(theirs, dbconn._compile_plan(other, dialect))
        assert schema.encode() not in theirs.raw and b'"tenant_someone_else"' in theirs.raw


def test_a_statement_naming_two_tenant_like_identifiers_is_compiled_as_it_is():
    from sqlalchemy.dialects import postgresql

    dialect = postgresql.psycopg.dialect()
    two = dbconn.sql_text('SELECT "tenant_id" FROM "tenant_ab"."x" WHERE a = :a AND b LIKE \'%\' || :b')
    plan = dbconn._plan(two, dialect)
    assert _same_plan(plan, dbconn._compile_plan(two, dialect))
    assert plan.raw == b'SELECT "tenant_id" FROM "tenant_ab"."x" WHERE a = $1 AND b LIKE \'%\' || $2'
    one = dbconn.sql_text('SELECT id FROM "tenant_cd"."x" WHERE a = :a AND a2 = :a AND c LIKE \'%x\'')
    plan = dbconn._plan(one, dialect)
    assert _same_plan(plan, dbconn._compile_plan(one, dialect)) and plan.order == ("a",)
    assert plan.raw == b'SELECT id FROM "tenant_cd"."x" WHERE a = $1 AND a2 = $1 AND c LIKE \'%x\''


def test_a_found_campaign_round_on_a_read_only_page_runs_on_the_read_connection(app, as_role, database_url):
    """A campaign id the gateway wrote (a Discord session's) is registered on the tenant's next
    round, its audit entry written; a later round that finds nothing new (the usual one, every
    FOUND_SYNC_SECONDS per tenant and process) is one statement in autocommit on the page's read
    connection: no session transaction, one checkout for the whole page."""
    from glyphoxa_htmx.models import AuditLog
    from glyphoxa_htmx.services import campaigns
    from tests.test_campaigns import add_session

    owner = as_role("tenant_owner")
    owner.get("/campaigns")
    add_session(database_url, owner.user.tenant_id, "found_at_the_table")
    campaigns._last_sync.clear()  # this tenant's round is due again
    page = owner.get("/campaigns")
    assert page.status_code == 200 and "found_at_the_table" in page.get_data(as_text=True)
    with app.app_context():
        found = db.session.execute(
            select(AuditLog).where(AuditLog.action == "campaign.found", AuditLog.tenant_id == owner.user.tenant_id)
        ).scalar_one()
        assert found.details["campaign_ids"] == ["found_at_the_table"]

    campaigns._last_sync.clear()
    with app.app_context():
        engine = db.engine
    with _watched(engine) as did:
        assert owner.get("/campaigns").status_code == 200
    rounds = [autocommit for verb, autocommit, _h, _no in did.statements if verb in ("INSERT", "WITH")]
    assert rounds == [True], did.statements
    assert did.checkouts == 1 and not did.sessions  # the read connection only; no ORM session began


def test_the_processes_npc_read_of_a_found_campaign_round_runs_on_the_read_connection(app, as_role):
    """Once per FOUND_SYNC_SECONDS a process reads every tenant's NPC campaign ids that have no
    campaign row (``campaigns._npc_candidates``); on a read-only page that read too runs on the
    page's read connection: one checkout, no ORM session."""
    from glyphoxa_htmx.services import campaigns

    owner = as_role("tenant_owner")
    owner.get("/campaigns")
    campaigns._last_sync.clear()  # this tenant's round is due
    campaigns._npc_snapshot = None  # ... and the process's NPC read
    with app.app_context():
        engine = db.engine
    with _watched(engine) as did:
        assert owner.get("/campaigns").status_code == 200
    assert campaigns._npc_snapshot is not None  # the read ran
    assert did.checkouts == 1 and not did.sessions, did.statements
    assert all(autocommit for _verb, autocommit, _h, _no in did.statements), did.statements
