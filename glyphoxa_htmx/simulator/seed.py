"""Demo history: past, ended sessions written in the gateway's and worker's exact shapes.

:func:`seed_history` writes, for one tenant and campaign, ``sessions`` ended sessions a week
apart: ``public.sessions`` rows, the worker's ``tenant_<id>.sessions`` rows, a transcript
per session in ``tenant_<id>.session_entries``, a small knowledge graph in
``entities``/``relationships``, a recap per session in ``recaps`` (with a tiny valid WAV in
``audio_data``) and the matching ``public.usage_records`` increments. The DDL comes from
:mod:`.ddl`, so shapes are the gateway's.

Idempotent-ish: nothing is written when the tenant already has an ended session.
"""

from __future__ import annotations

import io
import logging
import math
import random
import struct
import uuid
import wave
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from glyphoxa_htmx.simulator import ddl, store
from glyphoxa_htmx.simulator.script import (
    DEFAULT_NPCS,
    PLAYERS,
    DialogueScript,
    Entity,
    Fact,
    Npc,
    npc_entity,
    slug,
)

log = logging.getLogger(__name__)

_NAMESPACE = uuid.UUID("6f1c3b0e-8f0a-4c55-9a57-0b7f3f1d2a10")
SEED_WORKER_POD = "gateway-sim-seed"
LINES_PER_SESSION = 48
RECAP_SAMPLE_RATE = 16000

_RECAP_OPENINGS = (
    "Last time, our heroes",
    "When we left off, the party",
    "Previously, the company",
)


def tiny_wav(seconds: float = 0.5, sample_rate: int = RECAP_SAMPLE_RATE, freq: float = 440.0) -> bytes:
    """A short, valid mono 16-bit PCM WAV (a soft tone that fades out)."""
    frames = int(seconds * sample_rate)
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(sample_rate)
        samples = (int(6000 * (1 - i / frames) * math.sin(2 * math.pi * freq * i / sample_rate)) for i in range(frames))
        w.writeframes(b"".join(struct.pack("<h", s) for s in samples))
    return buf.getvalue()


def _npcs_from_dicts(tenant_id: str, campaign_id: str, npcs: list[dict]) -> list[Npc]:
    result = []
    for d in npcs:
        name = str(d["name"])
        npc_id = str(d.get("id") or uuid.uuid5(_NAMESPACE, f"{tenant_id}:{campaign_id}:npc:{name}"))
        result.append(Npc(npc_id, name, str(d.get("personality") or "")))
    return result or list(DEFAULT_NPCS)


def _recap_text(campaign_id: str, number: int, npcs: list[Npc], facts: list[Fact], rng: random.Random) -> str:
    places = sorted({f.target.name for f in facts if f.target.type == "location"}) or ["the Salt Road"]
    items = sorted({f.target.name for f in facts if f.target.type == "item"}) or ["an old map"]
    factions = sorted({f.target.name for f in facts if f.target.type == "faction"}) or ["the Lantern Guild"]
    npc = rng.choice(npcs)
    other = rng.choice([n for n in npcs if n is not npc] or npcs)
    return (
        f"{rng.choice(_RECAP_OPENINGS)} pressed on towards {rng.choice(places)}. "
        f"{npc.name} warned them about {rng.choice(factions)}, and {other.name} let slip what they knew of "
        f"{rng.choice(items)}. Session {number} ended with more questions than answers."
    )


def seed_history(
    database_url: str,
    tenant_id: str,
    campaign_id: str,
    npcs: list[dict],
    sessions: int = 3,
    *,
    now: datetime | None = None,
) -> int:
    """Write ``sessions`` past sessions for the tenant's campaign; returns how many were
    written (0 when the tenant already has ended sessions). ``npcs`` are dicts with at
    least ``name`` (optionally ``id`` and ``personality``), e.g. rows of npc_definitions."""
    now = now or datetime.now(UTC)
    cast = _npcs_from_dicts(tenant_id, campaign_id, npcs)
    with psycopg.connect(database_url, autocommit=True) as conn:
        ddl.ensure_public_schema(conn)
        schema = ddl.ensure_tenant_schema(conn, tenant_id)
        with conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"seed:{tenant_id}",))
            done = conn.execute(
                "SELECT 1 FROM public.sessions WHERE tenant_id = %s AND state = 'ended' LIMIT 1", (tenant_id,)
            ).fetchone()
            if done:
                log.info("seed: tenant %s already has past sessions; nothing written", tenant_id)
                return 0
            tenant = conn.execute(
                "SELECT license_tier, guild_ids FROM public.tenants WHERE id = %s", (tenant_id,)
            ).fetchone()
            tier = tenant[0] if tenant else "shared"
            guild_id = (tenant[1] or ["900000000000000001"])[0] if tenant else "900000000000000001"
            for number in range(1, sessions + 1):
                _seed_one(conn, schema, tenant_id, campaign_id, tier, guild_id, cast, number, sessions, now)
    log.info("seed: wrote %d past sessions for tenant %s, campaign %s", sessions, tenant_id, campaign_id)
    return sessions


