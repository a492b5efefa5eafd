"""Reliability under faults (issue 19): each test reproduces a fault with real parts — a TCP
proxy in front of PostgreSQL or the gateway that delays or goes silent (tests/support/faultproxy),
``pg_terminate_backend`` on the test database, a lock held by another connection — and checks
what the user and the operator get: bounded probes, honest outcomes, one deadline per action,
styled failures, no secrets in the log."""

from __future__ import annotations

import json
import logging
import threading
from datetime import UTC
from types import SimpleNamespace
from urllib.parse import urlsplit

import psycopg
import pytest

from glyphoxa_htmx.adapters.gateway.client import GatewayClient
from tests.conftest import GATEWAY_SECRET, Browser, make_settings, soup
from tests.support.faultproxy import FaultProxy
from tests.support.ws_server import snowflake, sql, wait_for


@pytest.fixture(autouse=True)
def _fresh_pool_afterwards(request):
    """These tests kill the app's connections. Pages ping only connections idle for a while
    (core/dbconn.py), so a killed one is found by the next statement that uses it, which then
    invalidates the pool: in production one request pays for that. Here the next *test* would,
    through its fixtures, so each test leaves a fresh pool behind."""
    yield
    if "app" in request.fixturenames:
        from glyphoxa_htmx.extensions import db

        with request.getfixturevalue("app").app_context():
            db.engine.dispose()


@pytest.fixture
def slow_gateway(app, simulator):
    """The app's gateway client now talks to the simulator through a FaultProxy (1 s deadline per
    call); the channel is connected while the proxy still forwards, so a later delay slows the
    calls, not the connection set-up."""
    original = app.extensions["glyphoxa.gateway"]
    proxy = FaultProxy.for_url(simulator.address).start()
    client = GatewayClient(proxy.address, GATEWAY_SECRET, timeout=1.0, retries=2, breaker_threshold=0)
    client.list_tenants()  # connect now
    app.extensions["glyphoxa.gateway"] = client
    yield SimpleNamespace(proxy=proxy, client=client)
    app.extensions["glyphoxa.gateway"] = original
    proxy.forward()
    client.close()
    proxy.close()


def audit_rows(database_url, tenant):
    return sql(
        database_url, "SELECT action, details->>'note' FROM web.audit_log WHERE tenant_id = %s ORDER BY id", (tenant,)
    )


def session_state(database_url, sid):
    return sql(database_url, "SELECT state FROM public.sessions WHERE id = %s", (sid,))[0][0]


# ---- 2. a stop that times out: outcome unknown, reconciled from public.sessions --------------


