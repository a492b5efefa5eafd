"""Benchmarks: every hot page against the floor, queries per page, virtual users, WebSocket viewers.

Prints figures; asserts nothing (speed is never a timed assertion in the tests).

    make bench                                   # everything, defaults below
    BENCH_SERVER_LOG=/tmp/gx.log make bench      # also keep the served apps' own output
    BENCH_PARTS=queries,pages make bench         # only some parts
    BENCH_TENANTS=200 BENCH_SECONDS=5 make bench # smaller and quicker

Parts (BENCH_PARTS, comma-separated; default all):
  queries  SQL statements per page and fragment (a seeded tenant and an empty one)
  large    every page and some searches on one large tenant (40,000 transcript lines, 300 NPCs,
           2,000 knowledge entities) against a small one: wall ms per request in-process, database
           included, and statements per page (a cost that grows with the table shows here)
  cpu      Python CPU ms per request of each page and fragment, in-process and single-threaded, and
           its ratio to the floor's: the steadiest figure when the machine is shared; each htmx
           fragment also against the full page at the fragment's own URL (what the block saves);
           then the VU page mix over every seeded tenant, twice, with PostgreSQL's CPU too
  pages    wrk against each page and htmx fragment, interleaved with the floor (bench/floor.py, same
           gunicorn settings, one primary-key read + a page-sized render): BENCH_SECONDS per cell
           and server in BENCH_SLICES turns (default 4) alternating floor and page, so a slow spell
           of a shared machine lands on both; req/s, p50/p99 and the app/floor ratio at 16 and 64
           connections (BENCH_CONNECTIONS)
  vus      asyncio virtual users (BENCH_VUS, default 1000,3000): each signs in with its own cookie,
           browses the hot pages with 1-5 s think time; served req/s, p50/p99, errors, 503s, and
           the CPU per answered request of the app's workers, PostgreSQL and the driver itself.
           Each count runs on the same server in turn, so `BENCH_VUS=1000,1000` shows a fresh
           server (cold caches, new database backends) and then one that has served for a while
  ws       WebSocket viewers (BENCH_VIEWERS, default 2000) over BENCH_LIVE live sessions against the
           WebSocket process group (deploy/gunicorn-ws.conf.py); one line per session every 2 s;
           delivery p50/p99, missed, duplicated, handshake failures, the WS workers' database
           statements per second (per live session and per viewer), worker memory

It creates a throwaway database `glyphoxa_bench_<pid>` on the system PostgreSQL (or the embedded
one), seeds BENCH_TENANTS tenants with COPY (bench/seed.py), serves the app with gunicorn
(deploy/gunicorn.conf.py, gthread) on loopback and drops the database at the end. Every load is
bounded: wrk runs BENCH_SECONDS per measurement, the VU and WS drivers BENCH_VU_SECONDS /
BENCH_WS_SECONDS, all on 127.0.0.1.

Needs Debian's `wrk` (apt-get install -y wrk) for the page table; without it that part is skipped.
"""

from __future__ import annotations

import asyncio
import base64
import os
import random
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import requests

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from glyphoxa_htmx import embedded  # noqa: E402

TENANTS = int(os.environ.get("BENCH_TENANTS", "1000"))
SECONDS = float(os.environ.get("BENCH_SECONDS", "8"))
SLICES = int(os.environ.get("BENCH_SLICES", "4"))  # floor/page turns per wrk cell (each >= 1 s)
CONNECTIONS = [int(c) for c in os.environ.get("BENCH_CONNECTIONS", "16,64").split(",") if c]
PARTS = set(os.environ.get("BENCH_PARTS", "queries,large,cpu,pages,vus,ws").split(","))
VUS = [int(v) for v in os.environ.get("BENCH_VUS", "1000,3000").split(",") if v]
VU_SECONDS = float(os.environ.get("BENCH_VU_SECONDS", "40"))
# Users arrive over the first 5 s and each first request resolves a sign-in nobody has cached yet;
# the table also shows latency from this many seconds on (every figure over the whole run stays).
RAMP_SECONDS = 10.0
VIEWERS = int(os.environ.get("BENCH_VIEWERS", "2000"))
LIVE = int(os.environ.get("BENCH_LIVE", "50"))
WS_SECONDS = float(os.environ.get("BENCH_WS_SECONDS", "30"))
ONLY = [p for p in os.environ.get("BENCH_PAGES", "").split(",") if p]

# name -> (path template, htmx target or None). {campaign}/{session}/{npc} come from each tenant.
PAGES: dict[str, tuple[str, str | None]] = {
    "dashboard": ("/dashboard", None),
    "dashboard block": ("/dashboard", "content"),
    "campaigns": ("/campaigns", None),
    "campaigns block": ("/campaigns?q=campaign", "results"),
    "campaign": ("/campaigns/{campaign}", None),
    "sessions": ("/sessions", None),
    "sessions block": ("/sessions?campaign={campaign}", "results"),
    "session detail": ("/sessions/{session}", None),
    "transcript": ("/sessions/{session}/transcript", None),
    "transcript block": ("/sessions/{session}/transcript?q=salt", "lines"),
    "search": ("/sessions/search?q=chapel", None),
    "search block": ("/sessions/search?q=lantern", "results"),
    "knowledge": ("/knowledge/{campaign}", None),
    "knowledge block": ("/knowledge/{campaign}?q=a", "entities"),
    "npc editor": ("/npcs/{npc}", None),
    "usage": ("/usage", None),
    "billing": ("/billing", None),
}
ALL_PAGES = dict(PAGES)  # the VU mix always browses every hot page, whatever BENCH_PAGES picks
if ONLY:
    PAGES = {k: v for k, v in PAGES.items() if k in ONLY}
VU_PAGES = [
    "dashboard",
    "campaigns",
    "campaign",
    "sessions",
    "session detail",
    "transcript",
    "search",
    "knowledge",
    "npc editor",
]


def server_url() -> str:
    """``BENCH_DATABASE_SERVER`` if set (e.g. a throwaway cluster with pg_stat_statements, see
    ``StatementCosts``), else the local server, else an embedded one."""
    if os.environ.get("BENCH_DATABASE_SERVER"):
        return os.environ["BENCH_DATABASE_SERVER"]
    if embedded.reachable(embedded.SYSTEM_URL):
        return embedded.SYSTEM_URL
    return embedded.embedded_server_url(ROOT / "instance" / "pgbench")


