"""Probes: /healthz (liveness), /readyz (dependencies). /metrics is prometheus-flask-exporter's
endpoint, registered by core/metrics.py."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import psycopg

import logging
import os
import socket
import threading
import time

from flask import Blueprint, current_app, jsonify

from glyphoxa_htmx.core.deps import gateway, secrets
from glyphoxa_htmx.extensions import limiter

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
@limiter.exempt
def healthz():
    return jsonify(status="ok")


#: Deadline of each readiness check, in seconds. The probe runs them in parallel and answers
#: within about this long even when every dependency hangs; a check that runs out of time fails.
CHECK_SECONDS = 2.0


class _ConnRef:
    """Where the database check leaves its connection, so a watchdog can cut its socket."""

    conn: psycopg.Connection[Any] | None = None


def _check_db(url: str, ref: _ConnRef) -> str | None:
    """A fresh connection (not the pool's: a pooled connection on a silent network would hang)
    with a connect and a statement timeout."""
    import psycopg

    from glyphoxa_htmx.embedded import libpq_url

    conn = None
    try:
        conn = psycopg.connect(libpq_url(url), connect_timeout=max(1, int(CHECK_SECONDS)), autocommit=True)
        ref.conn = conn
        conn.execute(f"SET statement_timeout = {int(CHECK_SECONDS * 1000)}")
        conn.execute("SELECT 1")
        return None
    except Exception as exc:  # noqa: BLE001
        log.warning("readiness: database unreachable", extra={"error": type(exc).__name__})
        return "unreachable"
    finally:
        if conn is not None:
            conn.close()


def _check_gateway(client) -> str | None:
    if client is None:
        return None
    from glyphoxa_htmx.adapters.gateway.errors import GatewayError, GatewayUnavailable

    try:
        client.get_bot_status("readyz_probe", quick=True)
    except GatewayUnavailable:
        return "unreachable"
    except GatewayError:
        return None  # it answered: reachable
    return None


def _check_secrets(backend) -> str | None:
    """The provider-key secrets backend: Vault Transit (sys/health) or the local keyring file."""
    return backend.health()


def _run_bounded(checks: dict, refs: dict[str, _ConnRef]) -> dict[str, str | None]:
    """Run the checks in parallel daemon threads; whatever hasn't answered by the deadline is
    a failure ("timeout"). A database check stuck on a silent socket has that socket shut down,
    so its thread ends instead of lingering."""
    results: dict[str, str | None] = {}
    threads = {}

    def run(name, fn, args):
        try:
            results[name] = fn(*args)
        except Exception:  # noqa: BLE001
            log.exception("readiness check %s crashed", name)
            results[name] = "error"

    for name, (fn, args) in checks.items():
        t = threading.Thread(target=run, args=(name, fn, args), name=f"readyz-{name}", daemon=True)
        threads[name] = t
        t.start()
    deadline = time.monotonic() + CHECK_SECONDS + 0.5
    for t in threads.values():
        t.join(max(0.0, deadline - time.monotonic()))
    out: dict[str, str | None] = {}
    for name, t in threads.items():
        if t.is_alive():
            log.warning("readiness: %s check timed out after %.1fs", name, CHECK_SECONDS)
            out[name] = "timeout"
            if name in refs:
                _abort_socket(refs[name].conn)
        else:
            out[name] = results.get(name)
    return out


def _abort_socket(conn) -> None:
    if conn is None:
        return
    try:
        sock = socket.socket(fileno=os.dup(conn.fileno()))
        try:
            sock.shutdown(socket.SHUT_RDWR)
        finally:
            sock.close()
    except Exception:  # noqa: BLE001 - already gone
        pass


@bp.get("/readyz")
@limiter.exempt
def readyz():
    db_ref = _ConnRef()
    checks = _run_bounded(
        {
            "database": (_check_db, (current_app.config["SQLALCHEMY_DATABASE_URI"], db_ref)),
            "gateway": (_check_gateway, (gateway(),)),
            "secrets": (_check_secrets, (secrets(),)),
        },
        {"database": db_ref},
    )
    failed = {name: problem for name, problem in checks.items() if problem}
    body = {
        "status": "fail" if failed else "ok",
        "secrets_backend": secrets().name,
        "checks": {
            name: ("fail: " + problem if problem else ("skipped" if _skipped(name) else "ok"))
            for name, problem in checks.items()
        },
    }
    if failed:
        body["failed"] = sorted(failed)
    return jsonify(body), (503 if failed else 200)


def _skipped(name: str) -> bool:
    return name == "gateway" and gateway() is None
