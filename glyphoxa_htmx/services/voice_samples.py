"""The voice library (plan §11): uploaded voice samples, validated by probing the audio with
ffprobe and decoding it with ffmpeg (never by extension), stored through the storage adapter,
played back through expiring URLs, and cloned into ElevenLabs voices with the tenant's own key.

No orphans either way: a row is written first with ``deleting_at`` set ("not finished"), the
object is stored, then the mark is cleared. A delete sets the mark, removes the object, then the
row. Whatever fails in between leaves a marked row, which :func:`cleanup` (``glyphoxa-web
voice-samples-cleanup``, and every later delete of the same table) finishes: object first, then row."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from flask import current_app, url_for
from flask_babel import format_decimal
from sqlalchemy import select, update

from glyphoxa_htmx.adapters import storage as store
from glyphoxa_htmx.adapters import tts
from glyphoxa_htmx.core import audit
from glyphoxa_htmx.core.authz import Actor, Perm, own, require
from glyphoxa_htmx.core.dbconn import rowcount
from glyphoxa_htmx.core.errors import Conflict, Forbidden, Unavailable, ValidationError
from glyphoxa_htmx.core.i18n import _, gettext, lazy_gettext
from glyphoxa_htmx.core.metrics import VOICE_UPLOADS
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import VoiceSample
from glyphoxa_htmx.models.web import new_id
from glyphoxa_htmx.services import voice

log = logging.getLogger(__name__)

MAX_BYTES = 10 * 1024 * 1024
MAX_MS = 10_000
# Encoders pad the last frame (an mp3 of exactly 10 s probes as 10.03 s): that is not "too long".
DURATION_SLACK_MS = 60
NAME_MAX = 80
SAMPLE_RATES = (8000, 11025, 16000, 22050, 24000, 32000, 44100, 48000)
# extension -> (ffprobe format name, MIME type, codec names it may hold)
FORMATS = {
    "wav": ("wav", "audio/wav", None),
    "mp3": ("mp3", "audio/mpeg", {"mp3"}),
}
PENDING_GRACE = timedelta(minutes=2)  # an upload in flight is not an orphan yet
PROBE_TIMEOUT = 15.0

# Lazy (translated when shown); callers put str(...) into errors, in the request's language.
TOO_BIG = lazy_gettext("The file is larger than 10 MB. Trim it to at most 10 seconds.")
WRONG_TYPE = lazy_gettext("Upload a .wav or .mp3 file.")
CORRUPT = lazy_gettext("This file could not be read as audio. It may be damaged or not an audio file.")


def _corrupt() -> ValidationError:
    return ValidationError({"file": str(CORRUPT)}, str(CORRUPT))


_probe_lock = threading.BoundedSemaphore(4)  # a few decodes at once, whatever the traffic


@dataclass(frozen=True)
class Probe:
    format: str
    codec: str
    duration_ms: int
    channels: int
    sample_rate: int


def storage() -> store.S3Storage | store.LocalStorage:
    return store.get_storage(current_app.instance_path)


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise Unavailable(_("Audio checks are unavailable: %(tool)s is not installed on the server.", tool=name))
    return path


def probe(data: bytes, ext: str) -> Probe:
    """What the bytes really are, or ValidationError on the ``file`` field: mismatched type,
    damaged, too long, unsupported channels or sample rate."""
    expected, _mime, codecs = FORMATS[ext]
    with _probe_lock, tempfile.TemporaryDirectory(prefix="glyphoxa-sample-") as tmp:
        path = os.path.join(tmp, "sample")  # no extension: ffprobe must recognise the content
        with open(path, "wb") as fh:
            fh.write(data)
        try:
            proc = subprocess.run(
                [_tool("ffprobe"), "-v", "error", "-print_format", "json", "-show_format", "-show_streams", path],
                capture_output=True,
                timeout=PROBE_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _corrupt() from None
        try:
            info = json.loads(proc.stdout or b"{}")
        except ValueError:
            info = {}
        fmt = info.get("format") or {}
        audio = [s for s in info.get("streams") or [] if s.get("codec_type") == "audio"]
        if proc.returncode != 0 or not fmt or not audio:
            raise _corrupt()
        names = set(str(fmt.get("format_name", "")).split(","))
        stream = audio[0]
        codec = str(stream.get("codec_name", ""))
        if expected not in names or (codecs is not None and codec not in codecs):
            actual = (
                "MP3"
                if "mp3" in names
                else ("WAV" if "wav" in names else str(fmt.get("format_long_name") or _("another format")))
            )
            msg = _(
                "This file is %(actual)s, not the .%(ext)s its name says. Rename it or export it as .%(ext)s.",
                actual=actual,
                ext=ext,
            )
            raise ValidationError({"file": msg}, msg)
        # Decode it all: a header that probes fine over a damaged body is still damaged.
        try:
            dec = subprocess.run(
                [_tool("ffmpeg"), "-v", "error", "-nostdin", "-i", path, "-f", "null", "-"],
                capture_output=True,
                timeout=PROBE_TIMEOUT,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise _corrupt() from None
        if dec.returncode != 0 or re.search(rb"(?i)invalid data|error while decoding|corrupt", dec.stderr or b""):
            raise _corrupt()
    try:
        duration_ms = int(round(float(fmt.get("duration") or stream.get("duration")) * 1000))
        channels = int(stream.get("channels") or 0)
        rate = int(stream.get("sample_rate") or 0)
    except (TypeError, ValueError):
        raise _corrupt() from None
    if duration_ms <= 0:
        raise _corrupt()
    if duration_ms > MAX_MS + DURATION_SLACK_MS:
        msg = _(
            "The sample is %(seconds)s seconds long; at most 10 seconds are allowed.",
            seconds=format_decimal(duration_ms / 1000, "0.0"),
        )
        raise ValidationError({"file": msg}, msg)
    if channels not in (1, 2):
        msg = _("The sample has %(channels)s channels; upload mono or stereo audio.", channels=channels)
        raise ValidationError({"file": msg}, msg)
    if rate not in SAMPLE_RATES:
        rates = ", ".join(f"{r // 1000 if r % 1000 == 0 else format_decimal(r / 1000)} kHz" for r in SAMPLE_RATES)
        msg = _("The sample rate %(rate)s Hz is not supported; use one of %(rates)s.", rate=rate, rates=rates)
        raise ValidationError({"file": msg}, msg)
    return Probe(ext, codec, duration_ms, channels, rate)


# ---- reading --------------------------------------------------------------------------------


def list_samples(actor: Actor) -> list[VoiceSample]:
    require(actor, Perm.VIEW_SESSIONS)
    return list(
        db.session.execute(
            select(VoiceSample)
            .where(VoiceSample.tenant_id == actor.tenant_id, VoiceSample.deleting_at.is_(None))
            .order_by(VoiceSample.created_at.desc(), VoiceSample.id)
        ).scalars()
    )


def error_text(row: VoiceSample) -> str:
    """A failed clone's reason (stored in English) in the page's language, when we wrote it; a
    provider's own words stay as they came."""
    return gettext(row.error) if row.error else ""


