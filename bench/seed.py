"""Seed a bench database fast: N tenants, each with an owner (and a sign-in token), ~3 campaigns,
~10 NPCs, ~20 ended sessions and their transcripts (~200 lines per tenant), a small knowledge graph.

Rows are written with COPY in the gateway's and the worker's exact shapes (the simulator's DDL),
the web side's with the web schema's columns. 1,000 tenants take well under a minute.

    python bench/seed.py postgresql://127.0.0.1:5432/glyphoxa_bench 1000   # prints nothing but timings

:func:`seed` returns ``{tenant_id: {"token", "campaign", "session", "npc"}}`` (a raw cookie token
per tenant owner and one id of each kind for the page URLs).
"""

from __future__ import annotations

import hashlib
import json
import random
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
from psycopg import sql

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from glyphoxa_htmx.simulator import ddl  # noqa: E402

CAMPAIGNS = 3
NPCS = 10
SESSIONS = 20
LINES_PER_SESSION = 10
ENTITIES = 12
WORDS = (
    "chapel crown tide lantern smith harbour map guild ferry bell storm relic oath salt raven gate "
    "dagger tavern moon well"
).split()
SPEAKERS = [("p1", "Rowan"), ("p2", "Mara"), ("p3", "Ilse")]
REL_TYPES = ("knows", "owns", "located_in", "serves")


def _copy(conn: psycopg.Connection, table: str, columns: list[str], rows) -> int:
    stmt = sql.SQL("COPY {} ({}) FROM STDIN").format(
        sql.SQL(table), sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    )
    n = 0
    with conn.cursor().copy(stmt) as copy:
        for row in rows:
            copy.write_row(row)
            n += 1
    return n


def bench_text(rng: random.Random, session: int, sessions: int) -> str:
    """A line of the small tables: 6-18 words of a 20-word vocabulary (each word in ~45 % of lines)."""
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(6, 18))).capitalize() + "."


def _pseudo_words(n: int) -> list[str]:
    rng = random.Random(7)
    syllables = [a + b for a in "bdfgklmnprstvz" for b in "aeiou"]
    out: set[str] = set()
    while len(out) < n:
        out.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 3))))
    return sorted(out)


# Speech follows Zipf's law with its head made of words full-text search drops (PostgreSQL's
# English stop words), so the commonest words a search can find are each in a few per cent of lines.
STOP_WORDS = (
    "the and to a of i you it in that is we he for this with was on be have not but they at so all "
    "there are as do me my his she her if no or can will just from up out about them your then an"
).split()
LARGE_WORDS = _pseudo_words(3000)  # what a search can find, commonest first
_LARGE_VOCABULARY = STOP_WORDS + LARGE_WORDS
_LARGE_WEIGHTS = [1 / (i + 1) for i in range(len(_LARGE_VOCABULARY))]
EARLIER_ARC = "strahd"  # a name that only the first tenth of the sessions use


def large_text(rng: random.Random, session: int, sessions: int) -> str:
    """A line of the large table: 6-18 words drawn by Zipf's law from the stop words and 3,000
    more (the commonest of those in ~5 % of lines, the 500th in ~0.2 %), and a name from an
    earlier arc in a fifth of the lines of the first tenth of the sessions."""
    words = rng.choices(_LARGE_VOCABULARY, _LARGE_WEIGHTS, k=rng.randint(6, 18))
    if session < sessions // 10 and rng.random() < 0.2:
        words.insert(rng.randrange(len(words)), EARLIER_ARC.title())
    return " ".join(words).capitalize() + "."