def build_app(database_url: str):
    """The app as production configures it, Redis included (rate limits and the sign-in cache's
    cross-process messages; without Redis a cached sign-in lives 3 s instead of 30 s and most
    in-process requests would resolve it again)."""
    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.bootstrap import ensure_gateway_tables_for_dev, migrate_db
    from glyphoxa_htmx.config import load_settings

    app = create_app(
        load_settings(
            environ={},
            database_url=database_url,
            secret_key="b" * 40,
            log_level="ERROR",
            log_json=False,
            seed_demo=False,
            gateway_simulator=False,
            redis_url=bench_redis_url(),
        )
    )
    migrate_db(app)
    ensure_gateway_tables_for_dev(app)
    return app


def empty_tenant(app) -> str:
    """A table with nothing in it (for the constant-queries check); returns its owner's token."""
    import uuid

    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import Campaign, Tenant, User
    from glyphoxa_htmx.services import auth

    with app.test_request_context():
        db.session.add(Tenant(id="bench_empty", name="Empty table"))
        db.session.add(Campaign(id="cmp_empty", tenant_id="bench_empty", name="Empty"))
        user = User(
            id=str(uuid.uuid4()),
            tenant_id="bench_empty",
            name="Empty owner",
            role="tenant_owner",
            discord_id="bench-empty",
        )
        db.session.add(user)
        db.session.commit()
        return auth.start_session(user, ip="127.0.0.1", user_agent="bench")


def fill(path: str, ids: dict) -> str:
    return path.format(**ids)


# --------------------------------------------------------------------------- queries per page


def signed_in(app, token: str):
    """A test client carrying a seeded user's sign-in cookie."""
    from glyphoxa_htmx.web.auth import COOKIE

    client = app.test_client()
    client.set_cookie(COOKIE, token)
    return client


def queries_per_page(app, ids: dict, token: str, pages: dict | None = None) -> dict[str, int]:
    from sqlalchemy import event

    from glyphoxa_htmx.extensions import db

    counts: dict[str, int] = {}
    client = signed_in(app, token)
    with app.app_context():
        engine = db.engine
    counter = {"n": 0}

    def _count(*_args, **_kw):
        counter["n"] += 1

    event.listen(engine, "before_cursor_execute", _count)
    try:
        for name, (path, target) in (pages or PAGES).items():
            headers = {"HX-Request": "true", "HX-Target": target} if target else {}
            url = fill(path, ids)
            client.get(url, headers=headers)  # warm caches (templates, reflection)
            counter["n"] = 0
            status = client.get(url, headers=headers).status_code
            counts[name] = counter["n"] if status == 200 else -status
    finally:
        event.remove(engine, "before_cursor_execute", _count)
    return counts


# --------------------------------------------------------------------------- a large table

# One tenant the size a weekly table reaches in a couple of years (bench/seed.py large_text: a Zipf
# vocabulary, a name only the earliest sessions use): what the many small tables can't show is a
# statement whose cost grows with the table (issue 18: "queries per page stay constant in list
# size"; a search plan that scanned the whole table for a name from an earlier arc took 0.26 s).
LARGE = {
    "npcs_each": 300,
    "sessions_each": 100,
    "lines_per_session": 400,
    "entities_each": 2000,
    "links_per_entity": 2,
}
LARGE_RUNS = 15


def large_table(app, database_url: str, small: dict) -> None:
    from seed import EARLIER_ARC, LARGE_WORDS, large_text, seed

    from glyphoxa_htmx.embedded import libpq_url

    large = next(iter(seed(libpq_url(database_url), 1, prefix="large", text=large_text, **LARGE).values()))
    common, second, rare = LARGE_WORDS[0], LARGE_WORDS[1], LARGE_WORDS[500]
    pages = {
        **PAGES,
        "transcript, end": ("/sessions/{session}/transcript?before=4611686018427387904", None),
        "search, common word": (f"/sessions/search?q={common}", None),
        "search, rare word": (f"/sessions/search?q={rare}", None),
        "search, earlier arc": (f"/sessions/search?q={EARLIER_ARC}", None),
        "search, two words": (f"/sessions/search?q={common}+{second}", None),
        "search, phrase": (f"/sessions/search?q=%22{common}+{second}%22", None),
        "search, older page": (f"/sessions/search?q={common}&before=1000", None),
    }
    statements = {
        name: queries_per_page(app, ids, ids["token"], pages) for name, ids in (("small", small), ("large", large))
    }

    def wall_ms(ids: dict, path: str, target: str | None) -> float:
        client, url = signed_in(app, ids["token"]), fill(path, ids)
        headers = {"HX-Request": "true", "HX-Target": target} if target else {}
        times = []
        for i in range(LARGE_RUNS + 2):
            t0 = time.perf_counter()
            assert client.get(url, headers=headers).status_code == 200, url
            if i >= 2:  # (two to warm the caches)
                times.append((time.perf_counter() - t0) * 1000)
        return statistics.median(times)

    n_lines = LARGE["sessions_each"] * LARGE["lines_per_session"]
    print(
        f"\nA large table (one tenant: {LARGE['sessions_each']} sessions × {LARGE['lines_per_session']} = "
        f"{n_lines:,} lines, {LARGE['npcs_each']} NPCs, {LARGE['entities_each']:,} entities with "
        f"{LARGE['links_per_entity']} links each) against a small one: wall ms per request in-process, "
        f"database included (median of {LARGE_RUNS}), and SQL statements"
    )
    print(f"  {'page':<22}{'small ms':>9}{'large ms':>9}{'×':>7}{'statements':>12}")
    for name, (path, target) in pages.items():
        a = wall_ms(small, path, target)
        b = wall_ms(large, path, target)
        print(
            f"  {name:<22}{a:>9.2f}{b:>9.2f}{b / a:>6.1f}×{statements['small'][name]:>7} / {statements['large'][name]}"
        )


# --------------------------------------------------------------------------- CPU per request


