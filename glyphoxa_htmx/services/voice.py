"""Voice previews and voice lists, over the TTS adapters.

A preview is synthesized at the voice's natural pitch and speed; the browser's Web Audio island
applies pitch_shift and speed_factor while playing (they are the NPC's settings, not the engine's).
So the cache key is (tenant, engine identity, provider, voice id, text): moving the pitch slider
never costs another synthesis. Cached files live under ``TTS_CACHE_DIR`` (default
``<instance>/tts-cache``), one file per key, written atomically."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import current_app
from flask_babel import force_locale

from glyphoxa_htmx.adapters import tts
from glyphoxa_htmx.adapters.secrets import SecretsError
from glyphoxa_htmx.core import deps
from glyphoxa_htmx.core.authz import Actor, Perm, require
from glyphoxa_htmx.core.errors import DomainError, ValidationError
from glyphoxa_htmx.core.i18n import _, lazy_gettext
from glyphoxa_htmx.core.memo import Memo
from glyphoxa_htmx.core.metrics import VOICE_PREVIEWS
from glyphoxa_htmx.services import npcs
from glyphoxa_htmx.services import providers as provider_keys

log = logging.getLogger(__name__)

PREVIEW_MAX = 200
VOICE_LIST_TTL = 300.0
CACHE_MAX_AGE_DAYS = 30.0
PRUNE_CHANCE = 0.01
_MIMES = {"wav": "audio/wav", "mp3": "audio/mpeg"}


class VoiceError(DomainError):
    """A TTS failure, with a message for the DM and the HTTP status to answer with. ``message`` is
    in the request's language; :meth:`english` is the same message for the database and audit log
    (pass a ``lazy_gettext`` message so that both can be made from it)."""

    status = 502

    def __init__(self, message: str, status: int = 502):
        self.source = message
        super().__init__(str(message))
        self.status = status

    def english(self) -> str:
        with force_locale("en"):
            return str(self.source)


@dataclass(frozen=True)
class Preview:
    data: bytes
    mimetype: str
    cached: bool
    pitch_shift: float
    speed_factor: float
    text: str


def providers() -> dict[str, str]:
    return dict(tts.PROVIDERS)


def default_provider(actor: Actor | None = None) -> str:
    """TTS_ENGINE when it names a provider; with ``auto``, ElevenLabs when the table has its own
    ElevenLabs TTS key (or the operator allows the platform key and one is set), else espeak-ng."""
    choice = os.environ.get("TTS_ENGINE", "").strip().lower() or "auto"
    if choice in tts.PROVIDERS:
        return choice
    if actor is not None and provider_keys.key_for(actor, "tts", "elevenlabs") is not None:
        return "elevenlabs"
    if _platform_keys_allowed() and os.environ.get("ELEVENLABS_API_KEY", "").strip():
        return "elevenlabs"
    return "espeak"


def _platform_keys_allowed() -> bool:
    return bool(deps.settings().allow_platform_keys)


def default_line(name: str) -> str:
    first = (name or "").split()[0] if (name or "").split() else "a friend"
    return f"Well met, traveller. They call me {first}. What brings you here?"


def cache_dir() -> Path:
    configured = os.environ.get("TTS_CACHE_DIR", "").strip()
    return Path(configured) if configured else Path(current_app.instance_path) / "tts-cache"


def cache_key(tenant_id: str, engine_identity: str, provider: str, voice_id: str, text: str) -> str:
    raw = json.dumps([tenant_id, engine_identity, provider, voice_id, text], ensure_ascii=False)
    return hashlib.sha256(raw.encode()).hexdigest()


def _cache_get(key: str) -> tts.Audio | None:
    folder = cache_dir() / key[:2]
    for ext, mime in _MIMES.items():
        path = folder / f"{key}.{ext}"
        try:
            audio = tts.Audio(path.read_bytes(), mime)
        except FileNotFoundError:
            continue
        try:
            os.utime(path)  # recently heard previews are kept by prune_cache
        except OSError:
            pass
        return audio
    return None


def _cache_put(key: str, audio: tts.Audio) -> None:
    folder = cache_dir() / key[:2]
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(audio.data)
        os.replace(tmp, folder / f"{key}.{audio.extension}")
    except OSError as exc:  # a full or read-only disk must not break previews
        log.warning("could not cache a voice preview: %s", exc)
    if random.random() < PRUNE_CHANCE:
        prune_cache()


def prune_cache(max_age_days: float = CACHE_MAX_AGE_DAYS) -> int:
    """Delete cached previews not read or written for ``max_age_days``; returns how many.
    Runs now and then after a write, so the cache stays bounded without a scheduler."""
    cutoff = time.time() - max_age_days * 86400
    removed = 0
    for path in cache_dir().glob("*/*"):
        try:
            if path.stat().st_mtime < cutoff:
                path.unlink()
                removed += 1
        except OSError:
            continue
    return removed


NO_KEY_MESSAGE = lazy_gettext(
    "No ElevenLabs API key is saved for your table. The owner can add one under "
    "Settings → Voice & AI providers (text to speech)."
)


def _credentials(actor: Actor, provider: str) -> provider_keys.TenantKey | None:
    """The tenant's own key for ``provider`` (still encrypted), None for the operator's fallback
    key (only with ALLOW_PLATFORM_KEYS=1), or VoiceError when neither may be used."""
    if provider != "elevenlabs":
        return None
    key = provider_keys.key_for(actor, "tts", provider)
    if key is None and not _platform_keys_allowed():
        raise VoiceError(NO_KEY_MESSAGE, 422)  # lazy: english() stores it untranslated
    return key


def _engine(provider: str, key: provider_keys.TenantKey | None = None) -> tts.TtsEngine:
    """An engine; a tenant key is decrypted here, in memory, for this call only."""
    try:
        if key is None:
            return tts.get_engine(provider)
        return tts.get_engine(provider, api_key=key.reveal(), base_url=key.base_url or None)
    except SecretsError as exc:
        log.warning("tenant TTS key not readable: %s", exc.details)
        raise VoiceError(exc.message, 503) from exc
    except tts.TtsError as exc:
        raise VoiceError(exc.message, exc.status) from exc


def preview(actor: Actor, npc_id: str, *, text: str | None = None, voice: dict[str, Any] | None = None) -> Preview:
    """Audio of ``text`` (or a greeting) in the NPC's voice. ``voice`` overrides the saved voice
    with the editor's unsaved values; it is validated with the same rules as a save."""
    npc = npcs.get(actor, npc_id)  # 404 first, then the role (403)
    require(actor, Perm.MANAGE_NPCS)
    line = " ".join((text or "").split())
    if len(line) > PREVIEW_MAX:
        message = _("Preview lines can be at most %(max)s characters.", max=PREVIEW_MAX)
        raise ValidationError({"text": message}, message)
    line = line or default_line(npc.name)
    errors: dict[str, str] = {}
    settings = npcs.validate_voice(voice if voice is not None else (npc.voice or {}), errors)
    if errors:
        raise ValidationError(errors, next(iter(errors.values())))
    provider = settings["provider"] or default_provider(actor)
    if provider not in tts.PROVIDERS:
        raise VoiceError(
            lazy_gettext("Previews aren't available for the voice provider “%(provider)s”.", provider=provider), 422
        )
    if provider == "elevenlabs" and not settings["voice_id"]:
        raise VoiceError(lazy_gettext("Pick an ElevenLabs voice first (Browse voices), then play the preview."), 422)
    engine = _engine(provider, _credentials(actor, provider))
    key = cache_key(actor.tenant_id, engine.cache_identity(), provider, settings["voice_id"], line)
    audio = _cache_get(key)
    cached = audio is not None
    if audio is None:
        try:
            audio = engine.synthesize(line, settings["voice_id"])
        except tts.TtsError as exc:
            log.info("voice preview failed: %s (%s)", type(exc).__name__, exc.details)
            raise VoiceError(exc.message, exc.status) from exc
        _cache_put(key, audio)
    VOICE_PREVIEWS.labels(actor.tenant_id).inc()
    return Preview(
        audio.data, audio.mimetype, cached, float(settings["pitch_shift"]), float(settings["speed_factor"]), line
    )


