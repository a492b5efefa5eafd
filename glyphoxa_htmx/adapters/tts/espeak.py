"""espeak-ng, the local engine for the embedded default: a subprocess that writes a WAV file.

Text goes in on stdin (never as an argument), the voice id is checked against a strict pattern,
and the process has a timeout. ``--voices`` gives the voice list."""

from __future__ import annotations

import logging
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from glyphoxa_htmx.adapters.tts.base import Audio, TtsBadVoice, TtsError, TtsUnavailable, Voice
from glyphoxa_htmx.core.i18n import lazy_gettext

log = logging.getLogger(__name__)

VOICE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_+/-]{0,63}$")


class EspeakEngine:
    name = "espeak"
    label = lazy_gettext("espeak-ng (local)")

    def __init__(self, binary: str | None = None, *, timeout: float = 15.0) -> None:
        self.binary = binary or shutil.which("espeak-ng") or ""
        self.timeout = timeout
        self._voices: list[Voice] | None = None

    def __repr__(self) -> str:
        return f"EspeakEngine(binary={self.binary!r})"

    @property
    def installed(self) -> bool:
        return bool(self.binary) and Path(self.binary).exists()

    def cache_identity(self) -> str:
        return f"{self.name}:{self.binary}"

    def _run(self, args: list[str], *, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        if not self.installed:
            raise TtsUnavailable(
                lazy_gettext(
                    "No local voice engine is installed here (espeak-ng). Install espeak-ng, or use an ElevenLabs voice."
                )
            )
        try:
            return subprocess.run(
                [self.binary, *args], input=stdin, capture_output=True, text=True, timeout=self.timeout, check=False
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            log.warning("espeak-ng failed: %s", exc)
            raise TtsUnavailable(
                lazy_gettext("The local voice engine did not answer in time."), details=str(exc)
            ) from exc

    def synthesize(self, text: str, voice_id: str) -> Audio:
        voice = voice_id or "en"
        if not VOICE_RE.match(voice):
            raise TtsBadVoice()
        with tempfile.TemporaryDirectory(prefix="gx-espeak-") as tmp:
            out = Path(tmp) / "preview.wav"
            proc = self._run(["-v", voice, "-w", str(out)], stdin=text)
            data = out.read_bytes() if out.exists() else b""
        if proc.returncode != 0 or not data:
            err = (proc.stderr or "").strip()
            if "voice" in err.lower():
                raise TtsBadVoice(details=err)
            raise TtsError(lazy_gettext("The local voice engine could not synthesize that line."), details=err)
        return Audio(data, "audio/wav")

    def voices(self) -> list[Voice]:
        if self._voices is None:
            proc = self._run(["--voices"])
            self._voices = parse_voices(proc.stdout)
        return list(self._voices)


def parse_voices(listing: str) -> list[Voice]:
    """Parse ``espeak-ng --voices``: ``Pty Language Age/Gender VoiceName File Other Languages``."""
    out = []
    for line in listing.splitlines()[1:]:
        parts = line.split()
        if len(parts) < 5:
            continue
        language, age_gender, name = parts[1], parts[2], parts[3]
        gender = {"M": "male", "F": "female"}.get(age_gender.split("/")[-1], "")
        out.append(
            Voice(
                id=language,
                name=name.replace("_", " "),
                description=gender,
                language=language,
                labels={"file": parts[4]},
            )
        )
    return out
