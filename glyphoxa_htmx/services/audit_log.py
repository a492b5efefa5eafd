"""Reading the audit log (the writer is ``core/audit.py``): a table's owner reads their table's
entries, a super admin every table's. Filters (actor, action, resource, date range), keyset
pagination on ``(created_at, id)`` newest first, and a streamed CSV export.

Secrets never leave: entries are scrubbed when written, and scrubbed again on the way out (rows
written by older code or by another service may carry keys the writer would have redacted)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import Row, Select, and_, or_, select

from glyphoxa_htmx.core import keyset
from glyphoxa_htmx.core.audit import SECRET_KEYS
from glyphoxa_htmx.core.authz import Actor, Perm, require
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.core.i18n import _
from glyphoxa_htmx.core.parse import like_pattern, unstorable
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import AuditLog, User

PAGE_SIZE = 50
EXPORT_BATCH = 500
_SECRET_WORDS = ("token", "secret", "password", "api_key", "apikey", "private_key", "credential")
REDACTED = "[redacted]"


def _secret_key(key: Any) -> bool:
    k = str(key).lower()
    return k in SECRET_KEYS or any(word in k for word in _SECRET_WORDS)


def scrub(value: Any) -> Any:
    """Redact every value under a secret-looking key, however deep."""
    if isinstance(value, dict):
        return {k: (REDACTED if _secret_key(k) else scrub(v)) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    return value


@dataclass
class Filters:
    actor: str = ""
    action: str = ""
    resource: str = ""
    date_from: date | None = None
    date_to: date | None = None
    tenant: str = ""  # super admins only
    q: str = ""  # one search over action, resource and actor (the drill-down's audit list)
    raw: dict[str, str] = field(default_factory=dict)

    def query_args(self) -> dict[str, str]:
        return {k: v for k, v in self.raw.items() if v}


def _parse_date(raw: str, name: str, errors: dict[str, str]) -> date | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[name] = _("Use a date like 2026-03-14.")
        return None


def parse_filters(args: Mapping[str, str]) -> Filters:
    """Filters from query arguments; a malformed one is a ValidationError naming its field."""
    names = ("actor", "action", "resource", "from", "to", "tenant")
    raw = {n: (args.get(n) or "").strip()[:200] for n in names}
    errors: dict[str, str] = {}
    if unstorable(raw.values()):
        raise ValidationError({"actor": _("The filter contains characters that can't be searched for.")})
    f = Filters(actor=raw["actor"], action=raw["action"], resource=raw["resource"], tenant=raw["tenant"], raw=raw)
    f.date_from = _parse_date(raw["from"], "from", errors)
    f.date_to = _parse_date(raw["to"], "to", errors)
    if f.date_from and f.date_to and f.date_from > f.date_to:
        errors["from"] = _("The start date must not be after the end date.")
    if errors:
        raise ValidationError(errors)
    return f


# Newest first, on (created_at, id): the keyset helper's key (core/keyset.py).
KEYS = ((AuditLog.created_at, datetime.fromisoformat), (AuditLog.id, int))


def _key(row: Row[tuple[AuditLog, str, str | None]]) -> tuple[datetime, int]:
    return row[0].created_at, row[0].id


def scope(actor: Actor, *, everywhere: bool) -> Actor:
    if everywhere:
        return require(actor, Perm.MANAGE_ALL_TENANTS)
    return require(actor, Perm.MANAGE_TENANT)


def _statement(actor: Actor, f: Filters, *, everywhere: bool) -> Select[tuple[AuditLog, str, str | None]]:
    stmt = select(AuditLog, User.name, User.email).outerjoin(User, User.id == AuditLog.user_id)
    if everywhere:
        if f.tenant:
            stmt = stmt.where(AuditLog.tenant_id == f.tenant)
    else:
        stmt = stmt.where(AuditLog.tenant_id == actor.tenant_id)
    if f.actor:
        p = like_pattern(f.actor)
        stmt = stmt.where(or_(AuditLog.user_id == f.actor, User.name.ilike(p), User.email.ilike(p)))
    if f.action:
        stmt = stmt.where(AuditLog.action.ilike(like_pattern(f.action)))
    if f.q:
        p = like_pattern(f.q)
        stmt = stmt.where(
            or_(
                AuditLog.action.ilike(p),
                AuditLog.resource_type.ilike(p),
                AuditLog.resource_id.ilike(p),
                User.name.ilike(p),
                User.email.ilike(p),
            )
        )
    if f.resource:
        rtype, _, rid = f.resource.partition(":")
        if rid:
            stmt = stmt.where(and_(AuditLog.resource_type == rtype.strip(), AuditLog.resource_id == rid.strip()))
        else:
            p = like_pattern(f.resource)
            stmt = stmt.where(or_(AuditLog.resource_type.ilike(p), AuditLog.resource_id == f.resource))
    if f.date_from:
        stmt = stmt.where(AuditLog.created_at >= datetime.combine(f.date_from, time.min, tzinfo=UTC))
    if f.date_to:
        stmt = stmt.where(AuditLog.created_at < datetime.combine(f.date_to + timedelta(days=1), time.min, tzinfo=UTC))
    return stmt


@dataclass
class Entry:
    id: int
    created_at: datetime
    tenant_id: str | None
    user_id: str | None
    actor_name: str
    action: str
    resource_type: str
    resource_id: str
    ip: str | None
    changes: list[dict[str, Any]]  # [{field, before, after}]
    details: dict[str, Any]


def _fmt(value: Any) -> str:
    if value is None:
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _entry(row: AuditLog, name: str | None, email: str | None) -> Entry:
    details = scrub(dict(row.details or {})) if isinstance(row.details, dict) else {}
    raw_changes = details.pop("changes", None)
    changes = []
    if isinstance(raw_changes, dict):
        for key in sorted(raw_changes):
            pair = raw_changes[key]
            if isinstance(pair, dict) and ("before" in pair or "after" in pair):
                changes.append({"field": key, "before": _fmt(pair.get("before")), "after": _fmt(pair.get("after"))})
            else:
                changes.append({"field": key, "before": "—", "after": _fmt(pair)})
    actor_name = name or email or (row.user_id and f"user {row.user_id[:8]}") or "system"
    return Entry(
        row.id,
        row.created_at,
        row.tenant_id,
        row.user_id,
        actor_name,
        row.action,
        row.resource_type,
        row.resource_id,
        str(row.ip_address) if row.ip_address else None,
        changes,
        {k: _fmt(v) for k, v in details.items()},
    )


def page(
    actor: Actor, f: Filters, *, after: str | None = None, everywhere: bool = False, limit: int = PAGE_SIZE
) -> tuple[list[Entry], str | None]:
    """One page of entries (one query) and the cursor of the next page (None: last page)."""
    scope(actor, everywhere=everywhere)
    rows, cursor = keyset.page(
        _statement(actor, f, everywhere=everywhere), KEYS, after, limit, key_of=_key, descending=True
    )
    return [_entry(*r) for r in rows], cursor


def for_tenant(
    actor: Actor, tenant_id: str, *, q: str = "", after: str | None = None, limit: int = 10
) -> tuple[list[Entry], str | None]:
    """Super admin: one page of a table's entries, newest first, optionally searched (the drill-down)."""
    return page(actor, Filters(tenant=tenant_id, q=q), after=after, everywhere=True, limit=limit)


