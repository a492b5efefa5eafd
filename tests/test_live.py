"""The live view: a real WebSocket client against the app on a real server thread, the simulated
gateway writing transcript lines over gRPC-started sessions, the shared per-session poller, the
polling fallback and the NPC controls."""

from __future__ import annotations

import threading
from concurrent import futures

import grpc
import pytest
from sqlalchemy import event

from glyphoxa_htmx.adapters.gateway.client import GatewayClient
from tests.conftest import GATEWAY_SECRET, soup
from tests.support.ws_server import (
    Reader,
    handshake_status,
    seed,
    snowflake,
    sql,
    wait_for,
)


def start(app, t) -> str:
    return app.extensions["glyphoxa.gateway"].start_web_session(t.tenant, t.guild, snowflake(), t.campaign)


def db_line_ids(database_url, tenant, sid, after=0) -> list[int]:
    try:
        rows = sql(
            database_url,
            f'SELECT id FROM "tenant_{tenant}".session_entries WHERE session_id = %s AND id > %s ORDER BY id',
            (sid, after),
        )
    except Exception:  # noqa: BLE001 - the schema appears with the first line
        return []
    return [r[0] for r in rows or []]


def hub(app):
    from glyphoxa_htmx.services import live

    with app.app_context():
        return live.hub()


def test_stream_in_order_then_resume_without_duplicates(app, server, table, database_url):
    sid = start(app, table)
    ws = server.connect(f"/sessions/{sid}/ws?after=0", table.dm.token)
    first = Reader(ws).read_until(lambda r: len(r.line_ids()) >= 3, what="three lines")
    ws.close()
    got = first.line_ids()
    assert got == sorted(set(got))  # in order, no duplicates
    assert got == db_line_ids(database_url, table.tenant, sid)[: len(got)]  # no gaps
    assert any('hx-swap-oob="beforeend:#transcript"' in f for f in first.frames)
    assert any('id="live-status"' in f and "Live" in f for f in first.frames)

    last = got[-1]
    wait_for(lambda: len(db_line_ids(database_url, table.tenant, sid, last)) >= 2, what="more lines in the database")
    ws = server.connect(f"/sessions/{sid}/ws?after={last}", table.dm.token)
    again = Reader(ws).read_until(lambda r: len(r.line_ids()) >= 2, what="missed lines after reconnecting")
    ws.close()
    resumed = again.line_ids()
    assert resumed[0] > last and not set(resumed) & set(got)
    assert resumed == db_line_ids(database_url, table.tenant, sid, last)[: len(resumed)]


def test_two_viewers_share_one_poller(app, server, table, as_role, database_url):
    from glyphoxa_htmx.extensions import db

    viewer = as_role("viewer", tenant_id=table.tenant)
    sid = start(app, table)
    with app.app_context():
        engine = db.engine
    statements: list[str] = []

    def on_execute(conn, cursor, statement, parameters, *args):
        if isinstance(parameters, dict) and parameters.get("sid") == sid:
            statements.append(threading.current_thread().name)

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        a = Reader(server.connect(f"/sessions/{sid}/ws?after=0", table.dm.token))
        b = Reader(server.connect(f"/sessions/{sid}/ws?after=0", viewer.token))
        a.read_until(lambda r: len(r.line_ids()) >= 3, what="viewer A's lines")
        b.read_until(lambda r: len(r.line_ids()) >= 3, what="viewer B's lines")
        stats = hub(app).stats()
        assert list(stats) == [sid] and stats[sid]["viewers"] == 2
        polls, thread_name = stats[sid]["polls"], stats[sid]["thread"]
        assert set(statements) == {thread_name}  # one poller thread for both viewers, no per-viewer queries
        assert len(statements) <= polls + 1  # one statement per tick, not one per viewer
        common = min(len(a.line_ids()), len(b.line_ids()))
        assert a.line_ids()[:common] == b.line_ids()[:common]
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
        a.ws.close()
        b.ws.close()
    wait_for(lambda: sid not in hub(app).stats(), what="the poller to stop after the last viewer left")


