"""Probes: /healthz (liveness), /readyz (dependencies). /metrics is prometheus-flask-exporter's
endpoint, registered by core/metrics.py."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from sqlalchemy import text

from glyphoxa_htmx.core.deps import gateway, settings
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


def _check_vault() -> str | None:
    cfg = settings()
    if not cfg.vault_addr:
        return None
    import requests

    try:
        resp = requests.get(cfg.vault_addr.rstrip("/") + "/v1/sys/health", timeout=2)
        return None if resp.status_code in (200, 429, 473) else f"status {resp.status_code}"
    except requests.RequestException:
        return "unreachable"


@bp.get("/readyz")
@limiter.exempt
def readyz():
    checks = {"database": _check_db(), "gateway": _check_gateway(), "vault": _check_vault()}
    failed = {name: problem for name, problem in checks.items() if problem}
    body = {
        "status": "fail" if failed else "ok",
        "checks": {
            name: ("fail: " + problem if problem else ("skipped" if _skipped(name) else "ok"))
            for name, problem in checks.items()
        },
    }
    if failed:
        body["failed"] = sorted(failed)
    return jsonify(body), (503 if failed else 200)


def _skipped(name: str) -> bool:
    cfg = settings()
    return (name == "gateway" and gateway() is None) or (name == "vault" and not cfg.vault_addr)
