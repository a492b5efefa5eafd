"""Voice sessions: list, start/stop, the live view (WebSocket + polling fallback), NPC controls,
transcripts (viewer, downloads, search) and recap audio. No SQL here: services do the work."""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, redirect, render_template, request, stream_with_context, url_for
from simple_websocket import ConnectionClosed

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.authz import Perm, require
from glyphoxa_htmx.core.deps import gateway, settings
from glyphoxa_htmx.core.errors import DomainError, ValidationError
from glyphoxa_htmx.core.parse import int_arg
from glyphoxa_htmx.extensions import db, sock
from glyphoxa_htmx.services import campaigns, live
from glyphoxa_htmx.services import session_control as control
from glyphoxa_htmx.services import sessions as svc
from glyphoxa_htmx.services import transcripts
from glyphoxa_htmx.services.auth import hash_token
from glyphoxa_htmx.web.auth import COOKIE, login_required

log = logging.getLogger(__name__)
bp = Blueprint("sessions", __name__, url_prefix="/sessions")

KEEPALIVE_SECONDS = 20  # an idle socket gets a comment so proxies don't time it out
AUTH_RECHECK_SECONDS = 5.0  # an open socket re-checks its sign-in (revoked, suspended) this often
POLL_SECONDS = 3  # the fallback's polling interval (live.js switches to it)


# --------------------------------------------------------------------------- template helpers