def test_a_socket_thread_waits_until_keepalive_and_its_closing_socket_wakes_it(
    app, server, table, database_url, monkeypatch
):
    """A viewer's thread doesn't wake every second to look at its socket (issue 18: with 2,000
    viewers those wake-ups took the GIL from the threads sending lines): it waits on its
    subscription until the next keepalive is due, and the socket's own event (a message, the
    client's close) wakes it, so a closed socket leaves the hub at once, not up to a keepalive later."""
    import time

    from glyphoxa_htmx.services import live
    from glyphoxa_htmx.web import sessions as web_sessions

    waits: list[float] = []
    get = live.Subscription.get

    def recording(self, timeout):
        waits.append(timeout)
        return get(self, timeout)

    monkeypatch.setattr(live.Subscription, "get", recording)
    monkeypatch.setattr(web_sessions, "KEEPALIVE_SECONDS", 30)
    # A quiet live session (no simulator writing lines): nothing but the close can wake its viewer.
    seed(database_url, table.tenant, table.campaign, sessions=1)  # (the tenant's memory schema)
    sid = f"quiet-{snowflake()}"
    sql(
        database_url,
        "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, license_tier, state, started_at) "
        "VALUES (%s, %s, %s, %s, 'shared', 'active', now())",
        (sid, table.tenant, table.campaign, table.guild),
    )
    sql(
        database_url,
        f'INSERT INTO "tenant_{table.tenant}".session_entries (campaign_id, session_id, speaker_name, text) '
        "VALUES (%s, %s, 'Narrator', 'The chapel is quiet.')",
        (table.campaign, sid),
    )
    try:
        ws = server.connect(f"/sessions/{sid}/ws?after=0", table.dm.token)
        Reader(ws).read_until(lambda r: len(r.line_ids()) >= 1, what="the first line")
        wait_for(lambda: waits and max(waits) > 20, what="the thread to wait for the keepalive, not a second")
        assert hub(app).stats()[sid]["viewers"] == 1
        ws.close()
        closed = time.monotonic()
        wait_for(lambda: sid not in hub(app).stats(), what="the viewer to leave and its poller to stop", timeout=25)
        assert time.monotonic() - closed < 10  # woken by the close, not by the 30 s keepalive
    finally:
        sql(database_url, "UPDATE public.sessions SET state = 'ended', ended_at = now() WHERE id = %s", (sid,))


def test_hub_serves_each_viewer_from_its_own_cursor_in_batches(app, table, database_url, monkeypatch):
    """Directly against the hub: viewers with different resume points on one (ended) session get
    exactly their missing lines, in order, across several polls, then the end; then it retires."""
    from glyphoxa_htmx.services import live

    sid = seed(database_url, table.tenant, table.campaign, sessions=1)[0]
    ids = db_line_ids(database_url, table.tenant, sid)
    monkeypatch.setattr(live, "BATCH", 7)  # several polls for one catch-up
    h = hub(app)
    subs = {0: h.subscribe(table.tenant, sid, 0), ids[40]: h.subscribe(table.tenant, sid, ids[40])}
    for after, sub in subs.items():
        got, ended = [], None
        while ended is None:
            events = sub.get(timeout=20)
            assert events, "no events from the hub"
            for kind, value in events:
                if kind == "lines":
                    got += [line.id for line in value]
                elif kind == "ended":
                    ended = value
        assert got == [i for i in ids if i > after] and ended == ""
        sub.close()
    wait_for(lambda: sid not in h.stats(), what="the watch to retire")
    other = h.subscribe("t_someone_else", sid, 0)  # the poll re-checks the tenant in SQL
    assert ("ended", "gone") in other.get(timeout=20)
    other.close()


