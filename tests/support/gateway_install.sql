-- A database as a long-running Glyphoxa v1 gateway and its workers leave it, written from
-- ../shared/gateway-contract.md (sections 1.1-1.5) on purpose WITHOUT the simulator's DDL, so a test
-- can check that the web service (and the simulator) change nothing of it.
--
-- Applied in the order the real components would: the gateway's tenants migrations 000001 and
-- 000002, the session orchestrator's 000001-000003, the npcstore table (tenant-scoped version),
-- then two worker memory schemas created lazily on each tenant's first session (no recaps table,
-- no chunks: pgvector is not assumed). Then months of rows, some written by other tooling.

CREATE EXTENSION IF NOT EXISTS btree_gist;

-- gateway 000001_tenants
CREATE TABLE IF NOT EXISTS tenants (
    id                    TEXT PRIMARY KEY,
    license_tier          TEXT NOT NULL DEFAULT 'shared',
    bot_token             TEXT NOT NULL DEFAULT '',
    guild_ids             TEXT[] DEFAULT '{}',
    monthly_session_hours NUMERIC(10,2) NOT NULL DEFAULT 0,
    created_at            TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at            TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS idx_tenants_tier ON tenants (license_tier);

-- gateway 000002_tenant_campaign
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS campaign_id TEXT NOT NULL DEFAULT '';
ALTER TABLE tenants ADD COLUMN IF NOT EXISTS dm_role_id TEXT NOT NULL DEFAULT '';

-- sessionorch 000001_sessions
CREATE TABLE IF NOT EXISTS sessions (
    id             TEXT PRIMARY KEY,
    tenant_id      TEXT NOT NULL,
    campaign_id    TEXT NOT NULL,
    guild_id       TEXT NOT NULL,
    channel_id     TEXT NOT NULL DEFAULT '',
    license_tier   TEXT NOT NULL,
    state          TEXT NOT NULL DEFAULT 'pending',
    error          TEXT,
    worker_pod     TEXT,
    worker_node    TEXT,
    started_at     TIMESTAMPTZ NOT NULL DEFAULT now(),
    ended_at       TIMESTAMPTZ,
    last_voice     TIMESTAMPTZ,
    last_heartbeat TIMESTAMPTZ,
    metadata       JSONB DEFAULT '{}'
);
ALTER TABLE sessions ADD CONSTRAINT unique_active_campaign EXCLUDE USING gist (
    campaign_id WITH =,
    tstzrange(started_at, COALESCE(ended_at, 'infinity'), '[)') WITH &&
) WHERE (state != 'ended');
CREATE UNIQUE INDEX IF NOT EXISTS idx_one_active_session_shared ON sessions (tenant_id)
    WHERE state != 'ended' AND license_tier = 'shared';
CREATE UNIQUE INDEX IF NOT EXISTS idx_one_active_session_per_guild_dedicated ON sessions (tenant_id, guild_id)
    WHERE state != 'ended' AND license_tier = 'dedicated';
CREATE INDEX IF NOT EXISTS idx_sessions_tenant ON sessions (tenant_id);
CREATE INDEX IF NOT EXISTS idx_sessions_active ON sessions (state) WHERE state != 'ended';

-- sessionorch 000002_usage_records
CREATE TABLE IF NOT EXISTS usage_records (
    id            BIGSERIAL PRIMARY KEY,
    tenant_id     TEXT NOT NULL,
    period        DATE NOT NULL,
    session_hours NUMERIC(10,2) NOT NULL DEFAULT 0,
    llm_tokens    BIGINT NOT NULL DEFAULT 0,
    stt_seconds   NUMERIC(10,2) NOT NULL DEFAULT 0,
    tts_chars     BIGINT NOT NULL DEFAULT 0,
    UNIQUE (tenant_id, period)
);
CREATE INDEX IF NOT EXISTS idx_usage_records_tenant ON usage_records (tenant_id);

-- sessionorch 000003_unique_active_guild
CREATE UNIQUE INDEX IF NOT EXISTS idx_one_active_session_per_guild ON sessions (guild_id) WHERE state != 'ended';

-- npcstore (tenant-scoped version)
CREATE TABLE IF NOT EXISTS npc_definitions (
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
CREATE INDEX IF NOT EXISTS idx_npc_definitions_campaign ON npc_definitions (campaign_id);
CREATE INDEX IF NOT EXISTS idx_npc_definitions_name ON npc_definitions (name);

-- worker memory schemas (pkg/memory/postgres: sessions, session_entries, knowledge graph)
CREATE SCHEMA IF NOT EXISTS "tenant_rabenheim";
CREATE SCHEMA IF NOT EXISTS "tenant_saltmere";

DO $$
DECLARE s TEXT;
BEGIN
  FOREACH s IN ARRAY ARRAY['tenant_rabenheim', 'tenant_saltmere'] LOOP
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I.sessions (
        session_id  TEXT PRIMARY KEY,
        campaign_id TEXT NOT NULL,
        started_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        ended_at    TIMESTAMPTZ)', s);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_sessions_campaign_started ON %I.sessions (campaign_id, started_at DESC)', s);
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I.session_entries (
        id           BIGSERIAL PRIMARY KEY,
        campaign_id  TEXT NOT NULL,
        session_id   TEXT NOT NULL,
        speaker_id   TEXT NOT NULL DEFAULT '''',
        speaker_name TEXT NOT NULL DEFAULT '''',
        text         TEXT NOT NULL,
        raw_text     TEXT NOT NULL DEFAULT '''',
        npc_id       TEXT NOT NULL DEFAULT '''',
        timestamp    TIMESTAMPTZ NOT NULL DEFAULT now(),
        duration_ns  BIGINT NOT NULL DEFAULT 0)', s);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_session_entries_session_id ON %I.session_entries (session_id)', s);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_session_entries_timestamp ON %I.session_entries (timestamp)', s);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_session_entries_session_timestamp ON %I.session_entries (session_id, timestamp)', s);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_session_entries_campaign ON %I.session_entries (campaign_id)', s);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_session_entries_fts ON %I.session_entries USING GIN (to_tsvector(''english'', text))', s);
    EXECUTE format('CREATE TABLE IF NOT EXISTS %I.entities (
        campaign_id TEXT NOT NULL,
        id          TEXT NOT NULL,
        type        TEXT NOT NULL,
        name        TEXT NOT NULL,
        attributes  JSONB NOT NULL DEFAULT ''{}'',
        created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        updated_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (campaign_id, id))', s);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_entities_type ON %I.entities (type)', s);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_entities_name ON %I.entities (name)', s);
    EXECUTE format('CREATE TABLE IF NOT EXISTS %1$I.relationships (
        campaign_id TEXT NOT NULL,
        source_id   TEXT NOT NULL,
        target_id   TEXT NOT NULL,
        rel_type    TEXT NOT NULL,
        attributes  JSONB NOT NULL DEFAULT ''{}'',
        provenance  JSONB NOT NULL DEFAULT ''{}'',
        created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
        PRIMARY KEY (campaign_id, source_id, target_id, rel_type),
        FOREIGN KEY (campaign_id, source_id) REFERENCES %1$I.entities (campaign_id, id) ON DELETE CASCADE,
        FOREIGN KEY (campaign_id, target_id) REFERENCES %1$I.entities (campaign_id, id) ON DELETE CASCADE)', s);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_rel_source ON %I.relationships (source_id)', s);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_rel_target ON %I.relationships (target_id)', s);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_rel_type ON %I.relationships (rel_type)', s);
    EXECUTE format('CREATE INDEX IF NOT EXISTS idx_rel_provenance_confidence ON %I.relationships ((provenance->>''confidence''))', s);
  END LOOP;