def get(actor: Actor, sample_id: str) -> VoiceSample:
    row = own(actor, db.session.get(VoiceSample, sample_id))
    if row.deleting_at is not None:
        return own(actor, None)  # being deleted: gone for everyone
    return row


def cloned_voices(actor: Actor) -> list[tts.Voice]:
    """The table's cloned voices, for the NPC editor's ElevenLabs voice list."""
    rows = db.session.execute(
        select(VoiceSample.provider_voice_id, VoiceSample.name)
        .where(
            VoiceSample.tenant_id == actor.tenant_id,
            VoiceSample.status == "ready",
            VoiceSample.provider_voice_id.is_not(None),
            VoiceSample.deleting_at.is_(None),
        )
        .order_by(VoiceSample.name)
    ).all()
    return [
        tts.Voice(
            id=r.provider_voice_id,
            name=r.name,
            description=_("cloned from your voice library"),
            labels={"category": "cloned"},
        )
        for r in rows
    ]


def playback_url(actor: Actor, row: VoiceSample) -> str:
    """A URL that plays the sample for an hour: presigned S3 GET, or this app's signed URL."""
    backend = storage()
    if isinstance(backend, store.S3Storage):
        try:
            return backend.presigned_url(row.file_key)
        except store.StorageError as exc:
            log.warning("voice sample URL failed: %s", exc.details)
            raise Unavailable(_("The voice library's storage is unavailable right now.")) from exc
    expires, sig = store.sign(current_app.config["SECRET_KEY"], actor.tenant_id, row.id)
    return url_for("voices.audio", sample_id=row.id, expires=expires, sig=sig)


