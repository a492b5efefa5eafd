"""Voice previews: the ElevenLabs adapter against a local server with ElevenLabs' shapes, the
espeak-ng engine, the preview route (audio bytes, cache, rate limit, errors) and the voice picker."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from glyphoxa_htmx.adapters import tts
from glyphoxa_htmx.adapters.tts.espeak import parse_voices
from tests.conftest import soup
from tests.support.fake_elevenlabs import FAKE_MP3, FakeElevenLabs

RACHEL = "21m00Tcm4TlvDq8ikWAM"
# Skips only on a developer machine without the Debian package; in CI (.ci/run installs it) a
# missing espeak-ng makes these tests fail instead of silently skipping.
needs_espeak = pytest.mark.skipif(
    shutil.which("espeak-ng") is None and not os.environ.get("CI"),
    reason="espeak-ng is not installed (apt-get install espeak-ng)",
)


@pytest.fixture(scope="module")
def fake_xi():
    server = FakeElevenLabs().start()
    yield server
    server.stop()


@pytest.fixture
def xi(fake_xi, monkeypatch, tmp_path, app):
    """The fake ElevenLabs configured through the environment as the operator's platform key
    (allowed as a fallback: these tables have no key of their own; per-tenant keys are in
    test_providers), a fresh request log and preview cache."""
    fake_xi.requests.clear()
    fake_xi.rate_limit_next = 0
    monkeypatch.setenv("ELEVENLABS_API_BASE", fake_xi.base)
    monkeypatch.setenv("ELEVENLABS_API_KEY", fake_xi.api_key)
    monkeypatch.setattr(app.extensions["glyphoxa.settings"], "allow_platform_keys", True)
    monkeypatch.setenv("TTS_CACHE_DIR", str(tmp_path / "tts-cache"))
    from glyphoxa_htmx.services import voice

    voice._voice_lists.clear()
    return fake_xi


# ---- the ElevenLabs adapter over real HTTP ---------------------------------------------------------


def test_elevenlabs_synthesize_sends_elevenlabs_shapes(xi):
    engine = tts.ElevenLabsEngine(xi.api_key, base_url=xi.base, model_id="eleven_multilingual_v2")
    audio = engine.synthesize("Well met, traveller.", RACHEL)
    assert audio.mimetype == "audio/mpeg" and audio.data == FAKE_MP3
    (req,) = xi.tts_requests()
    assert req["method"] == "POST" and req["path"] == f"/v1/text-to-speech/{RACHEL}"
    assert req["headers"]["Xi-Api-Key"] == xi.api_key
    assert req["headers"]["Accept"] == "audio/mpeg"
    assert req["args"]["output_format"] == "mp3_44100_128"
    assert req["json"]["text"] == "Well met, traveller."
    assert req["json"]["model_id"] == "eleven_multilingual_v2"
    assert set(req["json"]["voice_settings"]) >= {"stability", "similarity_boost"}
    assert xi.api_key not in repr(engine)


def test_elevenlabs_errors_map_to_messages(xi):
    with pytest.raises(tts.TtsAuthError) as bad_key:
        tts.ElevenLabsEngine("wrong-key", base_url=xi.base).synthesize("Hi", RACHEL)
    assert "API key" in bad_key.value.message
    xi.rate_limit_next = 1
    with pytest.raises(tts.TtsRateLimited) as limited:
        tts.ElevenLabsEngine(xi.api_key, base_url=xi.base).synthesize("Hi", RACHEL)
    assert limited.value.status == 429
    with pytest.raises(tts.TtsBadVoice):
        tts.ElevenLabsEngine(xi.api_key, base_url=xi.base).synthesize("Hi", "nosuchvoice")
    with pytest.raises(tts.TtsAuthError):
        tts.ElevenLabsEngine("", base_url=xi.base).synthesize("Hi", RACHEL)
    assert len(xi.tts_requests()) == 3  # no request without a key
    with pytest.raises(tts.TtsUnavailable):
        tts.ElevenLabsEngine("k", base_url="http://127.0.0.1:9").synthesize("Hi", RACHEL)


def test_elevenlabs_voice_list(xi):
    voices = tts.ElevenLabsEngine(xi.api_key, base_url=xi.base).voices()
    assert [v.name for v in voices] == ["Adam", "Daniel", "Rachel"]
    daniel = voices[1]
    assert daniel.id == "onwK4e9ZLuTAKqWW03F9" and "british" in daniel.description
    assert daniel.matches("british male") and not daniel.matches("female")
    assert xi.requests[-1]["headers"]["Xi-Api-Key"] == xi.api_key


# ---- espeak-ng ---------------------------------------------------------------------------------------


def test_espeak_voice_listing_parser():
    listing = (
        " Pty Language       Age/Gender VoiceName          File                 Other Languages\n"
        " 5  en-gb           --/M      English_(Great_Britain) gmw/en               (en 2)\n"
        " 5  de              --/F      German             gmw/de\n"
    )
    voices = parse_voices(listing)
    assert [(v.id, v.name, v.description) for v in voices] == [
        ("en-gb", "English (Great Britain)", "male"),
        ("de", "German", "female"),
    ]


@needs_espeak
def test_espeak_synthesizes_wav_and_lists_voices():
    engine = tts.EspeakEngine()
    audio = engine.synthesize("-v de --help; rm -rf /", "en-gb")  # text goes to stdin, never argv
    assert audio.mimetype == "audio/wav" and audio.data[:4] == b"RIFF" and audio.data[8:12] == b"WAVE"
    riff_size = int.from_bytes(audio.data[4:8], "little")
    assert riff_size == len(audio.data) - 8  # a complete header, so browsers decode it
    assert any(v.id == "en-gb" for v in engine.voices())
    with pytest.raises(tts.TtsBadVoice):
        engine.synthesize("Hi", "--help")


def test_missing_espeak_is_a_clear_message():
    engine = tts.EspeakEngine("/nonexistent/espeak-ng")
    with pytest.raises(tts.TtsUnavailable) as exc:
        engine.synthesize("Hi", "en")
    assert "espeak-ng" in exc.value.message


# ---- the preview route ---------------------------------------------------------------------------------


def _npc(app, user, *, provider="elevenlabs", voice_id=RACHEL, pitch=2, speed=1.25, name="Greta Ironbraid"):
    from glyphoxa_htmx.core.authz import Actor, Role
    from glyphoxa_htmx.services import campaigns, npcs

    actor = Actor(user_id=user.id, tenant_id=user.tenant_id, role=Role(user.role))
    with app.app_context():
        campaign = campaigns.create(actor, {"name": "Voices"})
        npc = npcs.create(
            actor,
            campaign.id,
            {
                "name": name,
                "voice": {"provider": provider, "voice_id": voice_id, "pitch_shift": pitch, "speed_factor": speed},
            },
        )
        return npc.id


def test_preview_returns_audio_and_serves_repeats_from_cache(app, as_role, xi):
    b = as_role("dm")
    npc_id = _npc(app, b.user)
    first = b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "Fair prices, no haggling."})
    assert first.status_code == 200, first.get_data(as_text=True)
    assert first.mimetype == "audio/mpeg" and first.data == FAKE_MP3
    assert first.headers["X-Preview-Cache"] == "miss"
    assert first.headers["X-Voice-Pitch"] == "2" and first.headers["X-Voice-Speed"] == "1.25"
    assert xi.tts_requests()[-1]["json"]["text"] == "Fair prices, no haggling."
    again = b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "Fair  prices, no haggling. "})
    assert again.status_code == 200 and again.data == FAKE_MP3 and again.headers["X-Preview-Cache"] == "hit"
    assert len(xi.tts_requests()) == 1  # the engine was not asked twice
    other = b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "Something else."})
    assert other.headers["X-Preview-Cache"] == "miss" and len(xi.tts_requests()) == 2


def test_preview_default_greeting_and_unsaved_editor_voice(app, as_role, xi):
    b = as_role("dm")
    npc_id = _npc(app, b.user)
    resp = b.post(f"/npcs/{npc_id}/voice-preview", {})
    assert resp.status_code == 200
    assert "Greta" in xi.tts_requests()[-1]["json"]["text"]
    # The editor sends its current (unsaved) voice fields: those are what the DM hears.
    resp = b.post(
        f"/npcs/{npc_id}/voice-preview",
        {
            "voice_provider": "elevenlabs",
            "voice_id": "pNInz6obpgDQGcFmaJgB",
            "pitch_shift": "-3",
            "speed_factor": "0.8",
            "preview_text": "Hm.",
        },
    )
    assert resp.status_code == 200 and resp.headers["X-Voice-Pitch"] == "-3" and resp.headers["X-Voice-Speed"] == "0.8"
    assert xi.tts_requests()[-1]["path"].endswith("/pNInz6obpgDQGcFmaJgB")
    bad = b.post(
        f"/npcs/{npc_id}/voice-preview",
        {"voice_provider": "elevenlabs", "voice_id": RACHEL, "pitch_shift": "12"},
        htmx=True,
    )
    assert bad.status_code == 422 and "Pitch" in json.loads(bad.headers["HX-Trigger"])["toast"]["message"]


def test_preview_text_limit_and_provider_errors(app, as_role, xi, monkeypatch):
    b = as_role("dm")
    npc_id = _npc(app, b.user)
    long = b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "x" * 201}, htmx=True)
    assert long.status_code == 422
    assert "200 characters" in json.loads(long.headers["HX-Trigger"])["toast"]["message"]
    xi.rate_limit_next = 1
    limited = b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "one"}, htmx=True)
    assert limited.status_code == 429
    assert "rate limiting" in json.loads(limited.headers["HX-Trigger"])["toast"]["message"]
    monkeypatch.setenv("ELEVENLABS_API_KEY", "revoked")
    denied = b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "two"})
    assert denied.status_code == 502 and "API key" in soup(denied).get_text()
    assert len(xi.tts_requests()) == 2


def test_preview_rate_limit_is_per_user(app, as_role, xi):
    b = as_role("dm")
    npc_id = _npc(app, b.user)
    for i in range(5):
        assert b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": f"line {i}"}).status_code == 200
    sixth = b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "line 6"}, htmx=True)
    assert sixth.status_code == 429
    assert "Wait a minute" in json.loads(sixth.headers["HX-Trigger"])["toast"]["message"]
    page = b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "line 7"})
    assert page.status_code == 429 and "Slow down" in soup(page).select_one("h1").text
    assert len(xi.tts_requests()) == 5
    # Another DM at the same table (same IP in tests) has their own allowance.
    other = as_role("dm", tenant_id=b.user.tenant_id)
    assert other.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "line 8"}).status_code == 200


def test_viewer_cannot_preview(app, as_role, make_user, xi):
    owner = as_role("dm")
    npc_id = _npc(app, owner.user)
    viewer = as_role("viewer", tenant_id=owner.user.tenant_id)
    assert viewer.post(f"/npcs/{npc_id}/voice-preview", {}).status_code == 403
    assert viewer.get("/voices?provider=elevenlabs").status_code == 403
    assert xi.tts_requests() == []


@needs_espeak
def test_preview_with_local_engine_is_wav(app, as_role, monkeypatch, tmp_path):
    monkeypatch.setenv("TTS_CACHE_DIR", str(tmp_path))
    b = as_role("dm")
    npc_id = _npc(app, b.user, provider="espeak", voice_id="en-gb", pitch=-4, speed=0.9, name="Brother Aldric")
    resp = b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "The chapel remembers."})
    assert resp.status_code == 200 and resp.mimetype == "audio/wav" and resp.data[:4] == b"RIFF"
    assert resp.headers["X-Voice-Pitch"] == "-4"
    cached = list(tmp_path.rglob("*.wav"))
    assert len(cached) == 1 and cached[0].read_bytes() == resp.data
    assert (
        b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "The chapel remembers."}).headers["X-Preview-Cache"]
        == "hit"
    )


def test_unknown_provider_has_no_preview(app, as_role, xi):
    b = as_role("dm")
    npc_id = _npc(app, b.user, provider="coqui", voice_id="narrator")
    resp = b.post(f"/npcs/{npc_id}/voice-preview", {}, htmx=True)
    assert resp.status_code == 422 and "coqui" in json.loads(resp.headers["HX-Trigger"])["toast"]["message"]


# ---- the voice picker -----------------------------------------------------------------------------------


def test_voice_picker_lists_and_searches_provider_voices(app, as_role, xi):
    b = as_role("dm")
    page = b.get("/voices?provider=elevenlabs")
    assert page.status_code == 200
    doc = soup(page)
    assert doc.select_one("nav#nav") is not None
    assert [o["data-voice-id"] for o in doc.select(".voice-option")] == [
        "pNInz6obpgDQGcFmaJgB",
        "onwK4e9ZLuTAKqWW03F9",
        RACHEL,
    ]
    block = b.get("/voices?voice_provider=elevenlabs&vq=british", htmx=True)
    assert "<html" not in block.get_data(as_text=True)
    assert [o.strong.text for o in soup(block).select(".voice-option")] == ["Daniel"]
    assert len([r for r in xi.requests if r["path"] == "/v1/voices"]) == 1  # the list is cached briefly
    none = b.get("/voices?provider=elevenlabs&q=klingon", htmx=True)
    assert "No voices match" in soup(none).get_text()


def test_voice_picker_shows_provider_errors(app, as_role, xi, monkeypatch):
    monkeypatch.setenv("ELEVENLABS_API_KEY", "wrong")
    resp = as_role("dm").get("/voices?provider=elevenlabs", htmx=True)
    assert resp.status_code == 200 and "API key" in soup(resp).select_one(".notice-error").text


@needs_espeak
def test_voice_picker_local_voices(app, as_role):
    resp = as_role("dm").get("/voices?provider=espeak&q=en-gb", htmx=True)
    ids = [o["data-voice-id"] for o in soup(resp).select(".voice-option")]
    assert "en-gb" in ids


def test_elevenlabs_voice_needs_an_id_before_preview(app, as_role, xi):
    b = as_role("dm")
    npc_id = _npc(app, b.user, voice_id="")
    resp = b.post(f"/npcs/{npc_id}/voice-preview", {}, htmx=True)
    assert (
        resp.status_code == 422
        and "Pick an ElevenLabs voice" in json.loads(resp.headers["HX-Trigger"])["toast"]["message"]
    )
    assert xi.tts_requests() == []


def test_cache_prune_removes_only_stale_previews(app, as_role, xi, tmp_path):
    import os
    import time

    from glyphoxa_htmx.services import voice

    b = as_role("dm")
    npc_id = _npc(app, b.user)
    b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "old"})
    b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "new"})
    files = sorted((tmp_path / "tts-cache").rglob("*.mp3"))
    assert len(files) == 2
    old = time.time() - 31 * 86400
    os.utime(files[0], (old, old))
    with app.app_context():
        assert voice.prune_cache() == 1
    assert len(list((tmp_path / "tts-cache").rglob("*.mp3"))) == 1