END$$;

-- ---------------------------------------------------------------------------------------- rows

-- Two tenants that both use campaign id c1; one that never had a session (no memory schema).
INSERT INTO tenants (id, license_tier, bot_token, guild_ids, monthly_session_hours, created_at, updated_at,
                     campaign_id, dm_role_id) VALUES
  ('rabenheim', 'shared', 'vault:v1:c2VjcmV0', '{111111111111111111}', 40, '2026-03-01 18:00+00', '2026-06-01 18:00+00',
   'c1', '222222222222222222'),
  ('saltmere', 'dedicated', '', NULL, 0, '2026-04-01 18:00+00', '2026-04-01 18:00+00', 'c1', ''),
  ('quiet_keep', 'shared', '', '{}', 0, '2026-05-01 18:00+00', '2026-05-01 18:00+00', '', '');

-- Sessions started from Discord: campaigns exist only as these ids (c1, c2), all ended.
INSERT INTO sessions (id, tenant_id, campaign_id, guild_id, channel_id, license_tier, state, error, worker_pod,
                      worker_node, started_at, ended_at, last_voice, last_heartbeat, metadata) VALUES
  ('0b7c1a52-58a4-4c11-9d7e-3f1b5d2e0a01', 'rabenheim', 'c1', '111111111111111111', '333333333333333333', 'shared',
   'ended', NULL, 'glyphoxa-worker-7f9c', 'node-a', '2026-05-02 19:00+00', '2026-05-02 22:00+00',
   '2026-05-02 21:59+00', '2026-05-02 21:59+00', '{"started_by": "discord", "future_key": {"x": 1}}'),
  ('0b7c1a52-58a4-4c11-9d7e-3f1b5d2e0a02', 'rabenheim', 'c2', '111111111111111111', '333333333333333333', 'shared',
   'ended', 'heartbeat timeout', 'glyphoxa-worker-7f9c', 'node-a', '2026-05-09 19:00+00', '2026-05-09 20:30+00',
   NULL, '2026-05-09 20:29+00', '{}'),
  ('0b7c1a52-58a4-4c11-9d7e-3f1b5d2e0a03', 'saltmere', 'c1', '444444444444444444', '555555555555555555', 'dedicated',
   'ended', NULL, 'glyphoxa-worker-1a2b', 'node-b', '2026-05-03 19:00+00', '2026-05-03 21:00+00',
   NULL, NULL, NULL);