def cpu_per_request(app, seeded: dict, database_url: str) -> dict[str, float]:
    """Python CPU ms per request, in-process and single-threaded (the test client, no network):
    the steadiest cost figure on a busy machine. The floor app is measured the same way."""
    os.environ.setdefault("DATABASE_URL", database_url)
    import floor as floor_module

    tenants = list(seeded.items())[:50]
    n = int(os.environ.get("BENCH_CPU_REQUESTS", "200"))

    def run(client_for, urls) -> float:
        best = float("inf")
        for _ in range(3):  # best of three: the least disturbed by the neighbours
            t0 = time.process_time()
            for i in range(n):
                client, url, headers = client_for(i), urls[i % len(urls)], {}
                if isinstance(url, tuple):
                    url, headers = url
                assert client.get(url, headers=headers).status_code == 200, url
            best = min(best, (time.process_time() - t0) * 1000 / n)
        return best

    clients = [signed_in(app, ids["token"]) for _tid, ids in tenants]
    floor_client = floor_module.app.test_client()
    result = {"floor": run(lambda i: floor_client, [f"/floor?t={tid}" for tid, _ in tenants])}
    for name, (path, target) in PAGES.items():
        headers = {"HX-Request": "true", "HX-Target": target} if target else {}
        urls = [(fill(path, ids), headers) for _tid, ids in tenants]
        # Each client must use its own tenant's URL: pair them by index.
        result[name] = run(lambda i: clients[i % len(clients)], [urls[i % len(urls)] for i in range(len(urls))])
        if target:  # the full page at the block's own URL (same filter): what the fragment saves
            pages = [(fill(path, ids), {}) for _tid, ids in tenants]
            result[f"{name} (page)"] = run(lambda i: clients[i % len(clients)], pages)
    return result


def all_tenants_mix(app, seeded: dict) -> list[tuple[str, float, float]]:
    """The VU page mix over *every* seeded tenant, in random order, twice (in-process, single
    thread): Python and PostgreSQL CPU ms per request per pass, and the floor over the same tenants.
    The per-page table cycles 50 tenants, whose sign-ins, dates, plans and schemas stay warm in
    every cache; 1,000 tenants outgrow some of them (and work that grows with the installation
    shows), so this is the steadier estimate of what a busy instance pays per request."""
    import floor as floor_module

    rng = random.Random(1)
    requests_ = []
    for _tid, ids in seeded.items():
        client = signed_in(app, ids["token"])
        requests_ += [(client, fill(ALL_PAGES[page][0], ids)) for page in VU_PAGES]
    rng.shuffle(requests_)
    floor_client = floor_module.app.test_client()
    floors = [f"/floor?t={tid}" for tid in seeded]
    rows = []
    for label, batch in (
        ("floor", [(floor_client, u) for u in floors]),
        ("mix, pass 1", requests_),
        ("mix, pass 2", requests_),
    ):
        t0, pg0 = time.process_time(), postgres_cpu_seconds()
        for client, url in batch:
            assert client.get(url).status_code == 200, url
        n = len(batch)
        rows.append((label, (time.process_time() - t0) * 1000 / n, (postgres_cpu_seconds() - pg0) * 1000 / n))
    return rows