def test_stop_that_times_out_is_checked_on_the_open_page_and_audited_when_it_ends(
    app, table, database_url, simulator, slow_gateway
):
    sid = app.extensions["glyphoxa.gateway"].start_web_session(table.tenant, table.guild, snowflake(), table.campaign)

    # The session page is open before anything goes wrong.
    page = soup(table.dm.get(f"/sessions/{sid}"))
    form = page.select_one(f'form[hx-post="/sessions/{sid}/stop"]')
    assert form["hx-target"] == "#stop-status" and form["hx-swap"] == "outerHTML"
    assert page.select_one("#stop-status") is not None

    # Every gateway packet now arrives 2.5 s late: the stop's deadline (1 s) passes, the gateway
    # stops the session afterwards.
    slow_gateway.proxy.delay(2.5)
    resp = table.dm.post(form["hx-post"], htmx=True, headers={"HX-Target": form["hx-target"].lstrip("#")})
    assert resp.status_code == 202
    block = soup(resp)
    assert [el["id"] for el in block.select("[id]")] == ["stop-status"]  # replaces the open page's region
    notice = block.select_one('[data-stop-outcome="checking"]')
    assert "Stopping — checking with the voice service" in notice.text
    assert "try again" not in resp.get_data(as_text=True).lower()
    assert session_state(database_url, sid) in ("pending", "active")  # not ended yet: unknown, not failed
    assert audit_rows(database_url, table.tenant) == [("session.stop_unconfirmed", None)]

    # The open page polls what the block told it to, until public.sessions shows the real outcome.
    poll_url = notice["hx-get"]
    assert notice["hx-trigger"].startswith("every") and notice["hx-target"] == "#main"
    answers = []

    def poll():
        r = table.dm.get(poll_url, htmx=True, headers={"HX-Current-URL": f"http://localhost/sessions/{sid}"})
        answers.append(r.status_code)
        return r if r.status_code != 204 else None

    done = wait_for(poll, timeout=20, interval=0.2, what="the stop's real outcome")
    assert session_state(database_url, sid) == "ended"
    assert answers[0] == 204  # it said "nothing yet" while the gateway was still on its way
    updated = soup(done)
    assert updated.select_one('[data-stop-outcome="stopped"]').text.strip() == "Session stopped."
    assert updated.select_one("[hx-trigger]") is None  # polling ends
    assert updated.select_one(f'form[action="/sessions/{sid}/stop"]') is None  # no Stop button any more
    assert json.loads(done.headers["HX-Trigger"])["toast"]["message"] == "Session stopped."
    assert audit_rows(database_url, table.tenant) == [
        ("session.stop_unconfirmed", None),
        ("session.stop", "after_timeout"),
    ]
    # Another poll (a second open tab) audits nothing twice.
    table.dm.get(poll_url, htmx=True)
    assert [a for a, _ in audit_rows(database_url, table.tenant)].count("session.stop") == 1


def test_stop_that_times_out_from_another_page_goes_to_the_checking_page(app, table, database_url, slow_gateway):
    """A Stop button outside the session page (e.g. on the live page) has no #stop-status to fill:
    htmx is sent to the session page, which does the checking."""
    sid = app.extensions["glyphoxa.gateway"].start_web_session(table.tenant, table.guild, snowflake(), table.campaign)
    slow_gateway.proxy.silent()
    resp = table.dm.post(f"/sessions/{sid}/stop", htmx=True)
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == f"/sessions/{sid}?stop=check"
    page = soup(table.dm.get(resp.headers["HX-Redirect"]))
    assert "checking with the voice service" in page.select_one('[data-stop-outcome="checking"]').text


def test_stop_that_times_out_without_javascript_lands_on_the_checking_page(app, table, database_url, slow_gateway):
    sid = app.extensions["glyphoxa.gateway"].start_web_session(table.tenant, table.guild, snowflake(), table.campaign)
    slow_gateway.proxy.silent()  # the gateway never hears of it
    resp = table.dm.post(f"/sessions/{sid}/stop", {"confirmed": "1"})
    assert resp.status_code == 303 and resp.headers["Location"] == f"/sessions/{sid}?stop=check"
    page = soup(table.dm.get(resp.headers["Location"]))
    notice = page.select_one('[data-stop-outcome="checking"]')
    assert "checking with the voice service" in notice.text
    assert notice.select_one(f'a[href="/sessions/{sid}?stop=check"]').text == "Check again"
    assert session_state(database_url, sid) in ("pending", "active")
    # Much later the session still runs: the page says the stop was never confirmed.
    from datetime import datetime, timedelta

    from flask_login import current_user

    from glyphoxa_htmx.services import session_control

    later = datetime.now(UTC) + timedelta(seconds=session_control.STOP_CHECK_SECONDS + 1)
    with app.test_request_context(headers={"Cookie": f"gx_session={table.dm.token}"}):
        result = session_control.reconcile_stop(current_user._get_current_object(), sid, now=later)
    assert result.outcome == "unconfirmed" and "Try stopping it again" in result.message
    assert [a for a, _ in audit_rows(database_url, table.tenant)] == ["session.stop_unconfirmed"]


# ---- 1. /readyz is bounded; pages get a statement timeout -------------------------------------


