"""Row writers shared by the simulated worker and the demo seed.

They write exactly what the real worker/gateway write: transcript lines into
``tenant_<id>.session_entries``, knowledge-graph rows into ``entities``/``relationships``
and monthly usage upserts into ``public.usage_records``.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from glyphoxa_htmx.simulator.script import Fact, Line, Npc


def current_period(now: datetime | None = None) -> date:
    """First day of the current month, UTC (usage_records.period)."""
    now = now or datetime.now(UTC)
    return now.astimezone(UTC).date().replace(day=1)


def memory_campaign(campaign_id: str) -> str:
    """The worker scopes memory rows by campaign, using "default" for none."""
    return campaign_id or "default"


def write_entry(
    conn: psycopg.Connection,
    schema: str,
    *,
    campaign_id: str,
    session_id: str,
    line: Line,
    timestamp: datetime | None = None,
) -> int:
    query = sql.SQL(
        "INSERT INTO {}.session_entries (campaign_id, session_id, speaker_id, speaker_name, text, raw_text, "
        "npc_id, timestamp, duration_ns) VALUES (%s, %s, %s, %s, %s, %s, %s, coalesce(%s, now()), %s) RETURNING id"
    ).format(sql.Identifier(schema))
    row = conn.execute(
        query,
        (
            memory_campaign(campaign_id),
            session_id,
            line.speaker_id,
            line.speaker_name,
            line.text,
            line.raw_text,
            line.npc_id,
            timestamp,
            line.duration_ns,
        ),
    ).fetchone()
    assert row is not None  # INSERT ... RETURNING id gives the new row
    return int(row[0])


def write_facts(
    conn: psycopg.Connection, schema: str, *, campaign_id: str, session_id: str, facts: Iterable[Fact]
) -> int:
    """Upsert the facts' entities and relationships; returns the number of relationships."""
    campaign = memory_campaign(campaign_id)
    ent = sql.SQL(
        "INSERT INTO {}.entities (campaign_id, id, type, name, attributes) VALUES (%s, %s, %s, %s, %s) "
        "ON CONFLICT (campaign_id, id) DO UPDATE SET updated_at = now(), "
        "attributes = {}.entities.attributes || EXCLUDED.attributes"
    ).format(sql.Identifier(schema), sql.Identifier(schema))
    rel = sql.SQL(
        "INSERT INTO {}.relationships (campaign_id, source_id, target_id, rel_type, attributes, provenance) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (campaign_id, source_id, target_id, rel_type) "
        "DO UPDATE SET provenance = EXCLUDED.provenance"
    ).format(sql.Identifier(schema))
    count = 0
    for fact in facts:
        for entity in (fact.source, fact.target):
            conn.execute(ent, (campaign, entity.id, entity.type, entity.name, Jsonb(entity.attributes)))
        provenance = {
            "session_id": session_id,
            "confidence": fact.confidence,
            "dm_confirmed": False,
            "source": "transcript",
        }
        conn.execute(rel, (campaign, fact.source.id, fact.target.id, fact.rel_type, Jsonb({}), Jsonb(provenance)))
        count += 1
    return count


def add_usage(
    conn: psycopg.Connection,
    tenant_id: str,
    *,
    period: date | None = None,
    session_hours: float = 0.0,
    llm_tokens: int = 0,
    stt_seconds: float = 0.0,
    tts_chars: int = 0,
) -> None:
    """Increment the tenant's monthly counters (the gateway's upsert)."""
    conn.execute(
        "INSERT INTO public.usage_records (tenant_id, period, session_hours, llm_tokens, stt_seconds, tts_chars) "
        "VALUES (%s, %s, %s, %s, %s, %s) ON CONFLICT (tenant_id, period) DO UPDATE SET "
        "session_hours = usage_records.session_hours + EXCLUDED.session_hours, "
        "llm_tokens = usage_records.llm_tokens + EXCLUDED.llm_tokens, "
        "stt_seconds = usage_records.stt_seconds + EXCLUDED.stt_seconds, "
        "tts_chars = usage_records.tts_chars + EXCLUDED.tts_chars",
        (
            tenant_id,
            period or current_period(),
            round(session_hours, 2),
            int(llm_tokens),
            round(stt_seconds, 2),
            int(tts_chars),
        ),
    )


def line_usage(line: Line) -> dict:
    """What one transcript line costs: STT for players, LLM + TTS for NPCs."""
    seconds = line.duration_ns / 1e9
    if line.is_npc:
        words = len(line.text.split())
        return {"llm_tokens": 220 + 2 * words, "tts_chars": len(line.text), "stt_seconds": 0.0}
    return {"llm_tokens": 0, "tts_chars": 0, "stt_seconds": seconds}


def load_npcs(conn: psycopg.Connection, tenant_id: str, campaign_id: str, has_tenant_column: bool) -> list[Npc]:
    """The campaign's NPCs from public.npc_definitions, as the gateway loads them at start."""
    if has_tenant_column:
        rows = conn.execute(
            "SELECT id, name, personality FROM public.npc_definitions WHERE tenant_id = %s AND campaign_id = %s "
            "ORDER BY name",
            (tenant_id, campaign_id),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT id, name, personality FROM public.npc_definitions WHERE campaign_id = %s ORDER BY name",
            (campaign_id,),
        ).fetchall()
    return [Npc(str(r[0]), str(r[1]), str(r[2] or "")) for r in rows]
