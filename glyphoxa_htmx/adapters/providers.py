"""What the web service knows about AI providers: their names, default API base URLs, how they
authenticate, and a cheap authenticated call (list models / voices) to test a key.

``check(provider, api_key, base_url)`` answers a :class:`CheckResult` whose message is safe to
show and store: it never contains the key or the provider's response body (some providers echo
part of the key in their errors)."""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass
from typing import Any

import requests

from glyphoxa_htmx.core.i18n import lazy_gettext

log = logging.getLogger(__name__)

TIMEOUT = 5.0


def N_(message: str) -> str:  # noqa: N802 - gettext's name for "mark for extraction, translate where shown"
    return message


@dataclass(frozen=True)
class Provider:
    key: str
    label: str
    default_base: str  # "" = the tenant must give one
    check_path: str  # appended to the base URL
    auth: str  # bearer | x-api-key | xi-api-key | goog | token | none
    needs_key: bool = True


PROVIDERS: dict[str, Provider] = {
    p.key: p
    for p in (
        Provider("openai", "OpenAI", "https://api.openai.com/v1", "/models", "bearer"),
        Provider("anthropic", "Anthropic", "https://api.anthropic.com", "/v1/models", "x-api-key"),
        Provider("groq", "Groq", "https://api.groq.com/openai/v1", "/models", "bearer"),
        Provider("gemini", "Google Gemini", "https://generativelanguage.googleapis.com/v1beta", "/models", "goog"),
        Provider("elevenlabs", "ElevenLabs", "https://api.elevenlabs.io", "/v1/voices", "xi-api-key"),
        Provider("deepgram", "Deepgram", "https://api.deepgram.com", "/v1/projects", "token"),
        Provider("whisper", N_("Whisper-compatible server"), "", "/models", "bearer"),
        Provider("local", N_("Local (OpenAI-compatible server)"), "", "/models", "bearer", needs_key=False),
    )
}

# Which providers make sense in which slot (plan §14: llm, stt, tts, s2s, vad, embeddings).
SLOTS: dict[str, tuple[Any, tuple[str, ...]]] = {
    "llm": (lazy_gettext("Language model"), ("openai", "anthropic", "groq", "gemini", "local")),
    "stt": (lazy_gettext("Speech to text"), ("deepgram", "openai", "groq", "whisper", "local")),
    "tts": (lazy_gettext("Text to speech"), ("elevenlabs", "openai", "local")),
    "s2s": (lazy_gettext("Speech to speech"), ("openai", "gemini")),
    "vad": (lazy_gettext("Voice activity detection"), ("local",)),
    "embeddings": (lazy_gettext("Embeddings"), ("openai", "gemini", "local")),
}

OK, AUTH_FAILED, UNREACHABLE, RATE_LIMITED, ERROR = "ok", "auth_failed", "unreachable", "rate_limited", "error"
OUTCOME_LABELS = {
    OK: "OK",
    AUTH_FAILED: lazy_gettext("Auth failed"),
    UNREACHABLE: lazy_gettext("Unreachable"),
    RATE_LIMITED: lazy_gettext("Rate-limited"),
    ERROR: lazy_gettext("Error"),
}


@dataclass(frozen=True)
class CheckResult:
    status: str  # one of the outcomes above
    message: str
    ms: int = 0


def _headers(provider: Provider, api_key: str) -> dict[str, str]:
    if not api_key:
        return {}
    return {
        "bearer": {"Authorization": f"Bearer {api_key}"},
        "x-api-key": {"x-api-key": api_key, "anthropic-version": "2023-06-01"},
        "xi-api-key": {"xi-api-key": api_key},
        "goog": {"x-goog-api-key": api_key},
        "token": {"Authorization": f"Token {api_key}"},
    }.get(provider.auth, {})


def check(
    provider_key: str,
    api_key: str,
    base_url: str = "",
    *,
    timeout: float = TIMEOUT,
    session: requests.Session | None = None,
) -> CheckResult:
    """One authenticated GET that lists models or voices; no retries, a short timeout."""
    provider = PROVIDERS.get(provider_key)
    if provider is None:
        return CheckResult(ERROR, "Unknown provider.")
    default = provider.default_base
    if provider.key == "elevenlabs":  # the same operator override the voice previews use
        default = os.environ.get("ELEVENLABS_API_BASE", "").strip() or default
    base = (base_url or default).rstrip("/")
    if not base:
        return CheckResult(ERROR, f"{provider.label} needs a base URL.")
    if provider.needs_key and not api_key:
        return CheckResult(AUTH_FAILED, "No API key is saved for this slot.")
    started = time.perf_counter()
    try:
        resp = (session or requests).get(
            base + provider.check_path,
            headers={"Accept": "application/json", **_headers(provider, api_key)},
            timeout=timeout,
            allow_redirects=False,
        )
    except requests.RequestException as exc:
        log.info("provider check %s: %s", provider.key, type(exc).__name__)
        return CheckResult(
            UNREACHABLE,
            f"{provider.label} could not be reached ({_reason(exc)}).",
            int((time.perf_counter() - started) * 1000),
        )
    ms = int((time.perf_counter() - started) * 1000)
    code = resp.status_code
    resp.close()
    if 200 <= code < 300:
        return CheckResult(OK, f"{provider.label} accepted the key ({ms} ms).", ms)
    if code in (401, 403):
        return CheckResult(AUTH_FAILED, f"{provider.label} rejected the key (HTTP {code}).", ms)
    if code == 429:
        return CheckResult(RATE_LIMITED, f"{provider.label} is rate-limiting this key (HTTP 429). Try again later.", ms)
    if code >= 500:
        return CheckResult(UNREACHABLE, f"{provider.label} had a problem (HTTP {code}).", ms)
    return CheckResult(ERROR, f"{provider.label} answered HTTP {code}; check the base URL.", ms)


def _reason(exc: Exception) -> str:
    if isinstance(exc, requests.Timeout):
        return "timed out"
    if isinstance(exc, requests.ConnectionError):
        return "connection failed"
    return "request failed"
