"""Benchmarks: queries per page and throughput/latency under concurrent signed-in users.

Prints figures; asserts nothing (speed is never a timed assertion in the tests).

    make bench                       # defaults
    BENCH_USERS=200 BENCH_SECONDS=20 make bench

It creates a throwaway database `glyphoxa_bench_<pid>` on the system PostgreSQL (or the embedded
one), seeds many tenants, serves the app with gunicorn (deploy/gunicorn.conf.py, gthread) and
drives it from a thread pool of HTTP clients on loopback. Bounded in count and time.
"""

from __future__ import annotations

import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from glyphoxa_htmx import embedded  # noqa: E402

USERS = int(os.environ.get("BENCH_USERS", "100"))
TENANTS = int(os.environ.get("BENCH_TENANTS", "200"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "10"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
PAGES = [p for p in os.environ.get(
    "BENCH_PAGES",
    "/dashboard,/campaigns,/campaigns/cmp_sunken_crown,/sessions,/sessions/search?q=chapel,/knowledge,/team,/settings,"
    "/usage,/billing",
).split(",") if p]


def server_url() -> str:
    if embedded.reachable(embedded.SYSTEM_URL):
        return embedded.SYSTEM_URL
    return embedded.embedded_server_url(ROOT / "instance" / "pgbench")


def build_app(database_url: str):
    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.bootstrap import ensure_gateway_tables_for_dev, migrate_db
    from glyphoxa_htmx.config import load_settings

    app = create_app(load_settings(environ={}, database_url=database_url, secret_key="b" * 40, log_level="ERROR",
                                   log_json=False, seed_demo=False, gateway_simulator=False))
    migrate_db(app)
    ensure_gateway_tables_for_dev(app)
    return app


def seed(app) -> list[str]:
    """TENANTS tenants, USERS users spread over them, plus the demo table; returns session tokens,
    the demo owner's first (a table with a campaign, NPCs, past sessions and a knowledge graph)."""
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import Tenant, User
    from glyphoxa_htmx.seed import seed_demo
    from glyphoxa_htmx.services import auth

    tokens = []
    with app.test_request_context():
        seed_demo()
        demo_owner = db.session.query(User).filter_by(discord_id="dev-demo-dm").one()
        tokens.append(auth.start_session(demo_owner, ip="127.0.0.1", user_agent="bench"))
        tenants = [f"bench_{i}" for i in range(TENANTS)]
        db.session.add_all(Tenant(id=t, name=f"Bench table {i}") for i, t in enumerate(tenants))
        users = [User(id=str(uuid.uuid4()), tenant_id=tenants[i % TENANTS], name=f"Bench user {i}",
                      role="tenant_owner" if i < TENANTS else "dm", discord_id=f"bench-{i}") for i in range(USERS)]
        db.session.add_all(users)
        db.session.commit()
        for user in users:
            tokens.append(auth.start_session(user, ip="127.0.0.1", user_agent="bench"))
    return tokens


def queries_per_page(app, token: str) -> dict[str, int]:
    from sqlalchemy import event

    from glyphoxa_htmx.extensions import db

    counts: dict[str, int] = {}
    client = app.test_client()
    client.set_cookie("gx_session", token)
    with app.app_context():
        engine = db.engine
    counter = {"n": 0}

    def _count(*_args, **_kw):
        counter["n"] += 1

    event.listen(engine, "before_cursor_execute", _count)
    try:
        for page in PAGES:
            client.get(page)  # warm caches (templates, reflection)
            counter["n"] = 0
            status = client.get(page).status_code
            counts[page] = counter["n"] if status == 200 else -status
    finally:
        event.remove(engine, "before_cursor_execute", _count)
    return counts


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def load(base: str, tokens: list[str]) -> None:
    latencies: dict[str, list[float]] = {p: [] for p in PAGES}
    errors = {"n": 0}
    lock = threading.Lock()
    stop_at = time.monotonic() + SECONDS

    def worker(i: int) -> None:
        session = requests.Session()
        session.cookies.set("gx_session", tokens[i % len(tokens)])
        n = 0
        while time.monotonic() < stop_at:
            page = PAGES[n % len(PAGES)]
            n += 1
            t0 = time.perf_counter()
            try:
                ok = session.get(base + page, timeout=10).status_code == 200
            except requests.RequestException:
                ok = False
            dt = time.perf_counter() - t0
            with lock:
                if ok:
                    latencies[page].append(dt)
                else:
                    errors["n"] += 1

    t0 = time.monotonic()
    with ThreadPoolExecutor(CONCURRENCY) as pool:
        list(pool.map(worker, range(CONCURRENCY)))
    elapsed = time.monotonic() - t0
    total = sum(len(v) for v in latencies.values())
    print(f"\nload: {CONCURRENCY} concurrent signed-in clients for {elapsed:.1f}s against gunicorn (gthread)")
    print(f"  {total} ok requests, {errors['n']} errors, {total / elapsed:.0f} req/s")
    print(f"  {'page':<34}{'n':>7}{'p50 ms':>10}{'p95 ms':>10}{'p99 ms':>10}")
    for page, values in latencies.items():
        if not values:
            print(f"  {page:<34}{0:>7}")
            continue
        values.sort()
        pct = lambda q: values[min(len(values) - 1, int(q * len(values)))] * 1000  # noqa: E731
        print(f"  {page:<34}{len(values):>7}{statistics.median(values) * 1000:>10.1f}{pct(.95):>10.1f}{pct(.99):>10.1f}")


def main() -> None:
    server = server_url()
    dbname = f"glyphoxa_bench_{os.getpid()}"
    database_url = embedded.recreate_database(server, dbname)
    proc = None
    try:
        app = build_app(database_url)
        available = [p for p in PAGES if app.url_map.bind("localhost").test(p.split("?")[0], "GET")]
        PAGES[:] = available
        tokens = seed(app)
        print(f"seeded {TENANTS} tenants, {USERS} users (+ demo table) in {dbname}")
        print("\nSQL queries per page (signed-in owner; a fixed number per page, however much the table holds):")
        full, empty = queries_per_page(app, tokens[0]), queries_per_page(app, tokens[-1])
        print(f"  {'page':<34}{'demo table':>11}{'empty table':>12}   (negative: that HTTP status)")
        for page in PAGES:
            print(f"  {page:<34}{full[page]:>11}{empty[page]:>12}")
        # Under load every client requests pages that exist for every table.
        PAGES[:] = [p for p in PAGES if empty[p] >= 0]
        port = free_port()
        env = {**os.environ, "DATABASE_URL": database_url, "SECRET_KEY": "b" * 40, "GUNICORN_BIND": f"127.0.0.1:{port}",
               "LOG_LEVEL": "ERROR", "GLYPHOXA_GATEWAY_SIMULATOR": "0", "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2")}
        gunicorn = Path(sys.executable).with_name("gunicorn")
        proc = subprocess.Popen([str(gunicorn), "-c", "deploy/gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        for _ in range(150):
            try:
                if requests.get(base + "/healthz", timeout=1).ok:
                    break
            except requests.RequestException:
                time.sleep(0.2)
        load(base, tokens)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(timeout=20)
        from glyphoxa_htmx.extensions import db

        try:
            with app.app_context():
                db.engine.dispose()
        except Exception:  # noqa: BLE001
            pass
        with psycopg.connect(embedded.libpq_url(server), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')


if __name__ == "__main__":
    main()
