"""The voice library: upload voice samples (validated by probing), play them back through an
expiring URL, clone them into ElevenLabs voices, delete them. Full pages, and the ``library``
block for htmx."""

from __future__ import annotations

from flask import Blueprint, Response, request, url_for
from flask_login import current_user, login_required
from werkzeug.exceptions import RequestEntityTooLarge

from glyphoxa_htmx.core import htmx, security
from glyphoxa_htmx.core.authz import Perm, can, require
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.core.i18n import _
from glyphoxa_htmx.core.ratelimits import upload_limit
from glyphoxa_htmx.extensions import limiter
from glyphoxa_htmx.services import voice, voice_samples

bp = Blueprint("voices", __name__, url_prefix="/voice-library")

# Probing costs two subprocesses and cloning spends the table's ElevenLabs quota: bounded per table.
UPLOAD_LIMIT = "30 per minute"
CLONE_LIMIT = "6 per minute"


def _tenant_key() -> str:
    actor = current_user if current_user.is_authenticated else None
    return f"tenant:{actor.tenant_id}" if actor else f"ip:{request.remote_addr}"


def _not_uploader() -> bool:
    # a refused role never probes or clones anything, so it can't spend the table's allowance
    return not (current_user.is_authenticated and can(current_user, Perm.UPLOAD_VOICE))


def _page(*, status: int = 200, errors: dict | None = None, form: dict | None = None):
    samples = voice_samples.list_samples(current_user)
    urls = {s.id: voice_samples.playback_url(current_user, s) for s in samples}
    resp = htmx.render(
        "voices/library.html",
        "library",
        status=status,
        samples=samples,
        urls=urls,
        errors=errors or {},
        form=form or {},
        max_mb=voice_samples.MAX_BYTES // (1024 * 1024),
        max_seconds=voice_samples.MAX_MS // 1000,
        sample_error=voice_samples.error_text,
    )
    # Presigned S3/MinIO URLs play from the object store's origin: allow exactly that one for media
    # (always, not only when samples are listed: a sample uploaded later is swapped into this page).
    origin = voice_samples.media_origin()
    if origin:
        resp.headers["Content-Security-Policy"] = security.CSP.replace(
            "media-src 'self' blob: data:", f"media-src 'self' blob: data: {origin}"
        )
    return resp


def _done():
    if htmx.wants_block():
        return _page()
    return htmx.redirect_to(url_for("voices.index"))


@bp.get("")
@login_required
def index():
    require(current_user, Perm.VIEW_SESSIONS)
    return _page()


@bp.post("")
@login_required
@limiter.limit(UPLOAD_LIMIT, key_func=_tenant_key, exempt_when=_not_uploader)
@upload_limit  # the plan's per-user upload class (RATE_LIMIT_UPLOAD), on top of the table's own burst limit
def upload():
    name = request.form.get("name", "")
    try:
        upload = request.files.get("file")
    except RequestEntityTooLarge:  # larger than the app reads at all: still a message at the field
        upload, data = None, None
        filename = "upload"
    else:
        filename = upload.filename if upload is not None else ""
        # One byte past the limit is enough to know it's too big; never read more.
        data = upload.stream.read(voice_samples.MAX_BYTES + 1) if upload is not None else b""
        if len(data) > voice_samples.MAX_BYTES:
            data = None
    try:
        row = voice_samples.upload(current_user, name, filename or "", data)
    except ValidationError as exc:
        return _page(status=422, errors=exc.errors, form={"name": name})
    htmx.toast(_("“%(name)s” added to the voice library.", name=row.name))
    return _done()


@bp.errorhandler(RequestEntityTooLarge)
def too_large(exc):
    """A request larger than the app reads at all (MAX_CONTENT_LENGTH) is refused before the view
    runs (the CSRF check reads the form first): still the upload form with the reason at the field."""
    if not (current_user.is_authenticated and request.endpoint == "voices.upload"):
        return exc
    voice_samples.count_rejected(current_user)
    return _page(status=422, errors={"file": str(voice_samples.TOO_BIG)})


@bp.get("/<sample_id>/audio")
@login_required
def audio(sample_id: str):
    """The local directory's signed, expiring playback URL (S3 storage hands out presigned URLs)."""
    data, mimetype = voice_samples.audio(
        current_user, sample_id, request.args.get("expires", ""), request.args.get("sig", "")
    )
    resp = Response(data, mimetype=mimetype)
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


@bp.post("/<sample_id>/clone")
@login_required
@limiter.limit(CLONE_LIMIT, key_func=_tenant_key, exempt_when=_not_uploader)
def clone(sample_id: str):
    try:
        row = voice_samples.clone(current_user, sample_id)
    except voice.VoiceError as exc:
        htmx.toast(_("Cloning failed: %(reason)s", reason=exc.message), "error")
        return _done()
    htmx.toast(_("“%(name)s” is now a voice you can pick for an NPC.", name=row.name))
    return _done()


@bp.post("/<sample_id>/delete")
@login_required
def delete(sample_id: str):
    row = voice_samples.get(current_user, sample_id)  # 404 first, then the role (403)
    require(current_user, Perm.UPLOAD_VOICE)
    if not htmx.confirmed():
        return htmx.confirm_page(
            _("Delete the voice sample “%(name)s”?", name=row.name),
            detail=_("The recording is removed. A voice already cloned from it keeps working."),
            submit_label=_("Delete sample"),
            cancel_url=url_for("voices.index"),
        )
    name = row.name
    voice_samples.delete(current_user, sample_id)
    htmx.toast(_("“%(name)s” deleted.", name=name))
    return _done()