def _in_thread(fn, bound: float):
    """Run fn in a thread; return (finished, result). A hang is reported, not waited out."""
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(value=fn()), daemon=True)
    t.start()
    t.join(bound)
    return (not t.is_alive()), out.get("value")


@pytest.fixture
def db_proxy(database_url):
    parts = urlsplit(database_url)
    proxy = FaultProxy(parts.hostname or "127.0.0.1", parts.port or 5432).start()
    url = parts._replace(netloc=f"{parts.username or 'postgres'}@{proxy.address}").geturl()
    yield SimpleNamespace(proxy=proxy, url=url)
    proxy.close()


def test_readyz_answers_within_a_bound_when_the_database_goes_silent(app, db_proxy):
    from glyphoxa_htmx.app import create_app

    probe = create_app(make_settings(db_proxy.url))
    client = probe.test_client()
    assert client.get("/readyz").status_code == 200  # forwarding: ready (and the pool has a connection)
    with probe.app_context():
        from sqlalchemy import text

        from glyphoxa_htmx.extensions import db

        db.session.execute(text("SELECT 1"))
        db.session.remove()
    db_proxy.proxy.silent()  # established connections and new ones: nothing comes back
    finished, resp = _in_thread(lambda: client.get("/readyz"), bound=15)
    assert finished, "/readyz hung on a silent database"
    assert resp.status_code == 503 and resp.json["failed"] == ["database"]
    assert resp.json["checks"]["database"].startswith("fail")


def test_a_locked_database_fails_a_page_fast_with_the_styled_page(app, database_url, make_user):
    from glyphoxa_htmx.app import create_app

    probe = create_app(make_settings(database_url, database_statement_timeout=0.5))
    user = make_user(role="dm")
    b = Browser(probe).login(user)
    with psycopg.connect(database_url) as locker:
        locker.execute("LOCK TABLE web.login_sessions IN ACCESS EXCLUSIVE MODE")  # held until the block ends
        finished, resp = _in_thread(lambda: b.get("/team"), bound=15)
        locker.rollback()
    assert finished, "the page waited on the locked table instead of timing out"
    assert resp.status_code == 503
    page = soup(resp)
    assert "didn't answer in time" in page.select_one("main").text and page.select_one("link[rel=stylesheet]")


def test_statement_timeout_setting_reaches_the_connections(app, database_url):
    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.config import load_settings

    assert load_settings(environ={"DATABASE_STATEMENT_TIMEOUT": "3.5"}).database_statement_timeout == 3.5
    probe = create_app(make_settings(database_url, database_statement_timeout=3.5))
    with probe.app_context():
        from sqlalchemy import text

        from glyphoxa_htmx.extensions import db

        assert db.session.execute(text("SHOW statement_timeout")).scalar() == "3500ms"
        db.session.remove()
    off = create_app(make_settings(database_url, database_statement_timeout=0))
    with off.app_context():
        from sqlalchemy import text

        from glyphoxa_htmx.extensions import db

        assert db.session.execute(text("SHOW statement_timeout")).scalar() == "0"
        db.session.remove()


# ---- 3. one deadline per user action -----------------------------------------------------------


def test_a_start_against_a_slow_gateway_spends_one_budget_and_asks_once(app, table, database_url):
    from tests.gateway.conftest import ScriptedServer

    server = ScriptedServer().start()
    server.behaviour["GetTenant"] = ["slow"]
    client = GatewayClient(server.address, GATEWAY_SECRET, timeout=1.0, retries=2, breaker_threshold=0)
    original = app.extensions["glyphoxa.gateway"]
    app.extensions["glyphoxa.gateway"] = client
    try:
        resp = table.dm.post(
            "/sessions/new",
            {"campaign_id": table.campaign, "guild_id": table.guild, "channel_id": "987654321098765432"},
            htmx=True,
        )
    finally:
        app.extensions["glyphoxa.gateway"] = original
        client.close()
        server.stop()
    assert resp.status_code == 422
    assert "unavailable" in soup(resp).select_one(".notice-error").text
    # One attempt used the whole budget: no retries after it, and the re-rendered form (a page
    # decoration) did not ask the gateway again.
    assert server.calls["GetTenant"] == 1
    assert server.calls["StartWebSession"] == 0