INSERT INTO usage_records (tenant_id, period, session_hours, llm_tokens, stt_seconds, tts_chars) VALUES
  ('rabenheim', '2026-05-01', 4.50, 120000, 9000.00, 45000),
  ('saltmere', '2026-05-01', 2.00, 30000, 3600.00, 9000);

-- NPC rows written by the gateway's own tooling: voice keys and attribute types the editor doesn't know.
INSERT INTO npc_definitions (id, tenant_id, campaign_id, name, personality, engine, voice, knowledge_scope,
                             secret_knowledge, behavior_rules, tools, budget_tier, gm_helper, address_only, attributes,
                             created_at, updated_at) VALUES
  ('npc-greta', 'rabenheim', 'c1', 'Greta Ironbraid', 'Gruff smith.', 'cascaded',
   '{"provider": "elevenlabs", "voice_id": "pNInz6obpgDQGcFmaJgB", "model": "eleven_turbo_v2", "stability": 0.4, "pitch_shift": 0, "speed_factor": 1.0}',
   '["smithing", "the forge"]', '["owes the guild money"]', '["never haggles"]', '[]', 'standard', false, false,
   '{"age": 52, "hostile": false, "tags": ["smith", "dwarf"], "mood": "grumpy", "stats": {"str": 16}}',
   '2026-03-02 10:00+00', '2026-04-02 10:00+00'),
  ('npc-tom', 'rabenheim', 'c2', 'Old Tom', '', 's2s', '{}', '[]', '[]', '[]', '[]', 'fast', true, false, '{}',
   '2026-03-03 10:00+00', '2026-03-03 10:00+00'),
  ('npc-lonely', 'rabenheim', 'c3', 'The Lonely Ferryman', 'Only ever configured, never played.', 'cascaded',
   '{"voice_id": "ferry", "unknown_flag": true}', '[]', '[]', '[]', '["dice"]', 'deep', false, true,
   '{"fare": 2}', '2026-03-04 10:00+00', '2026-03-04 10:00+00'),
  ('npc-sal', 'saltmere', 'c1', 'Saltmere Sal', 'Harbour master.', 'cascaded', '{"voice_id": "sal"}', '[]', '[]',
   '[]', '[]', 'fast', false, false, '{}', '2026-04-02 10:00+00', '2026-04-02 10:00+00');