def test_stop_ends_the_stream_with_the_final_fragment(app, server, table, database_url):
    sid = start(app, table)
    reader = Reader(server.connect(f"/sessions/{sid}/ws?after=0", table.dm.token))
    reader.read_until(lambda r: r.line_ids(), what="a first line")
    assert table.dm.post(f"/sessions/{sid}/stop", {"confirmed": "1"}).status_code == 303
    reader.read_to_close()
    assert reader.close_code == 1000
    assert 'id="live-ended"' in reader.frames[-1] and "This session has ended" in reader.frames[-1]
    assert reader.line_ids() == db_line_ids(database_url, table.tenant, sid)  # every line, then the end
    # A viewer arriving after the end gets the rest and the final fragment at once.
    late = Reader(server.connect(f"/sessions/{sid}/ws?after=0", table.dm.token)).read_to_close()
    assert late.close_code == 1000 and late.line_ids() == db_line_ids(database_url, table.tenant, sid)


def test_handshake_checks_cookie_tenant_and_origin(app, server, table, as_role, database_url):
    sid = seed(database_url, table.tenant, table.campaign, sessions=1)[0]
    stranger = as_role("tenant_owner")
    viewer = as_role("viewer", tenant_id=table.tenant)
    path = f"/sessions/{sid}/ws?after=0"
    assert handshake_status(server, path, stranger.token) == 404
    assert handshake_status(server, "/sessions/no-such-session/ws", table.dm.token) == 404
    assert handshake_status(server, path, None) == 401
    assert handshake_status(server, path, "not-a-session-token") == 401
    assert handshake_status(server, path, table.dm.token, origin="http://evil.example") == 403
    assert handshake_status(server, path, table.dm.token, origin=None) == 403
    # The owner's viewer gets the (ended) session's lines and the final fragment.
    reader = Reader(server.connect(path, viewer.token)).read_to_close()
    assert reader.close_code == 1000 and len(reader.line_ids()) == 48


def test_live_page_snapshot_socket_and_fallback(app, table, database_url):
    sid = start(app, table)
    wait_for(lambda: len(db_line_ids(database_url, table.tenant, sid)) >= 3, what="lines")
    page = soup(table.dm.get(f"/sessions/{sid}/live"))
    items = page.select("#transcript > li[data-line-id]")
    ids = [int(li["data-line-id"]) for li in items]
    assert ids and ids == db_line_ids(database_url, table.tenant, sid)[: len(ids)]
    assert page.select_one("#live-socket")["ws-connect"] == f"/sessions/{sid}/ws?after={ids[-1]}"
    assert page.select_one("#live-socket")["hx-ext"] == "ws"
    assert page.select_one("#live-poll")["data-poll-url"] == f"/sessions/{sid}/lines"
    assert page.select_one('script[src^="/static/js/live.js"]') is not None
    assert not page.select("script:not([src])")  # no inline scripts (CSP)
    speakers = {li.select_one(".speaker").text: li["class"] for li in items}
    for classes in speakers.values():
        assert any(c.startswith("spk-") for c in classes)  # a stable colour per speaker

    # Polling fallback: only the lines after the given id, as out-of-band fragments.
    resp = table.dm.get(f"/sessions/{sid}/lines?after={ids[0]}", htmx=True)
    polled = [int(li["data-line-id"]) for li in soup(resp).select("[data-line-id]")]
    assert polled and polled[0] > ids[0] and polled == sorted(set(polled))
    assert soup(resp).select_one('[hx-swap-oob="beforeend:#transcript"]') is not None
    assert table.dm.get(f"/sessions/{sid}/lines?after=0").status_code == 303  # not htmx: the page

    table.dm.post(f"/sessions/{sid}/stop", {"confirmed": "1"})
    done = soup(table.dm.get(f"/sessions/{sid}/lines?after={polled[-1]}", htmx=True))
    assert done.select_one("#live-ended") is not None
    poller = done.select_one("#live-poll")
    assert poller["hx-swap-oob"] == "true" and not poller.get("hx-trigger")  # polling stops
    ended_page = soup(table.dm.get(f"/sessions/{sid}/live"))
    assert ended_page.select_one("#live-socket") is None and "has ended" in ended_page.select_one("#live-ended").text