def test_retries_share_the_action_budget(scripted_server):
    from glyphoxa_htmx.adapters.gateway import client as gwc
    from glyphoxa_htmx.adapters.gateway.errors import GatewayUnavailable

    scripted_server.behaviour["ListTenants"] = ["slow"]
    client = GatewayClient(scripted_server.address, GATEWAY_SECRET, timeout=1.5, retries=5, breaker_threshold=0)
    try:
        client.get_bot_status("t_warm")  # connected before the clock matters
        with gwc.action():
            with pytest.raises(GatewayUnavailable):
                client.list_tenants()
            with pytest.raises(GatewayUnavailable) as skipped:
                client.get_bot_status("t_x", quick=True)  # a decoration after the failure
        assert scripted_server.calls["ListTenants"] == 1 and scripted_server.calls["GetBotStatus"] == 1
        assert "already failed" in skipped.value.details
        # Outside an action each call keeps its own deadline and retries (the live hub, the CLI).
        scripted_server.behaviour["ListTenants"] = [grpc_code("UNAVAILABLE")]
        with pytest.raises(GatewayUnavailable):
            client.list_tenants()
        assert scripted_server.calls["ListTenants"] == 1 + 6
    finally:
        client.close()


def grpc_code(name):
    import grpc

    return getattr(grpc.StatusCode, name)


@pytest.fixture
def scripted_server():
    from tests.gateway.conftest import ScriptedServer

    server = ScriptedServer().start()
    yield server
    server.stop()


# ---- 4 + 6. database errors during teardown; no secrets in the log in a fault storm ------------


def _terminate(database_url, where: str, params=()) -> int:
    rows = sql(
        database_url,
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() "
        "AND pid <> pg_backend_pid() AND " + where,
        params,
    )
    return len(rows or [])


PLAIN_500 = "<title>500 Internal Server Error</title>"


def test_a_connection_killed_during_the_request_never_gives_the_plain_500(app, database_url):
    from sqlalchemy import text

    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.extensions import db
    from tests.support.ws_server import LiveServer

    probe = create_app(make_settings(database_url))

    @probe.get("/__read_then_killed")
    def _read_then_killed():  # pragma: no cover - only registered here
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        sql(database_url, "SELECT pg_terminate_backend(%s)", (pid,))
        return "read done"

    @probe.get("/__killed_midway")
    def _killed_midway():  # pragma: no cover - only registered here
        pid = db.session.execute(text("SELECT pg_backend_pid()")).scalar()
        sql(database_url, "SELECT pg_terminate_backend(%s)", (pid,))
        db.session.execute(text("SELECT 1"))
        return "unreachable"

    import requests

    server = LiveServer(probe)
    try:
        read = requests.get(server.url + "/__read_then_killed", timeout=20)
        midway = requests.get(server.url + "/__killed_midway", timeout=20)
        after = requests.get(server.url + "/healthz", timeout=20)
    finally:
        server.close()
    # Nothing was written: the answer the view produced goes out; the dead connection is dropped.
    assert read.status_code == 200 and read.text == "read done"
    # Killed between two statements: the app's own styled page, not the server's plain one.
    assert midway.status_code == 503 and PLAIN_500 not in midway.text
    from bs4 import BeautifulSoup

    styled = BeautifulSoup(midway.text, "html.parser")
    assert "didn't answer in time or the connection dropped" in styled.select_one("main").text
    assert after.status_code == 200


