"""Text-to-speech behind one interface (:class:`~.base.TtsEngine`): ElevenLabs over HTTP and the
local espeak-ng engine. Settings are read from the environment at call time:

=====================  ==============================  ==============================================
variable               default                         meaning
=====================  ==============================  ==============================================
ELEVENLABS_API_KEY     (empty)                         the operator's key: used only with ALLOW_PLATFORM_KEYS=1
                                                       for tables without their own TTS key
ELEVENLABS_API_BASE    https://api.elevenlabs.io       API base URL (tests point it at a local fake)
ELEVENLABS_MODEL_ID    eleven_multilingual_v2          model used for previews
ESPEAK_NG_PATH         espeak-ng found on PATH         the local engine's binary
TTS_ENGINE             auto                            provider for new NPCs: espeak | elevenlabs | auto
                                                       (auto: decided per table by services.voice)
TTS_CACHE_DIR          <instance dir>/tts-cache        where synthesized previews are cached
=====================  ==============================  ==============================================
"""

from __future__ import annotations

import os
import threading

from glyphoxa_htmx.adapters.tts.base import (
    Audio,
    TtsAuthError,
    TtsBadVoice,
    TtsEngine,
    TtsError,
    TtsRateLimited,
    TtsUnavailable,
    Voice,
)
from glyphoxa_htmx.adapters.tts.elevenlabs import DEFAULT_BASE, DEFAULT_MODEL, ElevenLabsEngine
from glyphoxa_htmx.adapters.tts.espeak import EspeakEngine
from glyphoxa_htmx.core.i18n import lazy_gettext

__all__ = [
    "Audio",
    "ElevenLabsEngine",
    "EspeakEngine",
    "TtsAuthError",
    "TtsBadVoice",
    "TtsEngine",
    "TtsError",
    "TtsRateLimited",
    "TtsUnavailable",
    "Voice",
    "PROVIDERS",
    "default_provider",
    "get_engine",
]

#: provider key (as stored in npc_definitions.voice.provider) -> label
PROVIDERS = {"espeak": EspeakEngine.label, "elevenlabs": ElevenLabsEngine.label}

_lock = threading.Lock()
_espeak: dict[str, EspeakEngine] = {}


def _env(name: str, default: str = "") -> str:
    return os.environ.get(name, "").strip() or default


def default_provider() -> str:
    choice = _env("TTS_ENGINE", "auto").lower()
    if choice in PROVIDERS:
        return choice
    return "elevenlabs" if _env("ELEVENLABS_API_KEY") else "espeak"


def get_engine(provider: str, *, api_key: str | None = None, base_url: str | None = None) -> TtsEngine:
    """The engine for a provider key. ``api_key`` overrides ELEVENLABS_API_KEY (a tenant's own key),
    ``base_url`` overrides ELEVENLABS_API_BASE (the tenant's base URL for that key)."""
    if provider == "elevenlabs":
        return ElevenLabsEngine(
            api_key if api_key is not None else _env("ELEVENLABS_API_KEY"),
            base_url=base_url or _env("ELEVENLABS_API_BASE", DEFAULT_BASE),
            model_id=_env("ELEVENLABS_MODEL_ID", DEFAULT_MODEL),
        )
    if provider in ("espeak", "espeak-ng"):
        binary = _env("ESPEAK_NG_PATH")
        with _lock:  # one instance per binary, so its voice list is parsed once per process
            engine = _espeak.get(binary)
            if engine is None:
                engine = _espeak[binary] = EspeakEngine(binary or None)
        return engine
    raise TtsBadVoice(
        lazy_gettext("Voice previews aren't available for the provider “%(provider)s”.", provider=provider)
    )
