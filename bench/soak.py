"""Soak: mixed page traffic, session start/stop, NPC controls and live WebSockets against the
real serving setup for a long time, printing once a minute what must stay flat: worker RSS, open
database connections, error counts. Prints figures; asserts nothing.

    .venv/bin/python bench/soak.py                  # 30 minutes
    SOAK_MINUTES=5 SOAK_CLIENTS=12 SOAK_SOCKETS=20 .venv/bin/python bench/soak.py

It creates a throwaway database `glyphoxa_soak_<pid>` on the system PostgreSQL (or the embedded
one), runs the gateway simulator as its own process (`glyphoxa-web gateway-sim`), serves pages with
gunicorn (deploy/gunicorn.conf.py, worker recycling off so a leak would show) and the WebSockets
with the second group (deploy/gunicorn-ws.conf.py), and drives both from threads on loopback.
Self-contained on purpose: it shares no code with bench/run.py.
"""

from __future__ import annotations

import collections
import os
import random
import re
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
import requests
import websocket  # websocket-client (test extra)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from glyphoxa_htmx import embedded  # noqa: E402

MINUTES = float(os.environ.get("SOAK_MINUTES", "30"))
CLIENTS = int(os.environ.get("SOAK_CLIENTS", "8"))  # page-traffic threads
SOCKETS = int(os.environ.get("SOAK_SOCKETS", "20"))  # live WebSocket viewers
TENANTS = int(os.environ.get("SOAK_TENANTS", "8"))
REPORT_EVERY = float(os.environ.get("SOAK_REPORT_SECONDS", "60"))
SECRET = "soak-" + secrets.token_hex(8)
VENV_BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.2)
    raise SystemExit(f"nothing listens on {port} after {timeout}s")


def server_url() -> str:
    if embedded.reachable(embedded.SYSTEM_URL):
        return embedded.SYSTEM_URL
    return embedded.embedded_server_url(ROOT / "instance" / "pgsoak")


# --------------------------------------------------------------------------- setup


def prepare(database_url: str, gateway_addr: str) -> list[dict]:
    """Migrate, then per tenant: a DM, a campaign with NPCs, the tenant on the gateway, and a
    sign-in token. Returns [{tenant, campaign, guild, token}]."""
    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.bootstrap import migrate_db
    from glyphoxa_htmx.config import load_settings
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import Campaign, NpcDefinition, Tenant, User
    from glyphoxa_htmx.services import auth

    app = create_app(
        load_settings(
            environ={},
            database_url=database_url,
            secret_key="s" * 40,
            log_level="ERROR",
            log_json=False,
            seed_demo=False,
            gateway_simulator=False,
            gateway_grpc_addr=gateway_addr,
            gateway_secret=SECRET,
        )
    )
    migrate_db(app)
    client = app.extensions["glyphoxa.gateway"]
    tables = []
    with app.test_request_context():
        for i in range(TENANTS):
            tenant = f"soak_{i}_{uuid.uuid4().hex[:6]}"
            guild = str(100000000000000000 + random.randrange(10**17))
            client.create_tenant(tenant, license_tier="shared", guild_ids=[guild])
            campaign = "c_" + uuid.uuid4().hex[:10]
            db.session.add(Tenant(id=tenant, name=f"Soak table {i}", status="active"))
            user = User(
                id=str(uuid.uuid4()),
                tenant_id=tenant,
                name=f"DM {i}",
                role="dm",
                discord_id="soak-" + secrets.token_hex(6),
                status="active",
            )
            db.session.add(user)
            db.session.add(Campaign(id=campaign, tenant_id=tenant, name=f"Campaign {i}"))
            db.session.flush()
            for name in ("Grimble Ashfoot", "Sister Vey"):
                db.session.add(
                    NpcDefinition(
                        id=str(uuid.uuid4()),
                        tenant_id=tenant,
                        campaign_id=campaign,
                        name=name,
                        personality="A soak-test NPC.",
                    )
                )
            db.session.commit()
            token = auth.start_session(db.session.get(User, user.id), ip="127.0.0.1", user_agent="soak")
            tables.append({"tenant": tenant, "campaign": campaign, "guild": guild, "token": token})
    client.close()
    with app.app_context():
        db.engine.dispose()  # the set-up connection must not count as the app's
    return tables