def test_no_token_hash_or_secret_reaches_the_log_in_a_kill_storm(app, database_url, make_user, simulator):
    import hashlib
    import random

    import requests

    from glyphoxa_htmx.app import create_app
    from tests.support.ws_server import LiveServer

    tag = "glyphoxa_storm"
    sep = "&" if "?" in database_url else "?"
    probe = create_app(
        make_settings(
            database_url + f"{sep}application_name={tag}",
            log_level="INFO",
            gateway_grpc_addr=simulator.address,
            gateway_secret=GATEWAY_SECRET,
        )
    )
    users = [make_user(role="dm") for _ in range(3)]
    tokens = [Browser(probe).login(u).token for u in users]

    records: list[str] = []

    class Capture(logging.Handler):
        def emit(self, record):
            records.append(self.format(record))  # plain text, traceback included, no scrubbing

    handler = Capture()
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    server = LiveServer(probe)
    statuses: list[int] = []
    bodies: list[str] = []
    stop = threading.Event()

    def visitor(token):
        s = requests.Session()
        s.cookies.set("gx_session", token)
        while not stop.is_set():
            path = random.choice(["/dashboard", "/team", "/sessions", "/campaigns", "/account/sessions"])
            try:
                r = s.get(server.url + path, timeout=20, allow_redirects=False)
            except requests.RequestException:
                continue
            statuses.append(r.status_code)
            if r.status_code >= 500:
                bodies.append(r.text)

    threads = [threading.Thread(target=visitor, args=(t,), daemon=True) for t in tokens for _ in range(2)]
    try:
        for t in threads:
            t.start()
        # The storm: rounds of (a) killing every connection of the app at random moments and
        # (b) holding the sign-in table so requests wait inside a query carrying a token hash,
        # then killing exactly those waiting backends.
        for _ in range(6):
            for _ in range(5):
                _terminate(database_url, "application_name = %s", (tag,))
                stop.wait(0.05)
            with psycopg.connect(database_url) as locker:
                locker.execute("LOCK TABLE web.login_sessions IN ACCESS EXCLUSIVE MODE")
                wait_for(
                    lambda: (
                        sql(
                            database_url,
                            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s "
                            "AND wait_event_type = 'Lock'",
                            (tag,),
                        )[0][0]
                        > 0
                    ),
                    timeout=20,
                    interval=0.02,
                    what="a request waiting on the locked sign-in table",
                )
                _terminate(database_url, "application_name = %s AND wait_event_type = 'Lock'", (tag,))
                locker.rollback()
    finally:
        stop.set()
        for t in threads:
            t.join(30)
        server.close()
        root.removeHandler(handler)
    log_text = "\n".join(records)
    secrets_ = [GATEWAY_SECRET, probe.config["SECRET_KEY"]]
    for token in tokens:
        secrets_ += [token, hashlib.sha256(token.encode()).hexdigest()]
    leaked = [secret[:8] + "…" for secret in secrets_ if secret in log_text]
    assert not leaked
    assert "SQL parameters hidden" in log_text  # SQL errors were logged, with their parameters hidden
    assert statuses and set(statuses) <= {200, 503}
    assert not [b for b in bodies if PLAIN_500 in b]  # every failure was the app's styled page


# ---- 5. startup against a bad database: one line, non-zero exit -------------------------------


@pytest.mark.parametrize("command", [["migrate"], ["seed"]])
def test_startup_against_a_bad_database_prints_one_clear_line(command, monkeypatch):
    import subprocess
    import sys

    env = {"PATH": "/usr/bin:/bin", "DATABASE_URL": "postgresql://glyph:hunter2@127.0.0.1:1/nothing", "LOG_JSON": "0"}
    proc = subprocess.run(
        [sys.executable, "-m", "glyphoxa_htmx.cli", *command],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        cwd=str(__import__("tests.conftest").conftest.ROOT),
    )
    lines = [line for line in (proc.stdout + proc.stderr).splitlines() if line.strip()]
    assert proc.returncode != 0
    assert len(lines) == 1, lines
    line = lines[0]
    assert "DATABASE_URL" in line and "glyph@127.0.0.1:1/nothing" in line and "Connection refused" in line
    assert "hunter2" not in line and "Traceback" not in line


