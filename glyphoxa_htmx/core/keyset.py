"""Keyset pagination: the shared helper for lists that can grow. Its users: the operator's tenant
and user lists (/admin/tenants, /admin/users); the tenant drill-down (members, campaigns,
sessions, audit entries); the audit viewer and its CSV export; support tickets (a table's own
list and the operator's). Knowledge entities keep their own cursor: they are read with SQL text
from the gateway's per-tenant schema, and this helper pages SQLAlchemy selects.

A page is one query: the statement ordered by its key columns (a unique combination, e.g.
``(created_at, id)``), limited to ``size + 1`` rows, and after the previous page's last key
(``(k1, k2) > (:a, :b)``, or ``<`` newest first). The extra row only says whether there is a next
page; the cursor is the last shown row's key, as an opaque URL-safe string. A cursor that doesn't
parse (edited by hand, an old format) starts from the first page rather than failing.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from sqlalchemy import Row, Select, tuple_

from glyphoxa_htmx.extensions import db

# (column, parse): the column to order and compare by, and how a cursor's text becomes its value.
Key = tuple[Any, Callable[[str], Any]]
# The statement's row shape, e.g. tuple[AuditLog, str, str | None]: the page's rows have it too.
_TP = TypeVar("_TP", bound=tuple[Any, ...])


def _text(value: Any) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def encode(values: Sequence[Any]) -> str:
    raw = json.dumps([_text(v) for v in values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(cursor: str | None, parsers: Sequence[Callable[[str], Any]]) -> list[Any] | None:
    if not cursor or len(cursor) > 2000:
        return None
    try:
        parts = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        if not isinstance(parts, list) or len(parts) != len(parsers) or not all(isinstance(p, str) for p in parts):
            return None
        return [parse(p) for parse, p in zip(parsers, parts, strict=True)]
    except (ValueError, TypeError, binascii.Error):
        return None


def page(
    stmt: Select[_TP],
    keys: Sequence[Key],
    after: str | None,
    size: int,
    *,
    key_of: Callable[[Row[_TP]], Sequence[Any]],
    descending: bool = False,
) -> tuple[Sequence[Row[_TP]], str | None]:
    """One page of ``stmt``'s rows (``Row`` objects) and the next page's cursor (None: the last).

    ``key_of(row)`` gives a row's key values, in the order of ``keys``."""
    cols = [col for col, _ in keys]
    stmt = stmt.order_by(*[c.desc() if descending else c.asc() for c in cols]).limit(size + 1)
    start = decode(after, [parse for _, parse in keys])
    if start is not None:
        stmt = stmt.where(tuple_(*cols) < tuple_(*start) if descending else tuple_(*cols) > tuple_(*start))
    rows = db.session.execute(stmt).all()
    cursor = encode(key_of(rows[size - 1])) if len(rows) > size else None
    return rows[:size], cursor
