"""Start-up work shared by `make run`, gunicorn and tests: migrate the web schema, and check the
gateway-owned tables we depend on."""

from __future__ import annotations

import logging

from flask import Flask

log = logging.getLogger(__name__)


def migrate_db(app: Flask) -> None:
    """Apply Alembic migrations for the `web` schema (idempotent; safe with several processes
    because Alembic takes its version row in one transaction; run it once per deploy anyway)."""
    from flask_migrate import upgrade

    with app.app_context():
        upgrade(directory=app.extensions["migrate"].directory)


def ensure_gateway_tables_for_dev(app: Flask) -> None:
    """Development/embedded mode only: create the gateway-owned tables with the gateway's own
    DDL (the simulator's copy), as a real gateway would on its first start."""
    from glyphoxa_htmx.simulator.ddl import ensure_public_schema
    from glyphoxa_htmx.embedded import libpq_url

    import psycopg

    with psycopg.connect(libpq_url(app.config["SQLALCHEMY_DATABASE_URI"]), autocommit=True) as conn:
        ensure_public_schema(conn)


def check_gateway_tables(app: Flask) -> None:
    """Refuse to run against an `npc_definitions` that lacks columns we write (the gateway's older
    store had no tenant_id): writing it would corrupt data, so stop with a clear message."""
    from sqlalchemy import text

    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import NpcDefinition

    with app.app_context():
        cols = {
            r[0]
            for r in db.session.execute(
                text("SELECT column_name FROM information_schema.columns "
                     "WHERE table_schema = 'public' AND table_name = 'npc_definitions'")
            )
        }
        db.session.rollback()
    if not cols:
        log.warning("public.npc_definitions does not exist yet; NPC editing is unavailable until the gateway creates it")
        return
    missing = [c for c in NpcDefinition.REQUIRED_COLUMNS if c not in cols]
    if missing:
        raise RuntimeError(
            "public.npc_definitions is missing column(s) " + ", ".join(missing)
            + ": this is the gateway's older, non-tenant-scoped table. Upgrade the gateway (or add the "
            "column) before starting Glyphoxa Web; refusing to start rather than write NPCs without a tenant."
        )