# ---- 7. live controls answer with the real status ---------------------------------------------


def test_live_controls_answer_503_with_the_toast_when_the_gateway_is_down(app, table, database_url, slow_gateway):
    sid = app.extensions["glyphoxa.gateway"].start_web_session(table.tenant, table.guild, snowflake(), table.campaign)
    wait_for(lambda: session_state(database_url, sid) == "active", what="the session to go active")
    slow_gateway.proxy.close()  # the gateway is gone
    for action, data in [
        ("mute", {"npc": "Grimble"}),
        ("unmute", {"npc": "Grimble"}),
        ("speak", {"npc": "Grimble", "speech": "Hello"}),
        ("mute-all", {}),
    ]:
        resp = table.dm.post(f"/sessions/{sid}/npcs/{action}", data, htmx=True)
        assert resp.status_code == 503, action
        assert json.loads(resp.headers["HX-Trigger"])["toast"]["level"] == "error"
    # Without JavaScript: the live page itself, with the message and the same status.
    resp = table.dm.post(f"/sessions/{sid}/npcs/speak", {"npc": "Grimble", "speech": "Hello there"})
    assert resp.status_code == 503
    page = soup(resp)
    assert "The voice service is unavailable" in page.select_one("main").text
    # Bad input stays 422 with the form; a session that ended is 409.
    assert table.dm.post(f"/sessions/{sid}/npcs/speak", {"npc": "", "speech": "x"}, htmx=True).status_code == 422
    sql(database_url, "UPDATE public.sessions SET state = 'ended', ended_at = now() WHERE id = %s", (sid,))
    assert table.dm.post(f"/sessions/{sid}/npcs/mute", {"npc": "Grimble"}, htmx=True).status_code == 409
    assert not [a for a, _ in audit_rows(database_url, table.tenant) if a.startswith("session.npc_")]


# ---- 8. the simulator's pool recovers from killed connections ----------------------------------


def test_simulator_pool_replaces_killed_connections(gateway_schema):
    from glyphoxa_htmx.simulator.server import GatewaySimulator

    sim = GatewaySimulator(gateway_schema, secret="s", activation_delay=0.2, line_interval=5, heartbeat_interval=5)
    sim.start()
    client = GatewayClient(sim.address, "s", timeout=3.0, retries=0, breaker_threshold=0)
    try:
        client.list_tenants()  # the pool has a live connection
        for _ in range(3):  # a storm, as in a database restart: every client connection is killed
            assert _terminate(gateway_schema, "backend_type = 'client backend'") > 0
            client.list_tenants()  # before: INTERNAL ("voice service unavailable") once per dead connection
            client.get_bot_status("t_nobody")
    finally:
        client.close()
        sim.stop()


def test_migrations_are_not_cut_short_by_the_page_statement_timeout(app, database_url):
    """A page's statement timeout applies to pages only: the migration connection lifts it, and
    never goes back into the pool without it."""
    from sqlalchemy import event, text

    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.bootstrap import migrate_db
    from glyphoxa_htmx.extensions import db

    probe = create_app(make_settings(database_url, database_statement_timeout=0.2))
    seen = []

    @probe.get("/__timeout")
    def _timeout():  # pragma: no cover - only registered here
        return db.session.execute(text("SHOW statement_timeout")).scalar()

    with probe.app_context():
        engine = db.engine

    def on_execute(conn, cursor, statement, params, context, executemany):
        if "alembic_version" in statement:  # inside the migration run
            seen.append(conn.exec_driver_sql("SHOW statement_timeout").scalar())

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        migrate_db(probe)
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    assert seen and set(seen) == {"0"}
    with probe.test_client() as c:
        assert c.get("/__timeout").get_data(as_text=True) == "200ms"