def _seed_one(
    conn: psycopg.Connection,
    schema: str,
    tenant_id: str,
    campaign_id: str,
    tier: str,
    guild_id: str,
    cast: list[Npc],
    number: int,
    total: int,
    now: datetime,
) -> None:
    key = f"{tenant_id}:{campaign_id}:{number}"
    rng = random.Random(key)
    session_id = str(uuid.uuid5(_NAMESPACE, key))
    day = (now - timedelta(days=7 * (total - number + 1))).date()
    started = datetime(day.year, day.month, day.day, 18, 30, tzinfo=UTC) + timedelta(minutes=rng.randint(0, 40))
    script = DialogueScript(cast, seed=key)

    stamp = started + timedelta(minutes=3)
    usage: dict[str, Any] = {"llm_tokens": 0, "tts_chars": 0, "stt_seconds": 0.0}
    lines = []
    all_facts: list[Fact] = []
    for _ in range(LINES_PER_SESSION):
        line = script.next_line()
        lines.append((line, stamp))
        for k, v in store.line_usage(line).items():
            usage[k] += v
        stamp += timedelta(seconds=line.duration_ns / 1e9 + rng.uniform(4, 75))
        all_facts.extend(script.take_facts())
    ended = max(stamp + timedelta(minutes=5), started + timedelta(hours=rng.uniform(2.5, 3.5)))

    conn.execute(
        "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, channel_id, license_tier, state, error, "
        "worker_pod, worker_node, started_at, ended_at, last_voice, last_heartbeat, metadata) "
        "VALUES (%s, %s, %s, %s, %s, %s, 'ended', '', %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (id) DO NOTHING",
        (
            session_id,
            tenant_id,
            campaign_id,
            guild_id,
            "900000000000000100",
            tier,
            SEED_WORKER_POD,
            "gateway-simulator",
            started,
            ended,
            stamp,
            ended,
            Jsonb({"simulated": True, "source": "seed"}),
        ),
    )
    conn.execute(
        sql.SQL(
            "INSERT INTO {}.sessions (session_id, campaign_id, started_at, ended_at) VALUES (%s, %s, %s, %s) "
            "ON CONFLICT (session_id) DO NOTHING"
        ).format(sql.Identifier(schema)),
        (session_id, store.memory_campaign(campaign_id), started, ended),
    )
    for line, ts in lines:
        store.write_entry(conn, schema, campaign_id=campaign_id, session_id=session_id, line=line, timestamp=ts)

    # A small graph: what the table talked about, plus who knows whom.
    facts = list({(f.source.id, f.target.id, f.rel_type): f for f in all_facts}.values())[:14]
    npc_entities = [npc_entity(n) for n in cast]
    for a, b in zip(npc_entities, npc_entities[1:], strict=False):
        facts.append(Fact(a, b, "knows", 0.9))
    if npc_entities:
        player = PLAYERS[number % len(PLAYERS)]
        pc = Entity(f"pc-{slug(player.character)}", "pc", player.character, {"player": player.name})
        facts.append(Fact(pc, npc_entities[number % len(npc_entities)], "trusts", 0.65))
    store.write_facts(conn, schema, campaign_id=campaign_id, session_id=session_id, facts=facts)

    audio = tiny_wav()
    recaps = conn.execute("SELECT to_regclass(%s)", (f"{schema}.recaps",)).fetchone()
    has_recaps = recaps is not None and recaps[0] is not None
    if has_recaps:  # a worker-made schema may have none; we never add the table to it
        conn.execute(
            sql.SQL(
                "INSERT INTO {}.recaps (session_id, campaign_id, text, audio_data, sample_rate, channels, duration_ns, "
                "generated_at) VALUES (%s, %s, %s, %s, %s, 1, %s, %s) ON CONFLICT (session_id) DO NOTHING"
            ).format(sql.Identifier(schema)),
            (
                session_id,
                store.memory_campaign(campaign_id),
                _recap_text(campaign_id, number, cast, all_facts, rng),
                audio,
                RECAP_SAMPLE_RATE,
                int(0.5 * 1e9),
                ended + timedelta(minutes=2),
            ),
        )
    hours = math.ceil((ended - started).total_seconds() / 36.0) / 100.0
    store.add_usage(conn, tenant_id, period=store.current_period(started), session_hours=hours, **usage)