def seed(
    database_url: str,
    tenants: int,
    *,
    prefix: str = "bench",
    log=print,
    npcs_each: int = NPCS,
    sessions_each: int = SESSIONS,
    lines_per_session: int = LINES_PER_SESSION,
    entities_each: int = ENTITIES,
    links_per_entity: int = 0,
    text=bench_text,
) -> dict[str, dict]:
    """Write ``tenants`` tenants into a database that already has the web schema (migrated) and
    the gateway's public tables. Returns per-tenant ids and a raw sign-in token. The sizes default
    to the bench's many small tables; ``text(rng, session, sessions)`` makes each line's text and
    ``links_per_entity`` relationships start at each knowledge entity."""
    t0 = time.perf_counter()
    rng = random.Random(18)
    now = datetime.now(UTC)
    out: dict[str, dict] = {}
    ids = [f"{prefix}_{i:04d}" for i in range(tenants)]
    with psycopg.connect(database_url, autocommit=True) as conn:
        ddl.ensure_public_schema(conn)
        # The worker's memory schemas: one script per batch of tenants, in one transaction each.
        for start in range(0, tenants, 100):
            with conn.transaction():
                for tid in ids[start : start + 100]:
                    schema = sql.Identifier(f"tenant_{tid}").as_string(conn)
                    conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(f"tenant_{tid}")))
                    ddl._exec_script(conn, ddl._MEMORY.format(s=schema))
        t_ddl = time.perf_counter()
        web_tenants, users, logins, gw_tenants, camps, npcs, positions, sessions = [], [], [], [], [], [], [], []
        mem_sessions: dict[str, list] = {}
        links: dict[str, list] = {}
        entries: dict[str, list] = {}
        entities: dict[str, list] = {}
        for tid in ids:
            user_id = str(uuid.uuid4())
            token = uuid.uuid4().hex + uuid.uuid4().hex
            campaign_ids = [f"cmp_{tid}_{c}" for c in range(CAMPAIGNS)]
            web_tenants.append((tid, f"Table {tid}", "active"))  # the active campaign is the gateway's
            users.append((user_id, tid, f"Owner of {tid}", "tenant_owner", f"bench-{tid}", "active", "[]"))
            logins.append(
                (
                    str(uuid.uuid4()),
                    str(uuid.uuid4()),
                    user_id,
                    hashlib.sha256(token.encode()).hexdigest(),
                    now + timedelta(days=30),
                    now,
                    "127.0.0.1",
                    "bench",
                )
            )
            gw_tenants.append((tid, "shared", "{900000000000000001}", campaign_ids[0]))
            for c, cid in enumerate(campaign_ids):
                camps.append(
                    (cid, tid, f"Campaign {c} of {tid}", "D&D 5e", "A bench campaign.", json.dumps({"language": "en"}))
                )
            npc_ids = []
            for n in range(npcs_each):
                npc_id = str(uuid.uuid4())
                npc_ids.append(npc_id)
                cid = campaign_ids[n % CAMPAIGNS]
                npcs.append(
                    (
                        npc_id,
                        tid,
                        cid,
                        f"NPC {n} {rng.choice(WORDS).title()}",
                        "Bench personality.",
                        "cascaded",
                        json.dumps({"provider": "espeak", "voice_id": "en-us"}),
                        "[]",
                        "[]",
                        "[]",
                        "[]",
                        "fast",
                        "false",
                        "false",
                        "{}",
                    )
                )
                positions.append((npc_id, tid, cid, n // CAMPAIGNS))
            sess_rows, lines, ents = [], [], []
            first_session = None
            for s in range(sessions_each):
                sid = str(uuid.uuid4())
                first_session = first_session or sid
                cid = campaign_ids[s % CAMPAIGNS]
                started = now - timedelta(days=7 * (sessions_each - s), hours=rng.random())
                ended = started + timedelta(hours=3)
                sessions.append(
                    (
                        sid,
                        tid,
                        cid,
                        "900000000000000001",
                        "900000000000000100",
                        "shared",
                        "ended",
                        "",
                        "bench",
                        "bench",
                        started,
                        ended,
                        ended,
                        ended,
                        '{"source": "bench"}',
                    )
                )
                sess_rows.append((sid, cid, started, ended))
                stamp = started + timedelta(minutes=3)
                for k in range(lines_per_session):
                    if k % 3 == 2:
                        npc = rng.choice(npc_ids)
                        speaker, name, npc_id = npc, "NPC", npc
                    else:
                        (speaker, name), npc_id = rng.choice(SPEAKERS), ""
                    said = text(rng, s, sessions_each)
                    lines.append((cid, sid, speaker, name, said, said, npc_id, stamp, 1_000_000_000))
                    stamp += timedelta(seconds=rng.randint(4, 60))
            for e in range(entities_each):
                ents.append(
                    (
                        campaign_ids[0],
                        f"ent-{e}",
                        rng.choice(["npc", "location", "item", "faction"]),
                        f"{rng.choice(WORDS).title()} {e}",
                        "{}",
                    )
                )
            rels = {
                (campaign_ids[0], f"ent-{e}", f"ent-{rng.randrange(entities_each)}", rng.choice(REL_TYPES))
                for e in range(entities_each)
                for _ in range(links_per_entity)
            }
            mem_sessions[tid], entries[tid], entities[tid] = sess_rows, lines, ents
            links[tid] = sorted(rels)
            out[tid] = {
                "token": token,
                "campaign": campaign_ids[0],
                "session": first_session,
                "npc": npc_ids[0],
                "user": user_id,
            }
        with conn.transaction():
            _copy(conn, "web.tenants", ["id", "name", "status"], web_tenants)
            _copy(
                conn, "web.users", ["id", "tenant_id", "name", "role", "discord_id", "status", "discord_guilds"], users
            )
            _copy(
                conn,
                "web.login_sessions",
                ["id", "family_id", "user_id", "token_hash", "expires_at", "last_seen_at", "ip", "user_agent"],
                logins,
            )
            _copy(conn, "public.tenants", ["id", "license_tier", "guild_ids", "campaign_id"], gw_tenants)
            _copy(conn, "web.campaigns", ["id", "tenant_id", "name", "game_system", "description", "settings"], camps)
            _copy(
                conn,
                "public.npc_definitions",
                [
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
                ],
                npcs,
            )
            _copy(conn, "web.npc_positions", ["npc_id", "tenant_id", "campaign_id", "position"], positions)
            _copy(
                conn,
                "public.sessions",
                [
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
                ],
                sessions,
            )
            n_lines = 0
            for tid in ids:
                schema = sql.Identifier(f"tenant_{tid}").as_string(conn)
                _copy(
                    conn,
                    f"{schema}.sessions",
                    ["session_id", "campaign_id", "started_at", "ended_at"],
                    mem_sessions[tid],
                )
                n_lines += _copy(
                    conn,
                    f"{schema}.session_entries",
                    [
                        "campaign_id",
                        "session_id",
                        "speaker_id",
                        "speaker_name",
                        "text",
                        "raw_text",
                        "npc_id",
                        "timestamp",
                        "duration_ns",
                    ],
                    entries[tid],
                )
                _copy(conn, f"{schema}.entities", ["campaign_id", "id", "type", "name", "attributes"], entities[tid])
                _copy(
                    conn, f"{schema}.relationships", ["campaign_id", "source_id", "target_id", "rel_type"], links[tid]
                )
        # VACUUM as well as ANALYZE: freshly copied rows have no hint bits or visibility map yet, so
        # the first reads would write every page back and autovacuum would sweep the new tables
        # during the first measurements (cells right after the seed came out 30-40 % slow).
        conn.execute("VACUUM (ANALYZE)")
    log(
        f"seeded {tenants} tenants: {len(camps)} campaigns, {len(npcs)} NPCs, {len(sessions)} ended sessions, "
        f"{n_lines} transcript lines in {time.perf_counter() - t0:.1f}s (schemas {t_ddl - t0:.1f}s)"
    )
    return out


if __name__ == "__main__":
    seed(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 1000)