# --------------------------------------------------------------------------- servers


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def bench_redis_url() -> str:
    """Redis for the served app's rate-limit counters, as in production (the Helm chart requires
    REDIS_URL): BENCH_REDIS_URL, default database 15 of the local server; "" when none answers
    (then Flask-Limiter counts in memory, which starts a timer thread after every idle 10 ms)."""
    url = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
    host, _, port = url.split("//", 1)[-1].split("/", 1)[0].partition(":")
    try:
        with socket.create_connection((host, int(port or 6379)), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return url if s.recv(16).startswith(b"+PONG") else ""
    except OSError:
        return ""


def serve(app_path: str, database_url: str, *, conf: str = "deploy/gunicorn.conf.py", extra_env=None):
    port = free_port()
    env = {
        "REDIS_URL": bench_redis_url(),
        **os.environ,
        "DATABASE_URL": database_url,
        "SECRET_KEY": "b" * 40,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WS_BIND": f"127.0.0.1:{port}",
        "LOG_LEVEL": "ERROR",
        "GLYPHOXA_GATEWAY_SIMULATOR": "0",
        "WEB_CONCURRENCY": os.environ.get("WEB_CONCURRENCY", "2"),
        # No worker recycling mid-measurement (both servers): at 1,000 req/s the floor's workers
        # would restart every few seconds and its req/s swing with the restarts.
        "GUNICORN_MAX_REQUESTS": os.environ.get("GUNICORN_MAX_REQUESTS", "0"),
        # One bench user makes thousands of requests a second: the general rate-limit class
        # (still checked on every request) must not turn the page table into 429s.
        "RATE_LIMIT_GENERAL": "100000000 per minute",
        "RATE_LIMIT_ADMIN": "100000000 per minute",
        **(extra_env or {}),
    }
    env.pop("GUNICORN_CONTROL_SOCKET", None)
    env["GUNICORN_CONTROL_SOCKET"] = env["GUNICORN_WS_CONTROL_SOCKET"] = f"/tmp/gx-bench-{port}.ctl"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    # BENCH_SERVER_LOG=path keeps the servers' own output (errors at LOG_LEVEL ERROR) to read afterwards.
    log_path = os.environ.get("BENCH_SERVER_LOG")
    out = open(log_path, "a") if log_path else subprocess.DEVNULL  # noqa: SIM115 - the server's lifetime
    proc = subprocess.Popen([str(gunicorn), "-c", conf, app_path], cwd=ROOT, env=env, stdout=out, stderr=out)
    base = f"http://127.0.0.1:{port}"
    for _ in range(300):
        try:
            if requests.get(base + "/healthz", timeout=1).ok:
                break
        except requests.RequestException:
            time.sleep(0.2)
    return proc, base


def stop(proc) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


# --------------------------------------------------------------------------- wrk


LUA = """
local reqs = {}
%s
local n = #reqs
math.randomseed(os.time() + math.floor(os.clock() * 1000000))
request = function()
  local r = reqs[math.random(n)]
  return wrk.format("GET", r[1], r[2])
end
done = function(summary, latency, requests)
  io.write(string.format("RESULT %%d %%d %%d %%d %%.0f %%.0f\\n", summary.requests,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    summary.errors.status, summary.duration, latency:percentile(50), latency:percentile(99)))
end
"""


def lua_script(requests_: list[tuple[str, dict]]) -> str:
    rows = []
    for path, headers in requests_:
        h = ", ".join(f'["{k}"] = "{v}"' for k, v in headers.items())
        rows.append(f'reqs[#reqs + 1] = {{"{path}", {{{h}}}}}')
    fd, name = tempfile.mkstemp(suffix=".lua", prefix="gx-bench-")
    with os.fdopen(fd, "w") as f:
        f.write(LUA % "\n".join(rows))
    return name


def wrk(base: str, script: str, connections: int, seconds: float) -> dict:
    out = subprocess.run(
        [
            "wrk",
            "-t",
            "2",
            "-c",
            str(connections),
            "-d",
            f"{max(1, round(seconds))}s",
            "--timeout",
            "10s",
            "-s",
            script,
            base,
        ],
        capture_output=True,
        text=True,
        timeout=seconds + 60,
    ).stdout
    m = re.search(r"RESULT (\d+) (\d+) (\d+) (\d+) (\d+) (\d+)", out)
    if not m:
        return {"rps": 0.0, "p50": 0.0, "p99": 0.0, "errors": -1}
    n, errors, status, duration_us, p50, p99 = map(int, m.groups())
    return {"rps": n / (duration_us / 1e6), "p50": p50 / 1000, "p99": p99 / 1000, "errors": errors + status}


def _processes() -> Iterator[tuple[Path, list[str]]]:
    """Every process's /proc directory and the fields of its stat line after the command name
    (index 1 is the parent pid, 11-14 utime, stime, cutime, cstime in clock ticks)."""
    for child in Path("/proc").iterdir():
        if child.name.isdigit():
            try:
                yield child, (child / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a gunicorn master and its workers (robust on a shared, busy machine,
    where req/s mostly measures what the neighbours leave over). Workers that max_requests
    recycled count too: the master reaped them, so their CPU is in its cutime/cstime."""
    total = 0
    for child, stat in _processes():
        if int(child.name) == pid:
            total += int(stat[11]) + int(stat[12]) + int(stat[13]) + int(stat[14])
        elif int(stat[1]) == pid:
            total += int(stat[11]) + int(stat[12])
    return total / os.sysconf("SC_CLK_TCK")


def postgres_cpu_seconds() -> float:
    """User+system CPU of every PostgreSQL process on this machine (the server is local and, during
    a bench, serves only the bench)."""
    return program_cpu_seconds(b"postgres")


def program_cpu_seconds(program: bytes) -> float:
    """User+system CPU of every process whose command line starts with ``program``."""
    total = 0
    for child, stat in _processes():
        try:
            if (child / "cmdline").read_bytes().startswith(program):
                total += int(stat[11]) + int(stat[12])
        except OSError:  # it ended meanwhile
            continue
    return total / os.sysconf("SC_CLK_TCK")


def measured(base: str, script: str, connections: int, seconds: float, pid: int) -> dict:
    c0, pg0, rd0 = cpu_seconds(pid), postgres_cpu_seconds(), program_cpu_seconds(b"redis-server")
    result = wrk(base, script, connections, seconds)
    n = result["rps"] * max(1, round(seconds))
    used = cpu_seconds(pid) - c0
    result["cpu_ms"] = used * 1000 / n if n and used > 0 else float("nan")
    result["requests"], result["cpu_s"] = n, used
    result["pg_s"] = postgres_cpu_seconds() - pg0
    result["redis_s"] = program_cpu_seconds(b"redis-server") - rd0
    return result


def interleaved(floor: tuple, app: tuple, connections: int, seconds: float, slices: int) -> tuple[dict, dict]:
    """The floor and the app alternately, ``slices`` turns of ``seconds / slices`` each (at least
    1 s), floor first: a slow spell of the shared machine lands on both, not on whichever ran
    during it. req/s and CPU ms a request over all turns; p50 the turns' median, p99 their worst,
    errors summed. ``floor`` and ``app`` are (base URL, wrk script, server pid)."""
    part = max(1.0, seconds / max(1, slices))
    runs: dict[str, list[dict]] = {"floor": [], "app": []}
    for _ in range(max(1, slices)):
        for name, (base, script, pid) in (("floor", floor), ("app", app)):
            runs[name].append(measured(base, script, connections, part, pid))
    out = []
    for name in ("floor", "app"):
        turns = runs[name]
        n = sum(t["requests"] for t in turns)
        used = sum(t["cpu_s"] for t in turns)
        out.append(
            {
                "rps": n / (part * len(turns)),
                "requests": n,
                "p50": statistics.median(t["p50"] for t in turns),
                "p99": max(t["p99"] for t in turns),
                "errors": sum(t["errors"] for t in turns) if all(t["errors"] >= 0 for t in turns) else -1,
                "cpu_ms": used * 1000 / n if n and used > 0 else float("nan"),
                "pg_ms": sum(t["pg_s"] for t in turns) * 1000 / n if n else float("nan"),
                "redis_ms": sum(t["redis_s"] for t in turns) * 1000 / n if n else float("nan"),
            }
        )
    return out[0], out[1]


class StatementCosts:
    """PostgreSQL's own account of a page's statements (pg_stat_statements), when the bench's server
    loads it: per app request, each statement's calls, execution and planning time (wall time in
    the server) and plans per call, statements over a tenant's schema counted together. Off, and
    said so, where the server doesn't preload it (the system cluster doesn't); a throwaway one does:

        pg_createcluster 15 stats -p 5433 -- --auth=trust
        printf "shared_preload_libraries='pg_stat_statements'\\npg_stat_statements.track_planning=on\\n" \\
            >> /etc/postgresql/15/stats/postgresql.conf && pg_ctlcluster 15 stats start
        BENCH_DATABASE_SERVER=postgresql://postgres@127.0.0.1:5433/postgres BENCH_PARTS=pages make bench

    The floor's statement (same database, ``floor.STATEMENT`` as pg_stat_statements writes it) is
    left out of what is printed."""

    def __init__(self, database_url: str) -> None:
        self.conn: psycopg.Connection | None = None
        try:
            conn = psycopg.connect(embedded.libpq_url(database_url), autocommit=True)
        except psycopg.Error:
            return
        try:
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
            conn.execute("SELECT pg_stat_statements_reset()")
            conn.execute("SELECT count(*) FROM pg_stat_statements")  # fails unless preloaded
        except psycopg.Error:
            conn.close()
            return
        self.conn = conn

    def reset(self) -> None:
        if self.conn is not None:
            self.conn.execute("SELECT pg_stat_statements_reset()")

    def top(self, requests_: float, n: int = 3) -> list[str]:
        """The ``n`` costliest statements since the last reset, one line each, per app request."""
        if self.conn is None or not requests_:
            return []
        import floor as floor_module

        rows = self.conn.execute(
            "SELECT sum(calls), sum(total_exec_time), sum(total_plan_time), sum(plans), q FROM ("
            " SELECT calls, total_exec_time, total_plan_time, plans,"
            " left(regexp_replace(regexp_replace(query, '\"tenant_[^\"]+\"', '\"tenant_*\"', 'g'), '\\s+', ' ', 'g'), 90) AS q"
            " FROM pg_stat_statements WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND query <> %s AND query NOT LIKE %s) s GROUP BY q ORDER BY sum(total_exec_time) + sum(total_plan_time) DESC LIMIT %s",
            (floor_module.STATEMENT.replace("%s", "$1"), "%pg_stat_statements%", n),
        ).fetchall()
        return [
            f"{float(calls) / requests_:5.2f} calls {float(ex) * 1000 / requests_:6.0f} µs exec "
            f"{float(pl) * 1000 / requests_:6.0f} µs plan {float(plans) / max(1, float(calls)):5.2f} plans/call  {q}"
            for calls, ex, pl, plans, q in rows
        ]

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()


def browser_cookies(app_base: str, tokens: list[str]) -> list[str]:
    """Each user's Cookie header as a browser would send it after one page: the sign-in and the
    signed gx_flash cookie (CSRF token) the server set. wrk replays fixed headers, and without the
    flash cookie every request would mint and sign a new one."""
    jars = []
    for token in tokens:
        resp = requests.get(app_base + "/dashboard", cookies={"gx_session": token}, timeout=30)
        flash = resp.cookies.get("gx_flash")
        jars.append(f"gx_session={token}" + (f"; gx_flash={flash}" if flash else ""))
    return jars


def page_table(
    app_base: str,
    floor_base: str,
    seeded: dict,
    app_pid: int = 0,
    floor_pid: int = 0,
    costs: StatementCosts | None = None,
) -> list[tuple]:
    tenants = list(seeded.items())[:200]
    floor_script = lua_script([(f"/floor?t={tid}", {}) for tid, _ in tenants])
    scripts = {}
    jars = browser_cookies(app_base, [ids["token"] for _tid, ids in tenants])
    for name, (path, target) in PAGES.items():
        reqs = []
        for (_tid, ids), jar in zip(tenants, jars, strict=True):
            headers = {"Cookie": jar}
            if target:
                headers.update({"HX-Request": "true", "HX-Target": target})
            reqs.append((fill(path, ids), headers))
        scripts[name] = lua_script(reqs)
    rows = []
    try:
        print(
            f"\npages: wrk {SECONDS:g}s per cell and server, in {SLICES} turns alternating the floor and the "
            f"page; 200 tenants' cookies and ids at random"
        )
        print("  ratio = floor req/s / app req/s; cpu = the servers' CPU ms per request (Python only) and its ratio;")
        print("  pg / redis = PostgreSQL's and Redis's CPU ms per request meanwhile, the app's and the floor's")
        if costs is not None and costs.conn is not None:
            print(
                "  under each row: the page's costliest statements per request (pg_stat_statements, wall time in the server)"
            )
        elif costs is not None:
            print("  (statements per page: off, the server doesn't preload pg_stat_statements; see StatementCosts)")
        print(
            f"  {'page':<18}{'conns':>6}{'floor r/s':>11}{'app r/s':>9}{'ratio':>7}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'floor p99':>10}{'errors':>8}{'cpu ms':>8}{'floor':>7}{'cpu ×':>7}{'pg':>6}{'floor':>6}{'redis':>6}"
        )
        for c in CONNECTIONS:
            wrk(floor_base, floor_script, c, 2)  # warm-up
            for name in PAGES:
                wrk(app_base, scripts[name], c, 1)
                if costs is not None:
                    costs.reset()
                fl, ap = interleaved(
                    (floor_base, floor_script, floor_pid), (app_base, scripts[name], app_pid), c, SECONDS, SLICES
                )
                ratio = fl["rps"] / ap["rps"] if ap["rps"] else float("inf")
                cpu_ratio = ap["cpu_ms"] / fl["cpu_ms"] if fl["cpu_ms"] else float("inf")
                rows.append((name, c, fl, ap, ratio, cpu_ratio))
                print(
                    f"  {name:<18}{c:>6}{fl['rps']:>11.0f}{ap['rps']:>9.0f}{ratio:>6.2f}×{ap['p50']:>9.1f}"
                    f"{ap['p99']:>9.1f}{fl['p99']:>10.1f}{ap['errors']:>8}{ap['cpu_ms']:>8.2f}{fl['cpu_ms']:>7.2f}"
                    f"{cpu_ratio:>6.2f}×{ap['pg_ms']:>6.2f}{fl['pg_ms']:>6.2f}{ap['redis_ms']:>6.2f}",
                    flush=True,
                )
                for line in costs.top(ap["requests"]) if costs is not None else []:
                    print(f"      {line}", flush=True)
    finally:
        for s in [floor_script, *scripts.values()]:
            os.unlink(s)
    return rows


# --------------------------------------------------------------------------- asyncio HTTP (VUs)


async def http_get(reader, writer, host: str, path: str, cookies: dict) -> tuple[int, bytes]:
    """One GET on a kept-alive connection. ``cookies`` is the user's jar: sent, and updated from
    Set-Cookie like a browser's (the signed gx_flash cookie holds the CSRF token; a client that
    never sends it back makes the server mint and sign a new one on every response)."""
    jar = "; ".join(f"{k}={v}" for k, v in cookies.items())
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nCookie: {jar}\r\nAccept: text/html\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:] if line)}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.lower() == "set-cookie":
            key, _, rest = value.strip().partition("=")
            cookies[key] = rest.split(";", 1)[0]
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16)
            parts.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(parts)
    else:
        body = await reader.read()
    if headers.get("connection", "").lower() == "close":
        writer.close()  # answered, but the server won't keep the connection: the next request reconnects
    return status, body


async def vu_run(host: str, port: int, seeded: dict, users: int, seconds: float) -> dict:
    tenants = list(seeded.values())
    lat: list[float] = []
    stats = {"ok": 0, "errors": 0, "shed": 0, "timeouts": 0}
    deadline = time.monotonic() + seconds
    started = time.monotonic()
    steady: list[float] = []  # answered after the arrival ramp (every user's first sign-in is in it)
    hostname = f"127.0.0.1:{port}"

    async def user(i: int) -> None:
        ids = tenants[i % len(tenants)]
        rng = random.Random(i)
        await asyncio.sleep(rng.uniform(0, 5))  # ramp: users arrive over the first 5 s
        conn = None
        cookies = {"gx_session": ids["token"]}
        while time.monotonic() < deadline:
            path = fill(ALL_PAGES[rng.choice(VU_PAGES)][0], ids)
            t0 = time.perf_counter()
            try:
                status = None
                if conn is not None:
                    # A kept-alive connection the server closed meanwhile (keepalive 5 s) is not
                    # an error: browsers reconnect and resend, and so does this user.
                    try:
                        status, _ = await asyncio.wait_for(http_get(*conn, hostname, path, cookies), 30)
                    except (ConnectionError, asyncio.IncompleteReadError):
                        conn = _close(conn)
                if conn is not None and conn[1].is_closing():
                    conn = None
                if status is None:
                    conn = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), 30)
                    status, _ = await asyncio.wait_for(http_get(*conn, hostname, path, cookies), 30)
                if status == 200:
                    stats["ok"] += 1
                    lat.append(time.perf_counter() - t0)
                    if time.monotonic() - started >= RAMP_SECONDS:
                        steady.append(lat[-1])
                elif status == 503:
                    stats["shed"] += 1
                else:
                    stats["errors"] += 1
                    stats.setdefault("statuses", {}).setdefault(status, 0)
                    stats["statuses"][status] += 1
            except TimeoutError:
                stats["timeouts"] += 1
                conn = _close(conn)
            except (OSError, asyncio.IncompleteReadError, ValueError, IndexError) as exc:
                stats["errors"] += 1
                stats.setdefault("statuses", {}).setdefault(type(exc).__name__, 0)
                stats["statuses"][type(exc).__name__] += 1
                conn = _close(conn)
            await asyncio.sleep(rng.uniform(1, 5))
        _close(conn)

    t0 = time.monotonic()
    await asyncio.gather(*(user(i) for i in range(users)))
    elapsed = time.monotonic() - t0
    lat.sort()
    steady.sort()

    return {
        **stats,
        "rps": stats["ok"] / elapsed,
        "p50": percentile(lat, 0.5),
        "p99": percentile(lat, 0.99),
        "steady_p50": percentile(steady, 0.5),
        "steady_p99": percentile(steady, 0.99),
        "offered": users / 3.0,
    }


def percentile(ordered: list[float], q: float, scale: float = 1000) -> float:
    """The ``q`` quantile of ``ordered`` (sorted already) times ``scale`` (seconds to ms); 0 when empty."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * scale if ordered else 0.0


