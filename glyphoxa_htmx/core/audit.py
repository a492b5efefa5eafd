"""The one audit writer. Every state change calls ``record`` inside the same transaction as the
change itself, so an audit row exists exactly when the change was committed."""

from __future__ import annotations

from typing import Any

from glyphoxa_htmx.core.authz import Actor
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import AuditLog

SECRET_KEYS = {"bot_token", "api_key", "token", "secret", "password", "client_secret", "token_hash"}


def _scrub(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: ("[redacted]" if k in SECRET_KEYS else _scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(v) for v in value]
    return value


def diff(before: dict[str, Any] | None, after: dict[str, Any] | None) -> dict[str, Any]:
    """{field: {"before": x, "after": y}} for changed fields only."""
    before, after = before or {}, after or {}
    out: dict[str, dict[str, Any]] = {}
    for key in sorted(set(before) | set(after)):
        if before.get(key) != after.get(key):
            out[key] = {"before": before.get(key), "after": after.get(key)}
    scrubbed: dict[str, Any] = _scrub(out)
    return scrubbed


def record(
    action: str,
    resource_type: str,
    resource_id: str,
    *,
    actor: Actor | None = None,
    tenant_id: str | None = None,
    user_id: str | None = None,
    before: dict[str, Any] | None = None,
    after: dict[str, Any] | None = None,
    details: dict[str, Any] | None = None,
    ip: str | None = None,
) -> AuditLog:
    """Add an audit row to the current transaction (the caller commits)."""
    payload = dict(details or {})
    if before is not None or after is not None:
        payload["changes"] = diff(before, after)
    row = AuditLog(
        tenant_id=tenant_id if tenant_id is not None else (actor.tenant_id if actor else None),
        user_id=user_id if user_id is not None else (actor.user_id if actor else None),
        action=action,
        resource_type=resource_type,
        resource_id=str(resource_id),
        details=_scrub(payload) or None,
        ip_address=ip if ip is not None else (actor.ip if actor else None),
    )
    db.session.add(row)
    return row