def test_npc_controls_mute_speak_and_unmute_all(app, table, database_url, simulator):
    sid = start(app, table)
    wait_for(lambda: simulator._runtime(sid) is not None and simulator._runtime(sid).state == "active", what="active")
    page = soup(table.dm.get(f"/sessions/{sid}/live"))
    names = [n.text for n in page.select("#npc-controls .npc-name")]
    assert names == ["Grimble Ashfoot", "Sister Vey"]  # the simulator's default cast, from ListNPCs

    resp = table.dm.post(f"/sessions/{sid}/npcs/mute", {"npc": "Sister Vey"}, htmx=True)
    assert resp.status_code == 200 and "Sister Vey is muted" in resp.headers["HX-Trigger"]
    row = [li for li in soup(resp).select(".npc-row") if "Sister Vey" in li.text][0]
    assert "is-muted" in row["class"] and row.select_one("button")["aria-pressed"] == "true"
    assert {n.name: n.muted for n in app.extensions["glyphoxa.gateway"].list_npcs(sid)}["Sister Vey"] is True

    text = "The tide turns at midnight, friends."
    resp = table.dm.post(f"/sessions/{sid}/npcs/speak", {"npc": "Sister Vey", "speech": text}, htmx=True)
    assert resp.status_code == 200
    # The simulator creates the tenant's worker schema just after the session turns active: until
    # then the table doesn't exist, which is "not yet", not a failure.
    wait_for(
        lambda: (
            sql(
                database_url,
                f'SELECT 1 FROM "tenant_{table.tenant}".session_entries '
                "WHERE session_id = %s AND text = %s AND speaker_name = 'Sister Vey'",
                (sid, text),
            )
            if sql(database_url, "SELECT to_regclass(%s)", (f'"tenant_{table.tenant}".session_entries',))[0][0]
            else None
        ),
        what="the spoken line",
    )
    resp = table.dm.post(f"/sessions/{sid}/npcs/speak", {"npc": "Sister Vey", "speech": "  "}, htmx=True)
    assert resp.status_code == 422 and soup(resp).select_one("#speech-error") is not None

    resp = table.dm.post(f"/sessions/{sid}/npcs/unmute-all", htmx=True)
    assert resp.status_code == 200 and not soup(resp).select(".npc-row.is-muted")
    resp = table.dm.post(f"/sessions/{sid}/npcs/mute-all")  # without JavaScript: back to the page
    assert resp.status_code == 303 and resp.headers["Location"] == f"/sessions/{sid}/live"
    assert all(n.muted for n in app.extensions["glyphoxa.gateway"].list_npcs(sid))
    actions = [
        r[0]
        for r in sql(
            database_url,
            "SELECT action FROM web.audit_log WHERE tenant_id = %s AND action LIKE 'session.npc_%%' ORDER BY id",
            (table.tenant,),
        )
    ]
    assert actions == ["session.npc_mute", "session.npc_speak", "session.npc_unmute_all", "session.npc_mute_all"]