def quiet_driver_heap() -> None:
    """Move everything this process holds so far (the in-process app, its caches, the seeded ids)
    out of the cyclic collector's reach before a driver measures latency. Otherwise a full
    collection of this heap stops the driver's event loop and every request or frame in flight
    looks that much slower: with the in-process parts' heap (~265k objects), one full collection
    took 339 ms at 4.4 s into a 1,000-user run (p99 705 ms; frozen, the same run's p99 was 231 ms).
    What a worker does as it boots (``app.freeze_boot_heap``)."""
    from glyphoxa_htmx.app import freeze_boot_heap

    freeze_boot_heap()


def _close(conn):
    if conn is not None:
        try:
            conn[1].close()
        except Exception:  # noqa: BLE001
            pass
    return None


def returning(database_url: str) -> None:
    """Every seeded user last seen 10 minutes ago: users who come back after a while, whose first
    request records that they are here again (``last_seen_at``, at most once a minute), as real
    users arrive, not the seconds-old sign-ins the seed (or the run before) left."""
    import psycopg

    with psycopg.connect(embedded.libpq_url(database_url), autocommit=True) as conn:
        conn.execute(
            "UPDATE web.login_sessions SET last_seen_at = now() - interval '10 minutes' WHERE revoked_at IS NULL"
        )


