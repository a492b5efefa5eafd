"""The one TTS interface: ``synthesize(text, voice_id) -> Audio`` and ``voices() -> [Voice]``.

Engines never know about NPCs, tenants or caching; the voice service does that. Failures are
raised as :class:`TtsError` subclasses whose ``message`` is safe to show a DM (a ``lazy_gettext``
string: it becomes text in whatever language it is shown in, or English for the database)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from glyphoxa_htmx.core.i18n import lazy_gettext


@dataclass(frozen=True)
class Audio:
    data: bytes
    mimetype: str  # "audio/wav" | "audio/mpeg"

    @property
    def extension(self) -> str:
        return {"audio/wav": "wav", "audio/mpeg": "mp3"}.get(self.mimetype, "bin")


@dataclass(frozen=True)
class Voice:
    id: str
    name: str
    description: str = ""  # e.g. "british, female, narration" or "English (Great Britain)"
    language: str = ""
    labels: dict[str, str] = field(default_factory=dict)

    def matches(self, query: str) -> bool:
        q = query.strip().lower()
        if not q:
            return True
        hay = " ".join([self.id, self.name, self.description, self.language, *map(str, self.labels.values())]).lower()
        return all(word in hay for word in q.split())


class TtsError(Exception):
    """Base class; ``message`` is user-facing, ``status`` the HTTP status the web layer should use."""

    status = 502
    default_message = lazy_gettext("The voice engine could not synthesize that line.")

    def __init__(self, message: str | None = None, *, details: str = "") -> None:
        self.message = message or self.default_message
        self.details = details
        super().__init__(self.message)


class TtsAuthError(TtsError):
    default_message = lazy_gettext("The voice provider rejected the API key. Check the key in your settings.")


class TtsRateLimited(TtsError):
    status = 429
    default_message = lazy_gettext("The voice provider is rate limiting us. Wait a minute and try again.")


class TtsUnavailable(TtsError):
    status = 503
    default_message = lazy_gettext("The voice engine is unavailable right now. Try again in a moment.")


class TtsBadVoice(TtsError):
    status = 422
    default_message = lazy_gettext("That voice is not known to the provider. Pick one from the voice list.")


class TtsEngine(Protocol):
    """What every engine implements."""

    name: str  # provider key stored in npc_definitions.voice.provider
    label: str  # what the UI shows

    def synthesize(self, text: str, voice_id: str) -> Audio: ...

    def voices(self) -> list[Voice]: ...

    def cache_identity(self) -> str:
        """Everything besides text and voice that changes the audio (model, engine version)."""
        ...