def media_origin() -> str | None:
    """The origin presigned URLs point at (S3/MinIO), for the page's CSP; None for local storage."""
    backend = storage()
    if not isinstance(backend, store.S3Storage):
        return None
    try:
        parts = urlsplit(backend.presigned_url("voice-samples/origin-probe"))  # signing only, no request
    except store.StorageError:
        return None
    return f"{parts.scheme}://{parts.netloc}" if parts.scheme and parts.netloc else None


def audio(actor: Actor, sample_id: str, expires: str, sig: str) -> tuple[bytes, str]:
    """The bytes behind a local signed URL: the sample must be the actor's table's (404 otherwise)
    and the signature valid for that table and not expired."""
    row = get(actor, sample_id)
    require(actor, Perm.VIEW_SESSIONS)
    if not store.verify(current_app.config["SECRET_KEY"], actor.tenant_id, row.id, expires, sig):
        raise Forbidden(_("This playback link has expired or is not valid. Reload the voice library."))
    try:
        return storage().get(row.file_key), FORMATS[row.format][1]
    except store.StorageError as exc:
        log.warning("voice sample read failed: %s", exc.details)
        raise Unavailable(_("The voice library's storage is unavailable right now.")) from exc


# ---- writing --------------------------------------------------------------------------------


def _clean_name(raw: str, filename: str, errors: dict[str, str]) -> str:
    name = " ".join((raw or "").split())
    if not name:
        name = " ".join(re.sub(r"[_\-.]+", " ", os.path.splitext(os.path.basename(filename or ""))[0]).split())
    if not name:
        errors["name"] = _("Give the sample a name.")
    elif len(name) > NAME_MAX:
        errors["name"] = _("Names can be at most %(max)s characters.", max=NAME_MAX)
    return name[:NAME_MAX]


def upload(actor: Actor, name: str, filename: str, data: bytes | None) -> VoiceSample:
    """Validate and store a sample. ``data`` None means the request was larger than the app accepts."""
    require(actor, Perm.UPLOAD_VOICE)
    try:
        return _upload(actor, name, filename, data)
    except ValidationError:
        VOICE_UPLOADS.labels(actor.tenant_id, "rejected").inc()
        raise
    except Exception:
        VOICE_UPLOADS.labels(actor.tenant_id, "failed").inc()
        raise


def count_rejected(actor: Actor) -> None:
    VOICE_UPLOADS.labels(actor.tenant_id, "rejected").inc()


def _upload(actor: Actor, name: str, filename: str, data: bytes | None) -> VoiceSample:
    errors: dict[str, str] = {}
    name = _clean_name(name, filename, errors)
    ext = os.path.splitext(filename or "")[1].lower().lstrip(".")
    if data is None or len(data) > MAX_BYTES:
        errors["file"] = str(TOO_BIG)
    elif not filename:
        errors["file"] = _("Choose a .wav or .mp3 file to upload.")
    elif ext not in FORMATS:
        errors["file"] = str(WRONG_TYPE)
    elif not data:
        errors["file"] = _("The file is empty.")
    if errors:
        raise ValidationError(errors, next(iter(errors.values())))
    assert data is not None  # no file is an error above
    info = probe(data, ext)
    sample_id = new_id()
    key = store.object_key(actor.tenant_id, sample_id, ext)
    row = VoiceSample(
        id=sample_id,
        tenant_id=actor.tenant_id,
        name=name,
        file_key=key,
        file_size=len(data),
        duration_ms=info.duration_ms,
        format=ext,
        status="uploaded",
        created_by=actor.user_id,
        deleting_at=datetime.now(UTC),
    )  # "not finished" until the object is stored
    db.session.add(row)
    db.session.commit()
    try:
        storage().put(key, data, FORMATS[ext][1])
    except store.StorageError as exc:
        log.warning("voice sample upload failed: %s", exc.details)
        _purge(row)
        raise Unavailable(
            _("The voice library's storage is unavailable right now, so nothing was saved. Try again in a moment.")
        ) from exc
    row.deleting_at = None
    audit.record(
        "voice_sample.upload",
        "voice_sample",
        sample_id,
        actor=actor,
        details={"name": name, "format": ext, "bytes": len(data), "duration_ms": info.duration_ms},
    )
    db.session.commit()
    VOICE_UPLOADS.labels(actor.tenant_id, "accepted").inc()
    return row