def vus(app_base: str, seeded: dict, app_pid: int, database_url: str) -> list[dict]:
    port = int(app_base.rsplit(":", 1)[1])
    results = []
    print(f"\nvirtual users: each with its own sign-in cookie, think time 1-5 s, {VU_SECONDS:g}s, mixed hot pages")
    print(
        f"  {'VUs':>6}{'offered r/s':>12}{'served r/s':>11}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'503':>7}"
        f"{'timeouts':>9}{f'after {RAMP_SECONDS:g}s: p50 / p99 ms':>26}"
    )
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    for n in VUS:
        returning(database_url)
        quiet_driver_heap()
        app0, pg0, own0 = cpu_seconds(app_pid), postgres_cpu_seconds(), time.process_time()
        r = asyncio.run(vu_run("127.0.0.1", port, seeded, n, VU_SECONDS))
        served = r["rps"] * VU_SECONDS
        r["cpu"] = {  # ms of CPU per answered request: the app's workers, PostgreSQL, this driver
            name: (used * 1000 / served if served else float("nan"))
            for name, used in (
                ("app", cpu_seconds(app_pid) - app0),
                ("postgres", postgres_cpu_seconds() - pg0),
                ("driver", time.process_time() - own0),
            )
        }
        results.append({"vus": n, **r})
        print(
            f"  {n:>6}{r['offered']:>12.0f}{r['rps']:>11.0f}{r['p50']:>9.0f}{r['p99']:>9.0f}{r['errors']:>8}"
            f"{r['shed']:>7}{r['timeouts']:>9}{r['steady_p50']:>15.0f} / {r['steady_p99']:<6.0f}"
            f"  {r.get('statuses', '')}",
            flush=True,
        )
        print(
            "  " + " " * 6 + "  CPU ms per answered request: " + ", ".join(f"{k} {v:.2f}" for k, v in r["cpu"].items())
        )
        time.sleep(3)
    return results


