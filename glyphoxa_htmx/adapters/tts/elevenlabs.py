"""ElevenLabs over HTTP (``requests``): ``POST /v1/text-to-speech/{voice_id}``, ``GET /v1/voices`` and
``POST /v1/voices/add`` (instant voice clone),
authenticated with the ``xi-api-key`` header. The key is never logged or shown in ``repr``."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import quote

import requests

from glyphoxa_htmx.adapters.tts.base import (
    Audio,
    TtsAuthError,
    TtsBadVoice,
    TtsError,
    TtsRateLimited,
    TtsUnavailable,
    Voice,
)
from glyphoxa_htmx.core.i18n import lazy_gettext

log = logging.getLogger(__name__)

DEFAULT_BASE = "https://api.elevenlabs.io"
DEFAULT_MODEL = "eleven_multilingual_v2"
OUTPUT_FORMAT = "mp3_44100_128"


def _detail(resp: requests.Response) -> tuple[str, str]:
    """(status, message) from ElevenLabs' error body ``{"detail": {"status": ..., "message": ...}}``."""
    try:
        detail = resp.json().get("detail")
    except ValueError:
        return "", resp.text[:200]
    if isinstance(detail, dict):
        return str(detail.get("status", "")), str(detail.get("message", ""))
    return "", str(detail or "")[:200]


class ElevenLabsEngine:
    name = "elevenlabs"
    label = "ElevenLabs"

    def __init__(
        self,
        api_key: str,
        *,
        base_url: str = DEFAULT_BASE,
        model_id: str = DEFAULT_MODEL,
        timeout: float = 15.0,
        session: requests.Session | None = None,
    ) -> None:
        self.__api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.model_id = model_id
        self.timeout = timeout
        self._http = session or requests.Session()

    def __repr__(self) -> str:
        return f"ElevenLabsEngine(base_url={self.base_url!r}, model_id={self.model_id!r}, api_key=***)"

    def cache_identity(self) -> str:
        return f"{self.name}:{self.model_id}:{OUTPUT_FORMAT}"

    def _request(self, method: str, path: str, **kw: Any) -> requests.Response:
        if not self.__api_key:
            raise TtsAuthError(
                lazy_gettext("No ElevenLabs API key is configured, so ElevenLabs voices can't be previewed.")
            )
        headers = {"xi-api-key": self.__api_key, **kw.pop("headers", {})}
        try:
            resp = self._http.request(method, self.base_url + path, headers=headers, timeout=self.timeout, **kw)
        except requests.RequestException as exc:
            log.warning("elevenlabs %s %s failed: %s", method, path, type(exc).__name__)
            raise TtsUnavailable(
                lazy_gettext("ElevenLabs can't be reached right now. Try again in a moment."),
                details=type(exc).__name__,
            ) from exc
        if resp.status_code < 400:
            return resp
        status, message = _detail(resp)
        if resp.status_code == 401 or status in {"invalid_api_key", "needs_authorization"}:
            raise TtsAuthError(details=message)
        if resp.status_code == 429:
            raise TtsRateLimited(details=message)
        if status == "voice_not_found" or resp.status_code == 404:
            raise TtsBadVoice(details=message)
        if resp.status_code >= 500:
            raise TtsUnavailable(lazy_gettext("ElevenLabs had a problem. Try again in a moment."), details=message)
        if message:  # ElevenLabs' own words (English) stay as they are
            raise TtsError(lazy_gettext("ElevenLabs refused the request: %(reason)s", reason=message), details=message)
        raise TtsError(lazy_gettext("ElevenLabs refused the request."), details=message)

    def synthesize(self, text: str, voice_id: str) -> Audio:
        resp = self._request(
            "POST",
            f"/v1/text-to-speech/{quote(voice_id, safe='')}",
            params={"output_format": OUTPUT_FORMAT},
            headers={"Accept": "audio/mpeg"},
            json={
                "text": text,
                "model_id": self.model_id,
                "voice_settings": {"stability": 0.5, "similarity_boost": 0.75},
            },
        )
        if not resp.content:
            raise TtsError(lazy_gettext("ElevenLabs returned no audio."))
        return Audio(resp.content, "audio/mpeg")

    def voices(self) -> list[Voice]:
        payload = self._request("GET", "/v1/voices", headers={"Accept": "application/json"}).json()
        out = []
        for v in payload.get("voices", []):
            labels = {k: str(val) for k, val in (v.get("labels") or {}).items() if val}
            desc = ", ".join(
                labels.get(k, "") for k in ("accent", "gender", "age", "description", "use_case") if labels.get(k)
            )
            out.append(
                Voice(
                    id=str(v.get("voice_id", "")),
                    name=str(v.get("name", "")),
                    description=desc or str(v.get("category", "")),
                    language=labels.get("language", ""),
                    labels=labels,
                )
            )
        return sorted((v for v in out if v.id), key=lambda v: v.name.lower())

    def clone_voice(self, name: str, filename: str, data: bytes, mimetype: str, *, description: str = "") -> str:
        """Instant voice clone: ``POST /v1/voices/add`` (multipart: ``name``, ``files``,
        ``description``); answers the new ``voice_id``."""
        form = {"name": name}
        if description:
            form["description"] = description
        resp = self._request(
            "POST",
            "/v1/voices/add",
            headers={"Accept": "application/json"},
            data=form,
            files=[("files", (filename, data, mimetype))],
        )
        try:
            voice_id = str(resp.json().get("voice_id") or "")
        except (ValueError, AttributeError):
            voice_id = ""
        if not voice_id:
            raise TtsError(lazy_gettext("ElevenLabs did not return a voice id for the clone."))
        return voice_id