def _purge(row: VoiceSample) -> bool:
    """Object first, then row. False (row kept, marked) when storage failed."""
    try:
        storage().delete(row.file_key)
    except store.StorageError as exc:
        log.warning("voice sample object not deleted (kept for cleanup): %s", exc.details)
        db.session.rollback()
        return False
    db.session.delete(row)
    db.session.commit()
    return True


def delete(actor: Actor, sample_id: str) -> bool:
    """Remove a sample: True when object and row are gone now, False when storage failed and the
    cleanup finishes it later (the sample is hidden either way). A cloned voice stays at the
    provider: NPCs may still speak with it."""
    row = get(actor, sample_id)  # another table's sample: 404 before the role's 403
    require(actor, Perm.UPLOAD_VOICE)
    row.deleting_at = datetime.now(UTC)
    audit.record(
        "voice_sample.delete",
        "voice_sample",
        row.id,
        actor=actor,
        details={"name": row.name, "provider_voice_id": row.provider_voice_id or ""},
    )
    db.session.commit()
    done = _purge(row)
    if done:
        cleanup(tenant_id=actor.tenant_id, limit=10)  # retry this table's earlier failures too
    return done


def cleanup(*, tenant_id: str | None = None, limit: int = 500, grace: timedelta = PENDING_GRACE) -> tuple[int, int]:
    """Finish deletes and abandoned uploads: (finished, still failing)."""
    cutoff = datetime.now(UTC) - grace
    q = select(VoiceSample).where(VoiceSample.deleting_at.is_not(None), VoiceSample.deleting_at < cutoff)
    if tenant_id is not None:
        q = q.where(VoiceSample.tenant_id == tenant_id)
    done = failed = 0
    for row in db.session.execute(q.order_by(VoiceSample.deleting_at).limit(limit)).scalars().all():
        if _purge(row):
            done += 1
        else:
            failed += 1
    return done, failed


def clone(actor: Actor, sample_id: str) -> VoiceSample:
    """ElevenLabs instant voice clone with the table's own key. On failure the sample is kept,
    marked failed with the reason, and VoiceError carries the same reason."""
    row = get(actor, sample_id)
    require(actor, Perm.UPLOAD_VOICE)
    # Claim it atomically: two clicks (or two tabs) must not make two voices at ElevenLabs.
    claimed = rowcount(
        db.session.execute(
            update(VoiceSample)
            .where(
                VoiceSample.id == row.id,
                VoiceSample.tenant_id == actor.tenant_id,
                VoiceSample.status.in_(("uploaded", "failed", "ready")),
            )
            .values(status="processing", error="")
        )
    )
    db.session.commit()
    if not claimed:
        raise Conflict(_("This sample is being cloned already."))
    db.session.refresh(row)
    try:
        engine = voice._engine("elevenlabs", voice._credentials(actor, "elevenlabs"))
        assert isinstance(engine, tts.ElevenLabsEngine)  # the "elevenlabs" provider always builds one
        try:
            data = storage().get(row.file_key)
        except store.StorageError as exc:
            log.warning("voice sample read failed: %s", exc.details)
            raise voice.VoiceError(lazy_gettext("The voice library's storage is unavailable right now."), 503) from exc
        try:
            voice_id = engine.clone_voice(
                row.name, f"{row.id}.{row.format}", data, FORMATS[row.format][1], description="Cloned in Glyphoxa"
            )
        except tts.TtsError as exc:
            log.info("voice clone failed: %s (%s)", type(exc).__name__, exc.details)
            raise voice.VoiceError(exc.message, exc.status) from exc
    except voice.VoiceError as exc:
        # Stored and audited in English (never a translated string in the database); shown translated.
        stored = exc.english()
        row.status, row.error = "failed", stored
        audit.record("voice_sample.clone_failed", "voice_sample", row.id, actor=actor, details={"error": stored})
        db.session.commit()
        raise
    row.status, row.error, row.provider_voice_id = "ready", "", voice_id
    audit.record("voice_sample.clone", "voice_sample", row.id, actor=actor, details={"provider_voice_id": voice_id})
    db.session.commit()
    voice.forget_voice_lists(actor.tenant_id)
    return row