CSV_COLUMNS = [
    "time",
    "tenant_id",
    "actor_id",
    "actor",
    "action",
    "resource_type",
    "resource_id",
    "ip",
    "changes",
    "details",
]


def _cell(value: str) -> str:
    """A CSV cell a spreadsheet won't run as a formula."""
    return "'" + value if value[:1] in ("=", "+", "-", "@", "\t", "\r") else value


def export_csv(actor: Actor, f: Filters, *, everywhere: bool = False) -> Iterator[str]:
    """CSV lines of every matching entry, read in keyset batches as it streams (memory stays flat)."""
    scope(actor, everywhere=everywhere)

    def generate() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)

        def flush() -> str:
            out = buf.getvalue()
            buf.seek(0)
            buf.truncate()
            return out

        writer.writerow(CSV_COLUMNS)
        yield flush()
        cursor: str | None = None
        while True:
            rows, cursor = keyset.page(
                _statement(actor, f, everywhere=everywhere), KEYS, cursor, EXPORT_BATCH, key_of=_key, descending=True
            )
            for row, name, email in rows:
                e = _entry(row, name, email)
                writer.writerow(
                    [
                        _cell(str(v))
                        for v in [
                            e.created_at.isoformat(),
                            e.tenant_id or "",
                            e.user_id or "",
                            e.actor_name,
                            e.action,
                            e.resource_type,
                            e.resource_id,
                            e.ip or "",
                            json.dumps(
                                {c["field"]: {"before": c["before"], "after": c["after"]} for c in e.changes},
                                ensure_ascii=False,
                            )
                            if e.changes
                            else "",
                            json.dumps(e.details, ensure_ascii=False) if e.details else "",
                        ]
                    ]
                )
            if rows:
                yield flush()
            if cursor is None:
                break
        db.session.rollback()  # end the read transaction before the response closes

    return generate()