@bp.app_template_filter("duration")
def duration_filter(value: timedelta | None) -> str:
    if value is None:
        return ""
    seconds = int(value.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min"


@bp.app_template_filter("elapsed")
def elapsed_filter(value: datetime, start: datetime) -> str:
    return transcripts.format_elapsed((value - start).total_seconds())


def _guild_names() -> dict[str, str]:
    return svc.guild_names(getattr(g.get("user"), "discord_guilds", None))


# --------------------------------------------------------------------------- list, detail


@bp.get("")
@login_required
def index():
    filters, errors = svc.SessionFilters.parse(request.args)
    result = svc.list_sessions(g.actor, filters, cursor=request.args.get("cursor"))
    context = dict(
        result=result, filters=filters, errors=errors, campaigns=campaigns.choices(g.actor, include_archived=True),
        guild_names=_guild_names(), states=svc.STATES, duration=svc.duration,
    )
    if not htmx.wants_block():
        context.update(bot=svc.bot_status(g.actor), gateway_configured=gateway() is not None)
    return htmx.render("sessions/index.html", "results", status=422 if errors else 200, **context)


@bp.get("/new")
@login_required
def new():
    return _start_page()


def _start_page(errors: dict | None = None, form: dict | None = None, status: int = 200, live_session_id=None,
                maybe_started: bool = False):
    require(g.actor, Perm.CONTROL_SESSIONS)
    data = control.start_form(g.actor, getattr(g.get("user"), "discord_guilds", None))
    return htmx.render(
        "sessions/new.html", "start_form", status=status, data=data, errors=errors or {},
        form=form or {"campaign_id": request.args.get("campaign", "")}, live_session_id=live_session_id,
        maybe_started=maybe_started,
    )


@bp.post("/new")
@login_required
def start():
    form = {k: request.form.get(k, "") for k in ("campaign_id", "guild_id", "channel_id")}
    try:
        session_id = control.start(g.actor, **form)
    except control.StartRefused as exc:
        return _start_page(exc.errors, form, 422, live_session_id=exc.live_session_id,
                           maybe_started=exc.maybe_started)
    except ValidationError as exc:
        return _start_page(exc.errors, form, 422)
    htmx.toast("Session starting. The bot is joining the voice channel.")
    if not session_id:
        return htmx.redirect_to(url_for("sessions.index"))
    return htmx.redirect_to(url_for("sessions.live_view", session_id=session_id))


@bp.get("/<session_id>")
@login_required
def detail(session_id: str):
    data = svc.detail(g.actor, session_id)
    stop = None
    if request.args.get("stop") == "check" and g.actor.can(Perm.CONTROL_SESSIONS):
        stop = control.reconcile_stop(g.actor, data["session"].id)  # after a stop that timed out
        if stop is not None and stop.outcome != "checking":
            data = svc.detail(g.actor, session_id)
    return htmx.render("sessions/detail.html", "content", guild_names=_guild_names(), stop=stop, **data)


@bp.get("/<session_id>/stop-status")
@login_required
def stop_status(session_id: str):
    """Polled by the session page while a stop's outcome is unknown (the gateway's answer never
    came): 204 while public.sessions still shows it running, then the page's content with the
    real outcome (which reconcile_stop audits once)."""
    require(g.actor, Perm.CONTROL_SESSIONS)
    session = svc.get(g.actor, session_id)
    if not htmx.is_htmx():
        return redirect(url_for("sessions.detail", session_id=session.id, stop="check"), 303)
    result = control.reconcile_stop(g.actor, session.id)
    if result is not None and result.outcome == "checking":
        return Response(status=204)  # nothing known yet: the page keeps polling
    if result is not None:
        htmx.toast(result.message, "success" if result.outcome == "stopped" else "warning")
    data = svc.detail(g.actor, session.id)
    return htmx.render("sessions/detail.html", "content", guild_names=_guild_names(), stop=result, **data)


@bp.post("/<session_id>/stop")
@login_required
def stop(session_id: str):
    require(g.actor, Perm.CONTROL_SESSIONS)
    session = svc.get(g.actor, session_id)  # another tenant's session: 404 before anything else
    detail_url = url_for("sessions.detail", session_id=session.id)
    if svc.is_live(session) and not htmx.confirmed():
        return htmx.confirm_page("Stop this session for everyone at the table?", submit_label="Stop session",
                                 cancel_url=detail_url)
    try:
        result = control.stop(g.actor, session.id)
    except DomainError as exc:
        if exc.status in (404, 403):
            raise
        if htmx.is_htmx():
            return htmx.error_response(exc.status, exc.message)
        htmx.toast(exc.message, "error")
        return redirect(detail_url, 303)
    if result.outcome == "checking":
        # Outcome unknown (the gateway's deadline passed): say so, and let the open page check.
        # The session page swaps its #stop-status region in place; a Stop button elsewhere (the
        # live page) is sent to the session page, which does the checking.
        if htmx.is_htmx() and htmx.hx_target() == "stop-status":
            return htmx.render("sessions/detail.html", "stop_status", status=202, session=result.session,
                               stop=result)
        htmx.toast(result.message, "warning")
        return htmx.redirect_to(url_for("sessions.detail", session_id=session.id, stop="check"))
    htmx.toast(result.message, "warning" if result.outcome in ("untracked", "ended_otherwise") else "success")
    return htmx.redirect_to(detail_url)


# --------------------------------------------------------------------------- live view


def _panel(session):
    if not g.actor.can(Perm.CONTROL_SESSIONS):
        return None
    return control.npc_panel(g.actor, session)


@bp.get("/<session_id>/live")
@login_required
def live_view(session_id: str):
    return _live_page(session_id)


def _live_page(session_id: str, *, status: int = 200, errors: dict | None = None, **form):
    require(g.actor, Perm.VIEW_TRANSCRIPTS)
    session = svc.get(g.actor, session_id)
    lines = transcripts.snapshot(g.actor, session)
    names = campaigns.names(g.actor, {session.campaign_id})
    return htmx.render(
        "sessions/live.html", "content", status=status, session=session, lines=lines,
        after=lines[-1].id if lines else 0, panel=_panel(session), ws_path=_ws_path(session.id),
        campaign_name=names.get(session.campaign_id) or session.campaign_id or "Default campaign",
        guild_names=_guild_names(), poll_seconds=POLL_SECONDS, errors=errors or {}, **form,
    )


def _ws_path(session_id: str) -> str:
    """The socket's path only: werkzeug builds ws:// URLs for WebSocket rules, but the browser
    must pick ws:// or wss:// from the page it is on (the ws extension does that for paths)."""
    return urlsplit(url_for("sessions.stream", session_id=session_id)).path


@bp.get("/<session_id>/lines")
@login_required
def poll(session_id: str):
    """Polling fallback: lines after ``after`` as out-of-band fragments, the status, and once the
    session has ended the final fragment (which also stops the polling). Served by the
    per-process live hub, so many polling viewers of one session share one database poll."""
    require(g.actor, Perm.VIEW_TRANSCRIPTS)
    session = svc.get(g.actor, session_id)  # the tenant check, before the hub is touched
    if not htmx.is_htmx():
        return redirect(url_for("sessions.live_view", session_id=session.id), 303)
    db.session.remove()  # the hub may wait for its next poll: hold no database connection meanwhile
    result = live.poll(g.actor, session, int_arg(request.args.get("after"), 0), limit=500)
    return render_template("sessions/_stream.html", lines=result.lines, state=result.state, ended=result.ended,
                           error=result.error, session_id=session.id, polling=True, poll_seconds=POLL_SECONDS)


@bp.get("/<session_id>/controls")
@login_required
def controls(session_id: str):
    session = svc.get(g.actor, session_id)
    require(g.actor, Perm.CONTROL_SESSIONS)
    if not htmx.wants_block():
        return redirect(url_for("sessions.live_view", session_id=session.id), 303)
    return htmx.render("sessions/live.html", "controls", session=session, panel=_panel(session), errors={})


@bp.post("/<session_id>/npcs/<action>")
@login_required
def npc_control(session_id: str, action: str):
    """Mute/unmute/speak. The status says what happened, so htmx and scripts can tell: 200 done,
    422 with the form's errors, 409 the session has ended, 503 the voice service failed (with the
    message as a toast, or on the live page without JavaScript)."""
    action = action.replace("-", "_")
    errors: dict = {}
    status = 200
    try:
        message = control.control(g.actor, session_id, action, npc=request.form.get("npc", ""),
                                  speech=request.form.get("speech", ""))
        htmx.toast(message)
    except ValidationError as exc:
        errors, status = exc.errors, 422
    except DomainError as exc:
        if exc.status in (403, 404):
            raise
        if htmx.is_htmx():
            return htmx.error_response(exc.status, exc.message)
        htmx.toast(exc.message, "error")
        status = exc.status
    form = dict(speech=request.form.get("speech", "") if status != 200 else "", chosen_npc=request.form.get("npc", ""))
    if not htmx.is_htmx():
        if status == 200:
            return redirect(url_for("sessions.live_view", session_id=session_id), 303)
        return _live_page(session_id, status=status, errors=errors, **form)
    session = svc.get(g.actor, session_id)
    return htmx.render("sessions/live.html", "controls", status=status, session=session, panel=_panel(session),
                       errors=errors, **form)


# --------------------------------------------------------------------------- WebSocket


def _origin_ok() -> bool:
    """The handshake's Origin must be this host (as the browser reached it) or PUBLIC_URL."""
    origin = request.headers.get("Origin", "")
    if not origin:
        return False
    parts = urlsplit(origin)
    if parts.netloc and parts.netloc == request.host:
        return True
    public = settings().public_url
    if public:
        expected = urlsplit(public)
        return (parts.scheme, parts.netloc) == (expected.scheme, expected.netloc)
    return False


@bp.before_request
def _ws_handshake_guard():
    """Refuse the WebSocket handshake (plain HTTP status, no upgrade, nothing sent) unless the
    Origin is ours, the cookie is a live sign-in and the session belongs to the user's tenant."""
    if request.endpoint != "sessions.stream":
        return None
    if not _origin_ok():
        log.warning("websocket refused: origin %r", request.headers.get("Origin"))
        return Response(status=403)
    if g.get("actor") is None:
        return Response(status=401)
    try:
        require(g.actor, Perm.VIEW_TRANSCRIPTS)
        session = svc.get(g.actor, (request.view_args or {}).get("session_id", ""))
    except DomainError as exc:
        return Response(status=exc.status)
    # The sign-in is re-checked while the socket is open (sign-out, revocation, suspension):
    # keep only the cookie token's hash, which is how login sessions are stored.
    g.ws_session = {"id": session.id, "tenant_id": session.tenant_id,
                    "token_hash": hash_token(request.cookies.get(COOKIE, ""))}
    return None


@sock.route("/<session_id>/ws", bp=bp)
def stream(ws, session_id: str):
    """Stream new transcript lines as rendered out-of-band fragments. ``after`` is the id of the
    last line the client has: it receives exactly the lines after it. When the session ends it
    gets the final fragment and a normal close (1000); a viewer that fell too far behind is
    closed with 1013 so that the client reconnects and resumes."""
    info = g.ws_session
    after = int_arg(request.args.get("after"), 0)
    db.session.remove()  # hold no database connection for the life of the socket
    try:
        with live.hub().subscribe(info["tenant_id"], info["id"], after) as sub:
            _pump(ws, sub, info)
    except ConnectionClosed:
        pass
    except Exception:  # noqa: BLE001 - never let an error page be written onto an upgraded socket
        log.exception("live stream for session %s failed", info["id"])
        ws.close(reason=1011, message="server error")


def _still_signed_in(info: dict) -> bool:
    """A fresh look at the socket's sign-in; the connection goes back to the pool at once."""
    try:
        return svc.viewer_signed_in(info["token_hash"], info["tenant_id"])
    finally:
        db.session.remove()


def _pump(ws, sub, info: dict) -> None:
    recheck = min(AUTH_RECHECK_SECONDS, KEEPALIVE_SECONDS)
    now = time.monotonic()
    next_check, next_keepalive = now + recheck, now + KEEPALIVE_SECONDS
    while ws.connected:
        while ws.receive(timeout=0) is not None:  # the client has nothing to say; drain
            pass
        events = sub.get(timeout=min(1.0, recheck))
        now = time.monotonic()
        if now >= next_check:
            next_check = now + recheck
            if not _still_signed_in(info):
                ws.close(reason=1008, message="signed out")
                return
        if not events:
            if now >= next_keepalive:
                ws.send("<!-- keepalive -->")
                next_keepalive = now + KEEPALIVE_SECONDS
            continue
        next_keepalive = now + KEEPALIVE_SECONDS
        body, ended, overflow = _render_events(info["id"], events)
        if body.strip():
            ws.send(body)
        if overflow:
            ws.close(reason=1013, message="resync")
            return
        if ended:
            ws.close(reason=1000, message="session ended")
            return


def _render_events(session_id: str, events) -> tuple[str, bool, bool]:
    lines, state, ended, error, overflow = [], None, False, "", False
    for kind, value in events:
        if kind == "lines":
            lines.extend(value)
        elif kind == "state":
            state = value
        elif kind == "ended":
            ended, error, state = True, value or "", "ended"
        elif kind == "overflow":
            overflow = True
    body = render_template("sessions/_stream.html", lines=lines, state=state, ended=ended, error=error,
                           session_id=session_id, polling=False, poll_seconds=POLL_SECONDS)
    return body, ended, overflow


# --------------------------------------------------------------------------- transcripts


@bp.get("/<session_id>/transcript")
@login_required
def transcript(session_id: str):
    require(g.actor, Perm.VIEW_TRANSCRIPTS)
    session = svc.get(g.actor, session_id)
    filters = transcripts.TranscriptFilters.parse(request.args)
    errors = {}
    if request.args.get("at") and filters.at is None:
        errors["at"] = "Use hours:minutes, e.g. 1:15."
    page = transcripts.page(
        g.actor, session, filters, after=int_arg(request.args.get("after")), before=int_arg(request.args.get("before")),
        around=int_arg(request.args.get("around")),
    )
    names = campaigns.names(g.actor, {session.campaign_id})
    return htmx.render(
        "sessions/transcript.html", "lines", session=session, page=page, filters=filters, errors=errors,
        campaign_name=names.get(session.campaign_id) or session.campaign_id or "Default campaign",
        status=422 if errors else 200,
    )


def _download(session_id: str, kind: str):
    require(g.actor, Perm.VIEW_TRANSCRIPTS)
    session = svc.get(g.actor, session_id)
    name = campaigns.names(g.actor, {session.campaign_id}).get(session.campaign_id) or session.campaign_id or "Default campaign"
    render = transcripts.as_markdown if kind == "md" else transcripts.as_text
    body = render(session, name, transcripts.iter_lines(g.actor, session))
    filename = f"transcript-{session.started_at:%Y-%m-%d}-{session.id[:8]}.{kind}"
    mimetype = "text/markdown" if kind == "md" else "text/plain"
    resp = Response(stream_with_context(body), mimetype=mimetype)
    resp.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return resp


@bp.get("/<session_id>/transcript.txt")
@login_required
def transcript_txt(session_id: str):
    return _download(session_id, "txt")


@bp.get("/<session_id>/transcript.md")
@login_required
def transcript_md(session_id: str):
    return _download(session_id, "md")


@bp.get("/search")
@login_required
def search():
    q = request.args.get("q", "")
    campaign = request.args.get("campaign", "")
    errors = {}
    try:
        result = transcripts.search(g.actor, q, campaign=campaign, before=int_arg(request.args.get("before")))
    except ValidationError as exc:
        errors, result = exc.errors, transcripts.SearchResult(query=q)
    choices = campaigns.choices(g.actor, include_archived=True)
    session_campaigns = {grp.session.campaign_id for grp in result.groups if grp.session is not None}
    return htmx.render(
        "sessions/search.html", "results", result=result, q=q, campaign=campaign, campaigns=choices,
        campaign_names=campaigns.names(g.actor, session_campaigns) if session_campaigns else {},
        errors=errors, status=422 if errors else 200,
    )


@bp.get("/<session_id>/recap.wav")
@login_required
def recap_audio(session_id: str):
    session = svc.get(g.actor, session_id)
    data = transcripts.recap_audio(g.actor, session)
    resp = Response(data, mimetype="audio/wav")
    resp.headers["Content-Disposition"] = f'inline; filename="recap-{session.id[:8]}.wav"'
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp
