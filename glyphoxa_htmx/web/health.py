"""Probes: /healthz (liveness), /readyz (dependencies). /metrics is prometheus-flask-exporter's
endpoint, registered by core/metrics.py."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text

from glyphoxa_htmx.core.deps import gateway, secrets
from glyphoxa_htmx.extensions import db, limiter

log = logging.getLogger(__name__)
bp = Blueprint("health", __name__)


@bp.get("/healthz")
@limiter.exempt
def healthz():
    return jsonify(status="ok")


def _check_db() -> str | None:
    try:
        with db.engine.connect() as conn:
            conn.execute(text("SET LOCAL statement_timeout = 2000"))
            conn.execute(text("SELECT 1"))
        return None
    except Exception as exc:  # noqa: BLE001
        log.warning("readiness: database unreachable", extra={"error": type(exc).__name__})
        return "unreachable"


def _check_gateway() -> str | None:
    client = gateway()
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


def _check_secrets() -> str | None:
    """The provider-key secrets backend: Vault Transit (sys/health) or the local keyring file."""
    return secrets().health()


@bp.get("/readyz")
@limiter.exempt
def readyz():
    checks = {"database": _check_db(), "gateway": _check_gateway(), "secrets": _check_secrets()}
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