# --------------------------------------------------------------------------- load


class Stats:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: collections.Counter[str] = collections.Counter()

    def add(self, key: str, n: int = 1) -> None:
        with self.lock:
            self.counts[key] += n

    def snapshot(self) -> collections.Counter:
        with self.lock:
            return collections.Counter(self.counts)


PAGES = [
    "/dashboard",
    "/sessions",
    "/campaigns",
    "/team",
    "/settings",
    "/knowledge",
    "/account/sessions",
    "/sessions/search?q=the",
    "/campaigns/{campaign}",
    "/sessions/new",
]
CSRF_RE = re.compile(r'"X-CSRFToken": "([^"]+)"')


def page_client(base: str, table: dict, stats: Stats, stop: threading.Event) -> None:
    s = requests.Session()
    s.cookies.set("gx_session", table["token"])
    csrf = None
    while not stop.is_set():
        roll = random.random()
        try:
            if csrf is None:
                r = s.get(base + "/dashboard", timeout=30)
                m = CSRF_RE.search(r.text)
                csrf = m.group(1) if m else None
            if roll < 0.80:
                path = random.choice(PAGES).format(campaign=table["campaign"])
                r = s.get(base + path, timeout=30, allow_redirects=False)
            elif roll < 0.90:  # a session detail / transcript of this table, if any
                r = s.get(base + "/sessions", timeout=30)
                ids = re.findall(r'href="/sessions/([0-9a-f-]{36})"', r.text)
                if ids:
                    sid = random.choice(ids)
                    r = s.get(base + f"/sessions/{sid}" + random.choice(["", "/transcript", "/live"]), timeout=30)
            elif roll < 0.95:  # start (refused while one runs: that is a 422 with the form, not an error)
                r = s.post(
                    base + "/sessions/new",
                    data={
                        "campaign_id": table["campaign"],
                        "guild_id": table["guild"],
                        "channel_id": str(900000000000000000 + random.randrange(10**17)),
                    },
                    headers={"X-CSRFToken": csrf or "", "HX-Request": "true"},
                    timeout=30,
                )
                stats.add("starts")
            else:  # stop or control the running session
                r = s.get(base + "/sessions?state=active", timeout=30)
                ids = re.findall(r'href="/sessions/([0-9a-f-]{36})"', r.text)
                if ids:
                    sid = ids[0]
                    if random.random() < 0.3:
                        r = s.post(
                            base + f"/sessions/{sid}/stop",
                            headers={"X-CSRFToken": csrf or "", "HX-Request": "true"},
                            timeout=30,
                        )
                        stats.add("stops")
                    else:
                        r = s.post(
                            base + f"/sessions/{sid}/npcs/mute",
                            data={"npc": "Sister Vey"},
                            headers={"X-CSRFToken": csrf or "", "HX-Request": "true"},
                            timeout=30,
                        )
                        stats.add("controls")
            stats.add("requests")
            if r.status_code >= 500:
                stats.add(f"http_{r.status_code}")
            elif r.status_code in (400, 401, 403, 404):
                stats.add(f"http_{r.status_code}")
        except requests.RequestException as exc:
            stats.add("client_errors")
            stats.add(f"exc_{type(exc).__name__}")
            time.sleep(0.2)


class LiveSessions:
    """Live session ids per tenant, refreshed by one thread (one driver connection, not one per viewer)."""

    def __init__(self, database_url: str, stats: Stats) -> None:
        self.database_url, self.stats = database_url, stats
        self.by_tenant: dict[str, list[str]] = {}

    def run(self, stop: threading.Event) -> None:
        while not stop.is_set():
            try:
                with psycopg.connect(self.database_url, application_name="soak-driver", connect_timeout=5) as conn:
                    while not stop.is_set():
                        rows = conn.execute(
                            "SELECT tenant_id, id FROM public.sessions WHERE state <> 'ended'"
                        ).fetchall()
                        conn.rollback()
                        fresh: dict[str, list[str]] = {}
                        for tenant, sid in rows:
                            fresh.setdefault(tenant, []).append(sid)
                        self.by_tenant = fresh
                        stop.wait(2.0)
            except psycopg.Error:
                self.stats.add("driver_db_errors")
                stop.wait(2.0)


