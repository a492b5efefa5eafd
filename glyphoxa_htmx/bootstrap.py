"""Start-up work shared by `make run`, gunicorn and tests: migrate the web schema, and check the
gateway-owned tables we depend on."""

from __future__ import annotations

import logging
import sys
from contextlib import contextmanager
from urllib.parse import urlsplit

from flask import Flask

log = logging.getLogger(__name__)


class StartupError(RuntimeError):
    """A start-up step failed for a reason the operator must fix; the message is one line."""


def describe_database(url: str) -> str:
    """user@host:port/database of a DATABASE_URL, without the password."""
    parts = urlsplit(url or "")
    host = parts.hostname or "localhost"
    port = f":{parts.port}" if parts.port else ""
    user = f"{parts.username}@" if parts.username else ""
    return f"{user}{host}{port}{parts.path or '/'}"


def _reason(exc: BaseException) -> str:
    """The driver's own first line, e.g. 'connection to server at "db", port 5432 failed: Connection refused'."""
    orig = getattr(exc, "orig", None) or exc
    lines = [line.strip() for line in str(orig).strip().splitlines() if line.strip()]
    reason = lines[0] if lines else type(orig).__name__
    return reason.removeprefix("connection failed: ")


@contextmanager
def database_startup(url: str, step: str):
    """Turn a database failure during a start-up step into one StartupError line naming the
    setting, the server and database, and what failed (instead of chained tracebacks)."""
    import psycopg
    from sqlalchemy.exc import DBAPIError

    try:
        yield
    except (DBAPIError, psycopg.Error) as exc:
        raise StartupError(
            f"{step} failed: cannot use the database DATABASE_URL={describe_database(url)}: {_reason(exc)}"
        ) from None


def check_database(url: str) -> None:
    """Connect once (5 s connect timeout) so a bad DATABASE_URL is one clear line at start."""
    import psycopg

    from glyphoxa_htmx.embedded import libpq_url

    with database_startup(url, "connecting"), psycopg.connect(libpq_url(url), connect_timeout=5) as conn:
        conn.execute("SELECT 1")


def exit_on_startup_error(exc: StartupError) -> None:
    """Print the one line and exit non-zero (used by the CLI and the WSGI entry point)."""
    print(f"glyphoxa-web: {exc}", file=sys.stderr)
    sys.exit(1)


def migrate_db(app: Flask) -> None:
    """Apply Alembic migrations for the `web` schema (idempotent; safe with several processes
    because Alembic takes its version row in one transaction; run it once per deploy anyway)."""
    from flask_migrate import upgrade

    with database_startup(app.config["SQLALCHEMY_DATABASE_URI"], "migrating the web schema"), app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)


def ensure_gateway_tables_for_dev(app: Flask) -> None:
    """Development/embedded mode only: create the gateway-owned tables with the gateway's own
    DDL (the simulator's copy), as a real gateway would on its first start."""
    import psycopg

    from glyphoxa_htmx.embedded import libpq_url
    from glyphoxa_htmx.simulator.ddl import ensure_public_schema

    url = app.config["SQLALCHEMY_DATABASE_URI"]
    with (
        database_startup(url, "creating the gateway's tables"),
        psycopg.connect(libpq_url(url), autocommit=True, connect_timeout=5) as conn,
    ):
        ensure_public_schema(conn)


def check_gateway_tables(app: Flask) -> None:
    """Refuse to run against an `npc_definitions` that lacks columns we write (the gateway's older
    store had no tenant_id): writing it would corrupt data, so stop with a clear message."""
    from sqlalchemy import text

    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import NpcDefinition

    with database_startup(app.config["SQLALCHEMY_DATABASE_URI"], "checking the gateway's tables"), app.app_context():
        cols = {
            r[0]
            for r in db.session.execute(
                text(
                    "SELECT column_name FROM information_schema.columns "
                    "WHERE table_schema = 'public' AND table_name = 'npc_definitions'"
                )
            )
        }
        db.session.rollback()
    if not cols:
        log.warning(
            "public.npc_definitions does not exist yet; NPC editing is unavailable until the gateway creates it"
        )
        return
    missing = [c for c in NpcDefinition.REQUIRED_COLUMNS if c not in cols]
    if missing:
        raise RuntimeError(
            "public.npc_definitions is missing column(s) "
            + ", ".join(missing)
            + ": this is the gateway's older, non-tenant-scoped table. Upgrade the gateway (or add the "
            "column) before starting Glyphoxa Web; refusing to start rather than write NPCs without a tenant."
        )