# Per tenant and key: a tenant's account may hold cloned voices no other table should see. Bounded:
# an account's list can be hundreds of voices, and each table that opens the picker adds one.
MAX_VOICE_LISTS = 512
_voice_lists: Memo[tuple[str, ...], tuple[float, list[tts.Voice]]] = Memo(MAX_VOICE_LISTS)


def list_voices(actor: Actor, provider: str, q: str = "", *, limit: int = 60) -> tuple[list[tts.Voice], int]:
    """(matching voices, total matches) of a provider, searchable by name, id, accent, language."""
    require(actor, Perm.MANAGE_NPCS)
    if provider not in tts.PROVIDERS:
        raise VoiceError(lazy_gettext("There is no voice list for “%(provider)s”.", provider=provider), 422)
    key = _credentials(actor, provider)
    source = key.identity if key is not None else ("platform" if provider == "elevenlabs" else "local")
    cache = (
        actor.tenant_id,
        provider,
        source,
        key.base_url if key is not None else "",
        os.environ.get("ELEVENLABS_API_BASE", ""),
        os.environ.get("ESPEAK_NG_PATH", ""),
    )
    now = time.monotonic()
    hit = _voice_lists.get(cache)
    if hit is None or now - hit[0] > VOICE_LIST_TTL:
        engine = _engine(provider, key)
        try:
            voices = engine.voices()
        except tts.TtsError as exc:
            raise VoiceError(exc.message, exc.status) from exc
        _voice_lists.keep(cache, (now, voices))
    else:
        voices = hit[1]
    if provider == "elevenlabs":  # the table's own clones first (the account's list may lag behind)
        from glyphoxa_htmx.services.voice_samples import cloned_voices

        mine = cloned_voices(actor)
        known = {v.id for v in mine}
        voices = mine + [v for v in voices if v.id not in known]
    matches = [v for v in voices if v.matches(q or "")]
    return matches[:limit], len(matches)


def forget_voice_lists(tenant_id: str) -> None:
    """Drop a tenant's cached voice lists (a new clone must show up at once)."""
    for cache in [c for c in list(_voice_lists) if c[0] == tenant_id]:  # (list(): one step under the GIL)
        _voice_lists.pop(cache, None)