-- Worker memory: transcripts (one line arrived late: higher id, earlier timestamp) and a knowledge graph.
INSERT INTO tenant_rabenheim.sessions (session_id, campaign_id, started_at, ended_at) VALUES
  ('0b7c1a52-58a4-4c11-9d7e-3f1b5d2e0a01', 'c1', '2026-05-02 19:00+00', '2026-05-02 22:00+00'),
  ('0b7c1a52-58a4-4c11-9d7e-3f1b5d2e0a02', 'c2', '2026-05-09 19:00+00', '2026-05-09 20:30+00');
INSERT INTO tenant_rabenheim.session_entries (campaign_id, session_id, speaker_id, speaker_name, text, raw_text,
                                              npc_id, timestamp, duration_ns) VALUES
  ('c1', '0b7c1a52-58a4-4c11-9d7e-3f1b5d2e0a01', '900000000000000001', 'Mira', 'We need a blade forged by dawn.', '', '', '2026-05-02 19:10:00+00', 2100000000),
  ('c1', '0b7c1a52-58a4-4c11-9d7e-3f1b5d2e0a01', '', 'Greta Ironbraid', 'Dawn costs double, lass.', '', 'npc-greta', '2026-05-02 19:10:20+00', 1800000000),
  ('c1', '0b7c1a52-58a4-4c11-9d7e-3f1b5d2e0a01', '900000000000000002', 'Rowan', 'Then double it is.', '', '', '2026-05-02 19:10:40+00', 1200000000),
  ('c1', '0b7c1a52-58a4-4c11-9d7e-3f1b5d2e0a01', '900000000000000003', 'Ash', 'Wait, what about the mithril?', '', '', '2026-05-02 19:10:10+00', 900000000),
  ('c2', '0b7c1a52-58a4-4c11-9d7e-3f1b5d2e0a02', '', 'Old Tom', 'The river remembers every toll.', '', 'npc-tom', '2026-05-09 19:05:00+00', 2000000000);
INSERT INTO tenant_rabenheim.entities (campaign_id, id, type, name, attributes) VALUES
  ('c1', 'npc-greta', 'npc', 'Greta Ironbraid', '{"trade": "smith", "unknown": [1, 2]}'),
  ('c1', 'place-forge', 'location', 'The Ember Forge', '{}'),
  ('c2', 'npc-tom', 'npc', 'Old Tom', '{}');
INSERT INTO tenant_rabenheim.relationships (campaign_id, source_id, target_id, rel_type, attributes, provenance) VALUES
  ('c1', 'npc-greta', 'place-forge', 'works_at', '{}', '{"confidence": 0.9, "session_id": "0b7c1a52-58a4-4c11-9d7e-3f1b5d2e0a01"}');

INSERT INTO tenant_saltmere.sessions (session_id, campaign_id, started_at, ended_at) VALUES
  ('0b7c1a52-58a4-4c11-9d7e-3f1b5d2e0a03', 'c1', '2026-05-03 19:00+00', '2026-05-03 21:00+00');
INSERT INTO tenant_saltmere.session_entries (campaign_id, session_id, speaker_name, text, timestamp) VALUES
  ('c1', '0b7c1a52-58a4-4c11-9d7e-3f1b5d2e0a03', 'Saltmere Sal', 'Harbour fees are due at noon.', '2026-05-03 19:05:00+00');
INSERT INTO tenant_saltmere.entities (campaign_id, id, type, name) VALUES ('c1', 'npc-sal', 'npc', 'Saltmere Sal');
