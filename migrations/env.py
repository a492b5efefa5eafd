"""Alembic environment: migrates only the web-owned schema `web`, with its version table there.
Gateway-owned `public.*` and worker-owned `tenant_<id>.*` are never touched."""

from __future__ import annotations

from alembic import context
from flask import current_app
from sqlalchemy import text

from glyphoxa_htmx.extensions import WEB_SCHEMA, db

config = context.config
target_metadata = db.metadata


def include_object(obj, name, type_, reflected, compare_to):
    schema = getattr(obj, "schema", None) or getattr(getattr(obj, "table", None), "schema", None)
    return schema in (None, WEB_SCHEMA)


def run_migrations_online() -> None:
    engine = db.engine
    with engine.connect() as connection:
        # Pages' DATABASE_STATEMENT_TIMEOUT must not cut a long migration short; this connection
        # is invalidated afterwards so the pool never hands the unlimited setting to a page.
        connection.execute(text("SET statement_timeout = 0"))
        connection.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{WEB_SCHEMA}"'))
        connection.commit()
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            version_table_schema=WEB_SCHEMA,
            include_schemas=True,
            include_object=include_object,
            compare_type=True,
        )
        try:
            with context.begin_transaction():
                context.run_migrations()
        finally:
            connection.invalidate()


if context.is_offline_mode():
    context.configure(
        url=current_app.config["SQLALCHEMY_DATABASE_URI"],
        target_metadata=target_metadata,
        literal_binds=True,
        version_table_schema=WEB_SCHEMA,
    )
    with context.begin_transaction():
        context.run_migrations()
else:
    run_migrations_online()