def live_viewer(ws_base: str, live: LiveSessions, tables: list[dict], stats: Stats, stop: threading.Event) -> None:
    while not stop.is_set():
        table = random.choice(tables)
        ids = live.by_tenant.get(table["tenant"])
        if not ids:
            stop.wait(1.0)
            continue
        row = (random.choice(ids),)
        try:
            ws = websocket.create_connection(
                f"{ws_base}/sessions/{row[0]}/ws?after=0",
                timeout=30,
                cookie=f"gx_session={table['token']}",
                origin=ws_base.replace("ws://", "http://"),
            )
        except Exception as exc:  # noqa: BLE001
            stats.add("ws_connect_errors")
            stats.add(f"ws_exc_{type(exc).__name__}")
            stop.wait(1.0)
            continue
        stats.add("ws_opened")
        try:
            end = time.monotonic() + random.uniform(20, 120)  # viewers come and go
            while not stop.is_set() and time.monotonic() < end:
                try:
                    opcode, data = ws.recv_data(control_frame=True)
                except websocket.WebSocketTimeoutException:
                    continue
                if opcode == websocket.ABNF.OPCODE_CLOSE:
                    code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
                    stats.add(f"ws_close_{code}")
                    break
                stats.add("ws_frames")
        except websocket.WebSocketException:
            stats.add("ws_dropped")
        finally:
            try:
                ws.close()
            except Exception:  # noqa: BLE001
                pass


# --------------------------------------------------------------------------- measuring


def children(pid: int) -> list[int]:
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            pass
    return out


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class DbMonitor:
    """One connection held for the whole run (a full server must not cost us the figures)."""

    def __init__(self, server: str, dbname: str) -> None:
        self.server, self.dbname, self.conn = server, dbname, None

    def connections(self) -> dict[str, int] | None:
        try:
            if self.conn is None or self.conn.closed:
                self.conn = psycopg.connect(
                    self.server, autocommit=True, application_name="soak-monitor", connect_timeout=5
                )
            rows = self.conn.execute(
                "SELECT coalesce(nullif(application_name, ''), '?'), count(*) "
                "FROM pg_stat_activity WHERE datname = %s GROUP BY 1",
                (self.dbname,),
            ).fetchall()
            return {name: n for name, n in rows}
        except psycopg.Error:
            self.conn = None
            return None


# --------------------------------------------------------------------------- main


