"""The fixed database cost of a request (issue 18): three of a page's round trips were the pool's
pre-ping, ``BEGIN`` and ``ROLLBACK``, on every request.

* Ping only connections that sat idle in the pool for more than ``IDLE_PING_SECONDS`` (a restarted
  server or a proxy's idle cut shows there); a connection used a moment ago is handed out as is. A
  failed ping discards the connection and the pool connects afresh (SQLAlchemy's
  ``DisconnectionError`` protocol); a connection that breaks anyway makes SQLAlchemy invalidate the
  pool, so the next request starts clean.
* Read-only pages (``READ_ONLY_ENDPOINTS``, GET/HEAD only) run on a connection in autocommit mode:
  no ``BEGIN``, and nothing to roll back when it goes back to the pool (psycopg switches the mode
  on the client, without a round trip). Each statement sees committed data as of its start, as
  under READ COMMITTED. The sign-in touch (one ``UPDATE``, about once a minute per sign-in) still
  commits as before. Only list endpoints here whose services never write; a view that starts
  writing must leave this list.
"""

from __future__ import annotations

import time
from typing import Any, cast

from flask import Flask, request
from sqlalchemy import event
from sqlalchemy.engine import CursorResult, Result
from sqlalchemy.engine.interfaces import DBAPIConnection, Dialect
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection

from glyphoxa_htmx.extensions import db

IDLE_PING_SECONDS = 10.0

READ_ONLY_ENDPOINTS = frozenset(
    {
        "pages.dashboard",
        "campaigns.index",
        "campaigns.show",
        "npcs.index",
        "npcs.edit",
        "sessions.index",
        "sessions.detail",
        "sessions.transcript",
        "sessions.search",
        "knowledge.index",
        "knowledge.campaign",
        "knowledge.entity",
        "knowledge.graph",
    }
)


def init_app(app: Flask) -> None:
    with app.app_context():
        engines = list(db.engines.values())
    for engine in engines:
        dialect = engine.dialect

        def _checkin(_dbapi_conn: DBAPIConnection, record: ConnectionPoolEntry) -> None:
            record.info["gx_idle_since"] = time.monotonic()

        def _checkout(
            dbapi_conn: DBAPIConnection,
            record: ConnectionPoolEntry,
            _proxy: PoolProxiedConnection,
            dialect: Dialect = dialect,
        ) -> None:
            since = record.info.get("gx_idle_since")
            if since is None or time.monotonic() - since < IDLE_PING_SECONDS:
                return  # fresh from connect, or used a moment ago
            try:
                dialect.do_ping(dbapi_conn)
            except Exception as exc:  # noqa: BLE001 - any failure: this connection is gone
                raise DisconnectionError("idle connection failed its ping") from exc

        event.listen(engine, "checkin", _checkin)
        event.listen(engine, "checkout", _checkout)
    # Registered before every other before_request hook (init_app runs before Flask-Limiter's and
    # ours): the first statement of a request, e.g. a rate-limit key resolving the sign-in, must
    # already find the connection in autocommit, or SQLAlchemy ignores the option with a warning.
    app.before_request(begin_request)


def begin_request() -> None:
    """before_request: a read-only page gets its connection in autocommit mode."""
    if request.method in ("GET", "HEAD") and request.endpoint in READ_ONLY_ENDPOINTS:
        db.session.connection(execution_options={"isolation_level": "AUTOCOMMIT"})


def rowcount(result: Result[Any]) -> int:
    """The rows an UPDATE or DELETE matched. ``Session.execute`` is typed as returning a ``Result``;
    for those statements it is a ``CursorResult``, which has the count."""
    return cast(CursorResult[Any], result).rowcount