@pytest.fixture
def management_only_gateway():
    """A real gRPC server without SessionWorkerService: live control answers UNIMPLEMENTED."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    client = GatewayClient(f"127.0.0.1:{port}", GATEWAY_SECRET, timeout=2.0, retries=0)
    yield client
    client.close()
    server.stop(0)


def test_unimplemented_live_control_disables_the_controls(app, table, database_url, management_only_gateway):
    sid = start(app, table)
    original = app.extensions["glyphoxa.gateway"]
    app.extensions["glyphoxa.gateway"] = management_only_gateway
    try:
        page = soup(table.dm.get(f"/sessions/{sid}/live"))
        panel = page.select_one("#npc-controls")
        assert "doesn't support live NPC control" in panel.select_one(".notice-warn").text
        assert panel.select_one("fieldset")["disabled"] is not None
        resp = table.dm.post(f"/sessions/{sid}/npcs/mute-all", htmx=True)
        assert "doesn't support live NPC control" in resp.headers["HX-Trigger"]
    finally:
        app.extensions["glyphoxa.gateway"] = original


def test_websocket_process_group_under_gunicorn(app, table, database_url, simulator, tmp_path):
    """deploy/gunicorn-ws.conf.py for real: gthread workers serve the socket (simple-websocket's
    gunicorn mode), lines stream, the end closes normally, a foreign Origin is refused."""
    import os
    import socket
    import subprocess
    import sys
    from pathlib import Path

    import websocket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ,
        "GLYPHOXA_ENV": "development",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "w" * 40,
        "GATEWAY_GRPC_ADDR": simulator.address,
        "GATEWAY_SECRET": GATEWAY_SECRET,
        "GLYPHOXA_GATEWAY_SIMULATOR": "0",
        "GUNICORN_WS_BIND": f"127.0.0.1:{port}",
        "WS_WORKERS": "1",
        "WS_THREADS": "20",
        "LOG_LEVEL": "WARNING",
        "GUNICORN_WS_CONTROL_SOCKET": str(tmp_path / "ws.ctl"),
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-c", "deploy/gunicorn-ws.conf.py", "wsgi:app"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    sid = start(app, table)
    url = f"ws://127.0.0.1:{port}/sessions/{sid}/ws?after=0"
    origin = f"http://127.0.0.1:{port}"

    def connect():
        assert proc.poll() is None, proc.stdout.read().decode()
        try:
            return websocket.create_connection(url, cookie=f"gx_session={table.dm.token}", origin=origin, timeout=20)
        except (ConnectionRefusedError, websocket.WebSocketException):
            return None

    try:
        reader = Reader(wait_for(connect, timeout=60, what="gunicorn to accept WebSockets"))
        reader.read_until(lambda r: len(r.line_ids()) >= 2, what="lines through gunicorn")
        app.extensions["glyphoxa.gateway"].stop_web_session(sid)
        reader.read_to_close()
        assert reader.close_code == 1000 and reader.line_ids() == db_line_ids(database_url, table.tenant, sid)
        with pytest.raises(websocket.WebSocketBadStatusException) as refused:
            websocket.create_connection(url, cookie=f"gx_session={table.dm.token}", origin="http://evil.example")
        assert refused.value.status_code == 403
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_open_socket_closes_when_its_sign_in_ends(app, server, table, as_role, database_url, monkeypatch):
    """Sign-out elsewhere, a suspended account and a suspended table each close the open socket
    with 1008; a viewer whose sign-in still stands keeps streaming."""
    from glyphoxa_htmx.services.auth import hash_token
    from glyphoxa_htmx.web import sessions as web
    from tests.conftest import Browser

    monkeypatch.setattr(web, "AUTH_RECHECK_SECONDS", 0.2)
    viewer = as_role("viewer", tenant_id=table.tenant)
    other_viewer = as_role("viewer", tenant_id=table.tenant)
    sid = start(app, table)
    path = f"/sessions/{sid}/ws?after=0"
    dm = Reader(server.connect(path, table.dm.token))
    watcher = Reader(server.connect(path, viewer.token))
    bystander = Reader(server.connect(path, other_viewer.token))
    dm.read_until(lambda r: r.line_ids(), what="the DM's first line")

    # The DM signs this browser out from another one (Account → sign-in sessions → Sign out).
    ((login_id,),) = sql(
        database_url, "SELECT id FROM web.login_sessions WHERE token_hash = %s", (hash_token(table.dm.token),)
    )
    elsewhere = Browser(app).login(table.dm.user)
    assert elsewhere.post(f"/account/sessions/{login_id}/revoke", htmx=True).status_code == 200
    dm.read_to_close()
    assert dm.close_code == 1008

    seen = len(watcher.line_ids())
    watcher.read_until(lambda r: len(r.line_ids()) > seen + 1, what="more lines for a viewer still signed in")
    sql(database_url, "UPDATE web.users SET status = 'suspended' WHERE id = %s", (viewer.user.id,))
    watcher.read_to_close()
    assert watcher.close_code == 1008

    seen = len(bystander.line_ids())
    bystander.read_until(lambda r: len(r.line_ids()) > seen + 1, what="more lines for the last viewer")
    sql(database_url, "UPDATE web.tenants SET status = 'suspended' WHERE id = %s", (table.tenant,))
    bystander.read_to_close()
    assert bystander.close_code == 1008
    wait_for(lambda: sid not in hub(app).stats(), what="the poller to stop after the last viewer left")


def test_polling_viewers_share_the_hub(app, table, as_role, database_url, monkeypatch):
    """The polling fallback is served by the hub: five viewers polling three times each cost
    one poll of the session between them, not one (or four) per request."""
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.services import live

    sid = start(app, table)
    wait_for(lambda: len(db_line_ids(database_url, table.tenant, sid)) >= 4, what="lines")
    first = db_line_ids(database_url, table.tenant, sid)[0]
    viewers = [table.dm] + [as_role("viewer", tenant_id=table.tenant) for _ in range(4)]
    h = hub(app)
    monkeypatch.setattr(h, "interval", 3600.0)  # one poll stays fresh for the whole test: no timing involved
    with app.app_context():
        engine = db.engine
    statements: list[str] = []
    request_modes: list[bool] = []  # autocommit of each statement a polling request ran

    def on_execute(conn, cursor, statement, parameters, *args):
        if (isinstance(parameters, dict) and parameters.get("sid") == sid) or "session_entries" in statement:
            statements.append(threading.current_thread().name)
        if not threading.current_thread().name.startswith("live-"):
            request_modes.append(conn.connection.dbapi_connection.autocommit)

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        cursors = {id(v): first for v in viewers}
        got: dict[int, list[int]] = {id(v): [] for v in viewers}
        for _ in range(3):
            for v in viewers:
                resp = v.get(f"/sessions/{sid}/lines?after={cursors[id(v)]}", htmx=True)
                assert resp.status_code == 200
                ids = [int(li["data-line-id"]) for li in soup(resp).select("[data-line-id]")]
                got[id(v)] += ids
                cursors[id(v)] = ids[-1] if ids else cursors[id(v)]
        stats = h.stats().get(sid, {})
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)
    by_requests = [name for name in statements if not name.startswith("live-")]
    assert by_requests == [], f"{len(by_requests)} statements on the session's lines ran in requests"
    # A poll only reads: no BEGIN, and no ROLLBACK that would make psycopg drop the statements it
    # prepared on the pooled connection (what the next pages on it run).
    assert request_modes and all(request_modes)
    assert set(statements) == {stats["thread"]}  # the watch's one poller thread did it all
    assert len(statements) == stats["polls"] <= 2  # one tick (two statements if the table was new to it)
    expected = [i for i in db_line_ids(database_url, table.tenant, sid) if i > first]
    for ids in got.values():
        assert ids and ids == expected[: len(ids)]  # in order, no gaps, no duplicates

    # Fresh lines still arrive (at the normal tick), and the watch retires once nobody polls.
    monkeypatch.setattr(h, "interval", 0.2)
    monkeypatch.setattr(live, "POLL_IDLE_TIMEOUT", 0.5)
    last = max(max(ids) for ids in got.values())

    def newer():
        resp = table.dm.get(f"/sessions/{sid}/lines?after={last}", htmx=True)
        return [int(li["data-line-id"]) for li in soup(resp).select("[data-line-id]")]

    assert wait_for(newer, what="a line newer than the first poll")[0] > last
    wait_for(lambda: sid not in h.stats(), what="the watch to retire after the last poll")