# --------------------------------------------------------------------------- WebSocket viewers


async def ws_connect(port: int, path: str, cookie: str):
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    key = base64.b64encode(os.urandom(16)).decode()
    writer.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: http://127.0.0.1:{port}\r\n"
        f"Cookie: gx_session={cookie}\r\n\r\n".encode()
    )
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 101"):
        writer.close()
        raise ConnectionError(head.split(b"\r\n", 1)[0].decode())
    return reader, writer


async def ws_frame(reader) -> tuple[int, bytes]:
    b1, b2 = await reader.readexactly(2)
    n = b2 & 0x7F
    if n == 126:
        n = int.from_bytes(await reader.readexactly(2), "big")
    elif n == 127:
        n = int.from_bytes(await reader.readexactly(8), "big")
    return b1 & 0x0F, await reader.readexactly(n)


LINE_RE = re.compile(rb'id="line-(\d+)"')
STAMP_RE = re.compile(r"bench-ts:(\d+\.\d+)")


def ws_bench(database_url: str, seeded: dict) -> None:
    from glyphoxa_htmx.embedded import libpq_url

    url = libpq_url(database_url)
    tenants = list(seeded.items())[:LIVE]
    # LIVE sessions go live (one per tenant).
    live: list[tuple[str, str, str]] = []
    with psycopg.connect(url, autocommit=True) as conn:
        for tid, ids in tenants:
            sid = f"live-{tid}"
            conn.execute(
                "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, license_tier, state, "
                "started_at) VALUES (%s, %s, %s, %s, 'shared', 'active', now())",
                (sid, tid, ids["campaign"], f"9{abs(hash(tid)) % 10**17:017d}"),
            )
            live.append((tid, sid, ids["token"]))
    proc, base = serve("wsgi:app", database_url, conf="deploy/gunicorn-ws.conf.py")
    port = int(base.rsplit(":", 1)[1])
    pid = proc.pid
    stop_writer = {"stop": False}
    sent: dict[str, list[tuple[int, float]]] = {sid: [] for _, sid, _ in live}

    def writer_thread():
        with psycopg.connect(url, autocommit=True) as conn:
            k = 0
            while not stop_writer["stop"]:
                t_round = time.monotonic()
                for tid, sid, _ in live:
                    k += 1
                    began = time.time()
                    row = conn.execute(
                        f'INSERT INTO "tenant_{tid}".session_entries (campaign_id, session_id, speaker_name, text) '
                        "VALUES (%s, %s, 'Bench', %s) RETURNING id",
                        (seeded[tid]["campaign"], sid, f"line {k} bench-ts:{began:.6f}"),
                    ).fetchone()
                    acked = time.time()
                    sent[sid].append((row[0], acked))
                    insert_ms.append((acked - began) * 1000)
                time.sleep(max(0.0, 2.0 - (time.monotonic() - t_round)))

    import threading

    delays: list[float] = []  # from the writer's INSERT began (the ts in the line's text)
    arrivals: list[tuple[str, int, float]] = []  # (session, line id, received) for delays from the commit
    insert_ms: list[float] = []  # the writer's INSERT (autocommit) from sent to acknowledged
    res = {"connected": 0, "failed": 0, "missed": 0, "dup": 0, "closed": 0}

    async def viewer(i: int):
        tid, sid, token = live[i % len(live)]
        await asyncio.sleep(i * 0.004)  # ~250 handshakes/s
        try:
            reader, writer = await asyncio.wait_for(ws_connect(port, f"/sessions/{sid}/ws", token), 30)
        except Exception:  # noqa: BLE001
            res["failed"] += 1
            return None
        res["connected"] += 1
        seen: list[int] = []
        try:
            while True:
                op, payload = await ws_frame(reader)
                now = time.time()
                if op == 8:
                    res["closed"] += 1
                    break
                for m in re.finditer(rb'id="line-(\d+)".*?bench-ts:(\d+\.\d+)', payload, re.S):
                    seen.append(int(m.group(1)))
                    delays.append(now - float(m.group(2)))
                    arrivals.append((sid, seen[-1], now))
        except (asyncio.CancelledError, asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()
        return sid, seen

    async def main():
        tasks = [asyncio.create_task(viewer(i)) for i in range(VIEWERS)]
        await asyncio.sleep(VIEWERS * 0.004 + 5)
        t = threading.Thread(target=writer_thread, daemon=True)
        xacts_before = _db_transactions(url)
        t.start()
        start_at = time.time()
        await asyncio.sleep(WS_SECONDS)
        stop_writer["stop"] = True
        t.join()
        elapsed = time.time() - start_at
        xacts_after = _db_transactions(url)
        await asyncio.sleep(3)
        rss = _rss_of_children(pid)
        written = sum(1 for v in sent.values() for _lid, ts in v if ts >= start_at)
        polls = ""
        if xacts_before is not None and xacts_after is not None:
            # Every statement of the hub runs in autocommit: one transaction each. The writer's
            # inserts are autocommit too; what is left is what the WS workers asked.
            served = (xacts_after - xacts_before - written) / elapsed
            polls = (
                f"the WS workers' database statements during delivery: {served:.0f}/s for {LIVE} live sessions "
                f"and {res['connected']} viewers ({served / LIVE:.1f} per live session, "
                f"{served / max(1, res['connected']):.2f} per viewer)"
            )
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        for r in results:
            if not isinstance(r, tuple):
                continue
            sid, seen = r
            expected = [lid for lid, ts in sent[sid] if ts >= start_at]
            got = set(seen)
            res["missed"] += sum(1 for lid in expected if lid not in got)
            res["dup"] += len(seen) - len(got)
        return rss, polls

    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    quiet_driver_heap()
    try:
        rss, polls = asyncio.run(main())
    finally:
        stop(proc)
    acked_at = {(sid, lid): ts for sid, v in sent.items() for lid, ts in v}
    after_ack = [now - acked_at[sid, lid] for sid, lid, now in arrivals if (sid, lid) in acked_at]
    for values in (delays, insert_ms, after_ack):
        values.sort()

    lines = sum(len(v) for v in sent.values())
    print(
        f"\nWebSocket viewers: {VIEWERS} over {LIVE} live sessions, one line per session every 2 s for {WS_SECONDS:g}s "
        f"(deploy/gunicorn-ws.conf.py)"
    )
    print(f"  connected {res['connected']}, handshake failures {res['failed']}, closed early {res['closed']}")
    print(
        f"  {lines} lines written, {len(delays)} deliveries: p50 {percentile(delays, 0.5):.0f} ms, p99 {percentile(delays, 0.99):.0f} ms, "
        f"missed {res['missed']}, duplicated {res['dup']}"
    )
    print(
        f"  the writer's INSERT (sent → commit acknowledged): p50 {percentile(insert_ms, 0.5, 1):.0f} ms, "
        f"p99 {percentile(insert_ms, 0.99, 1):.0f} ms; deliveries counted from the acknowledgement: "
        f"p50 {percentile(after_ack, 0.5):.0f} ms, p99 {percentile(after_ack, 0.99):.0f} ms"
    )
    print(f"  WS workers' RSS {rss / 1e6:.0f} MB; {polls}")


def _rss_of_children(pid: int) -> int:
    total = 0
    for child in Path("/proc").iterdir():
        if not child.name.isdigit():
            continue
        try:
            stat = (child / "stat").read_text().split()
            if int(stat[3]) == pid:
                total += int(stat[23]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    return total


def _db_transactions(url: str) -> int | None:
    """The database's committed and rolled-back transactions so far (pg_stat_database; this
    connection's own read adds one)."""
    try:
        with psycopg.connect(url, autocommit=True) as conn:
            try:
                conn.execute("SELECT pg_stat_force_next_flush()")  # PostgreSQL 15+
            except psycopg.Error:
                pass
            row = conn.execute(
                "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
        return int(row[0])
    except psycopg.Error:
        return None


# --------------------------------------------------------------------------- main


def main() -> None:
    from seed import seed

    server = server_url()
    dbname = f"glyphoxa_bench_{os.getpid()}"
    database_url = embedded.recreate_database(server, dbname)
    procs = []
    app = None
    print(
        f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start "
        f"(other processes on the machine depress absolute figures; the ratios are what count)"
    )
    print(f"served app's rate-limit counters: {bench_redis_url() or 'in memory (no Redis answered)'}")
    try:
        app = build_app(database_url)
        from glyphoxa_htmx.embedded import libpq_url

        seeded = seed(libpq_url(database_url), TENANTS)
        first = next(iter(seeded.values()))
        if "queries" in PARTS:
            empty = empty_tenant(app)
            empty_ids = {"campaign": "cmp_empty", "session": first["session"], "npc": first["npc"]}
            full = queries_per_page(app, first, first["token"])
            none = queries_per_page(app, empty_ids, empty)
            print("\nSQL statements per page (a seeded tenant / an empty one; negative = that HTTP status):")
            for name in PAGES:
                print(f"  {name:<18}{full[name]:>5}{none[name]:>6}")
        if "large" in PARTS:
            large_table(app, database_url, first)
        if "cpu" in PARTS:
            cpu = cpu_per_request(app, seeded, database_url)
            print(
                "\nPython CPU per request, in-process, single thread (best of 3 × "
                f"{os.environ.get('BENCH_CPU_REQUESTS', '200')} requests; database time not included):"
            )
            print(f"  {'page':<18}{'ms':>7}{'× floor':>9}")
            for name, ms in cpu.items():
                if not name.endswith(" (page)"):
                    print(f"  {name:<18}{ms:>7.2f}{ms / cpu['floor']:>8.2f}×")
            mix = all_tenants_mix(app, seeded)
            print(
                f"\nThe VU page mix over all {len(seeded)} tenants in random order, in-process (pass 1: "
                "every tenant's first visit; pass 2: the same again), CPU ms per request:"
            )
            print(f"  {'':<18}{'python':>8}{'× floor':>9}{'postgres':>10}")
            for label, py_ms, pg_ms in mix:
                print(f"  {label:<18}{py_ms:>8.2f}{py_ms / mix[0][1]:>8.2f}×{pg_ms:>10.2f}")
            print("\nhtmx fragments against the full page at the same URL (same filter, same rows):")
            print(f"  {'fragment':<18}{'block ms':>9}{'page ms':>9}{'block/page':>12}")
            for name, (_path, target) in PAGES.items():
                if target:
                    block, whole = cpu[name], cpu[f"{name} (page)"]
                    print(f"  {name:<18}{block:>9.2f}{whole:>9.2f}{block / whole:>11.0%}")
        if "pages" in PARTS and shutil.which("wrk"):
            app_proc, app_base = serve("wsgi:app", database_url)
            floor_proc, floor_base = serve("bench.floor:app", database_url)
            procs += [app_proc, floor_proc]
            costs = StatementCosts(database_url)
            try:
                page_table(app_base, floor_base, seeded, app_proc.pid, floor_proc.pid, costs)
            finally:
                costs.close()
            stop(floor_proc)
        elif "pages" in PARTS:
            print("\npages: skipped (wrk not installed: apt-get install -y wrk)")
        if "vus" in PARTS:
            if not procs or procs[0].poll() is not None:
                app_proc, app_base = serve("wsgi:app", database_url)
                procs.append(app_proc)
            vus(app_base, seeded, app_proc.pid, database_url)
        for p in procs:
            stop(p)
        procs = []
        if "ws" in PARTS:
            ws_bench(database_url, seeded)
    finally:
        for p in procs:
            stop(p)
        if app is not None:
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
