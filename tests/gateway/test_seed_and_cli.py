"""The demo history seed and the ``gateway-sim`` command."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import wave

import pytest

from glyphoxa_htmx.adapters.gateway.client import GatewayClient
from glyphoxa_htmx.simulator.seed import seed_history

from .conftest import unique_tenant


def test_seed_history_writes_readable_past_sessions(gw_db, db):
    tid, campaign = unique_tenant(), "camp_seed"
    db.execute("INSERT INTO public.tenants (id, guild_ids) VALUES (%s, %s)", (tid, ["555000111"]))
    npcs = [
        {"id": "npc-1", "name": "Mira Thornwood", "personality": "herbalist"},
        {"name": "Bram the Ferryman"},
    ]
    assert seed_history(gw_db, tid, campaign, npcs, sessions=3) == 3

    sessions = db.execute(
        "SELECT id, state, campaign_id, guild_id, started_at, ended_at FROM public.sessions "
        "WHERE tenant_id = %s ORDER BY started_at",
        (tid,),
    ).fetchall()
    assert len(sessions) == 3
    assert all(s[1] == "ended" and s[2] == campaign and s[3] == "555000111" and s[5] > s[4] for s in sessions)

    schema = f"tenant_{tid}"
    for sid, *_ in sessions:
        lines = db.execute(
            f'SELECT speaker_name, text, raw_text, npc_id, timestamp, campaign_id FROM "{schema}".session_entries '
            "WHERE session_id = %s ORDER BY id",
            (sid,),
        ).fetchall()
        assert len(lines) >= 20
        assert all(name and text and raw and camp == campaign for name, text, raw, _, _, camp in lines)
        stamps = [line[4] for line in lines]
        assert stamps == sorted(stamps)
        assert {line[0] for line in lines if line[3]} <= {"Mira Thornwood", "Bram the Ferryman"}
        assert any(line[3] == "npc-1" for line in lines)

        text, audio, rate, channels, duration = db.execute(
            f'SELECT text, audio_data, sample_rate, channels, duration_ns FROM "{schema}".recaps WHERE session_id = %s',
            (sid,),
        ).fetchone()
        assert text and duration > 0
        with wave.open(io.BytesIO(bytes(audio))) as w:  # a valid WAV
            assert (w.getframerate(), w.getnchannels()) == (rate, channels)
            assert w.getnframes() > 0

    memory = db.execute(f'SELECT count(*) FROM "{schema}".sessions WHERE ended_at IS NOT NULL').fetchone()[0]
    assert memory == 3
    entities = db.execute(f'SELECT count(*), count(DISTINCT type) FROM "{schema}".entities').fetchone()
    assert entities[0] >= 4 and entities[1] >= 3
    rels = db.execute(f'SELECT rel_type, provenance FROM "{schema}".relationships').fetchall()
    assert rels and all(p["session_id"] in {s[0] for s in sessions} for _, p in rels)
    usage = db.execute(
        "SELECT sum(session_hours), sum(llm_tokens), sum(tts_chars) FROM public.usage_records WHERE tenant_id = %s",
        (tid,),
    ).fetchone()
    assert usage[0] >= 7.5 and usage[1] > 0 and usage[2] > 0

    # idempotent-ish: a second run writes nothing
    assert seed_history(gw_db, tid, campaign, npcs, sessions=3) == 0
    assert db.execute("SELECT count(*) FROM public.sessions WHERE tenant_id = %s", (tid,)).fetchone()[0] == 3


def test_gateway_sim_command_serves_until_interrupted(gw_db, free_port):
    from .conftest import SECRET

    env = dict(os.environ, PYTHONUNBUFFERED="1")
    code = "from glyphoxa_htmx.simulator.cli import gateway_sim; gateway_sim()"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            code,
            "--db",
            gw_db,
            "--listen",
            f"127.0.0.1:{free_port}",
            "--secret",
            SECRET,
            "--activation-delay",
            "0.1",
            "--line-interval",
            "0.2",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        env=env,
        text=True,
    )
    try:
        seen = []
        for _ in range(200):  # log lines may come first
            line = proc.stdout.readline()
            seen.append(line)
            if "listening on" in line or not line:
                break
        assert f"listening on 127.0.0.1:{free_port}" in seen[-1], "".join(seen)
        with GatewayClient(f"127.0.0.1:{free_port}", SECRET) as client:
            tid = unique_tenant()
            assert client.create_tenant(tid).id == tid
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=20)
        assert proc.returncode == 0, out
        assert "stopping gateway simulator" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.fixture
def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