def _interrupt(signum, frame):  # SIGTERM (and SIGINT in a background job) still cleans up
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGTERM, _interrupt)
    signal.signal(signal.SIGINT, _interrupt)
    server = server_url()
    dbname = f"glyphoxa_soak_{os.getpid()}"
    database_url = embedded.recreate_database(server, dbname)
    procs: list[subprocess.Popen] = []
    stop = threading.Event()
    try:
        from glyphoxa_htmx.simulator.ddl import ensure_public_schema

        with psycopg.connect(database_url, autocommit=True) as conn:
            ensure_public_schema(conn)
        gw_port, web_port, ws_port = free_port(), free_port(), free_port()
        env = dict(os.environ, DATABASE_URL=database_url, LOG_LEVEL="WARNING", LOG_JSON="1")
        procs.append(
            subprocess.Popen(
                [
                    str(VENV_BIN / "glyphoxa-web"),
                    "gateway-sim",
                    "--db",
                    database_url,
                    "--listen",
                    f"127.0.0.1:{gw_port}",
                    "--secret",
                    SECRET,
                    "--activation-delay",
                    "1",
                    "--line-interval",
                    "1.5",
                    "--heartbeat-interval",
                    "5",
                ],
                env=env,
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
        wait_port(gw_port)
        tables = prepare(database_url, f"127.0.0.1:{gw_port}")
        app_env = dict(
            env,
            DATABASE_URL=database_url + "?application_name=glyphoxa-web",
            SECRET_KEY="s" * 40,
            GATEWAY_GRPC_ADDR=f"127.0.0.1:{gw_port}",
            GATEWAY_SECRET=SECRET,
            GLYPHOXA_GATEWAY_SIMULATOR="0",
            GLYPHOXA_SEED_DEMO="0",
            WEB_CONCURRENCY="2",
            GUNICORN_THREADS="8",
            GUNICORN_BIND=f"127.0.0.1:{web_port}",
            GUNICORN_WS_BIND=f"127.0.0.1:{ws_port}",
            WS_WORKERS="1",
            WS_THREADS="200",
            METRICS_ENABLED="0",
            GUNICORN_CONTROL_SOCKET=f"/tmp/{dbname}-web.ctl",
            GUNICORN_WS_CONTROL_SOCKET=f"/tmp/{dbname}-ws.ctl",
        )
        gunicorn = str(VENV_BIN / "gunicorn")
        web = subprocess.Popen(
            [gunicorn, "-c", "deploy/gunicorn.conf.py", "--max-requests", "0", "wsgi:app"],
            env=app_env,
            cwd=ROOT,
            stderr=subprocess.DEVNULL,
        )
        ws = subprocess.Popen(
            [gunicorn, "-c", "deploy/gunicorn-ws.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=dict(app_env, DATABASE_URL=database_url + "?application_name=glyphoxa-web-ws"),
            stderr=subprocess.DEVNULL,
        )
        procs += [web, ws]
        wait_port(web_port)
        wait_port(ws_port)
        time.sleep(2)
        base, ws_base = f"http://127.0.0.1:{web_port}", f"ws://127.0.0.1:{ws_port}"
        stats = Stats()
        threads = [
            threading.Thread(target=page_client, args=(base, tables[i % len(tables)], stats, stop), daemon=True)
            for i in range(CLIENTS)
        ]
        live = LiveSessions(database_url, stats)
        threads.append(threading.Thread(target=live.run, args=(stop,), daemon=True))
        threads += [
            threading.Thread(target=live_viewer, args=(ws_base, live, tables, stats, stop), daemon=True)
            for _ in range(SOCKETS)
        ]
        for t in threads:
            t.start()
        print(
            f"soak: {MINUTES:g} min, {CLIENTS} page clients, {SOCKETS} live viewers, {TENANTS} tables; "
            f"pages pid {web.pid}, sockets pid {ws.pid}",
            flush=True,
        )
        print(
            "min | requests  5xx  4xx  client_err | ws_opened frames ws_err | page workers RSS MB | ws worker RSS MB | "
            "DB connections (by application)",
            flush=True,
        )
        started = time.monotonic()
        last = collections.Counter()
        minute = 0
        monitor = DbMonitor(server, dbname)
        while time.monotonic() - started < MINUTES * 60:
            stop.wait(REPORT_EVERY)
            minute += 1
            now = stats.snapshot()
            delta = now - last
            last = now
            err5 = sum(v for k, v in delta.items() if k.startswith("http_5"))
            err4 = sum(v for k, v in delta.items() if k.startswith("http_4"))
            page_rss = " ".join(f"{rss_mb(p):.0f}" for p in sorted(children(web.pid)))
            ws_rss = " ".join(f"{rss_mb(p):.0f}" for p in sorted(children(ws.pid)))
            conns = monitor.connections()
            conn_text = (
                "n/a (server full)"
                if conns is None
                else f"total={sum(conns.values())} " + " ".join(f"{k}={v}" for k, v in sorted(conns.items()))
            )
            print(
                f"{minute:3d} | {delta['requests']:8d} {err5:4d} {err4:4d} {delta['client_errors']:10d} | "
                f"{delta['ws_opened']:9d} {delta['ws_frames']:6d} "
                f"{delta['ws_connect_errors'] + delta['ws_dropped']:6d} | {page_rss:>19} | {ws_rss:>16} | "
                f"{conn_text}",
                flush=True,
            )
        stop.set()
        total = stats.snapshot()
        print("totals: " + ", ".join(f"{k}={v}" for k, v in sorted(total.items())), flush=True)
    finally:
        stop.set()
        for p in reversed(procs):
            p.send_signal(signal.SIGTERM)
        for p in reversed(procs):
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        with psycopg.connect(embedded.libpq_url(server), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    main()
