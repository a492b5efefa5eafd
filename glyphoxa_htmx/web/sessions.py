"""Voice sessions: list, start/stop, the live view (WebSocket + polling fallback), NPC controls,
transcripts (viewer, downloads, search) and recap audio. No SQL here: services do the work."""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    Response,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user, login_required
from markupsafe import Markup
from simple_websocket import ConnectionClosed
from simple_websocket.ws import Base as _WsBase

from glyphoxa_htmx.core import dbconn, htmx
from glyphoxa_htmx.core.authz import Perm, require
from glyphoxa_htmx.core.deps import gateway, settings
from glyphoxa_htmx.core.errors import DomainError, ValidationError
from glyphoxa_htmx.core.i18n import (
    _,
    current_locale,
    date_text,
    format_context,
    markup_gettext,
    ngettext,
    when_html,
)
from glyphoxa_htmx.core.markup import escape, id_url, trusted
from glyphoxa_htmx.core.memo import Memo
from glyphoxa_htmx.core.parse import SNOWFLAKE_RE, int_arg
from glyphoxa_htmx.extensions import sock
from glyphoxa_htmx.services import campaigns, live, transcripts
from glyphoxa_htmx.services import session_control as control
from glyphoxa_htmx.services import sessions as svc
from glyphoxa_htmx.services.auth import hash_token
from glyphoxa_htmx.web.auth import COOKIE

log = logging.getLogger(__name__)
bp = Blueprint("sessions", __name__, url_prefix="/sessions")

KEEPALIVE_SECONDS = 20  # an idle socket gets a comment so proxies don't time it out
AUTH_RECHECK_SECONDS = 5.0  # an open socket re-checks its sign-in (revoked, suspended) this often
POLL_SECONDS = 3  # the fallback's polling interval (live.js switches to it)
CLOSE_WAIT_SECONDS = 2.0  # how long a closing socket waits for the client's half of the close handshake
UNWOKEN_WAIT_SECONDS = 1.0  # how often a pump not woken by its socket (see SocketEvent) looks at it


class SocketEvent(threading.Event):
    """simple-websocket's per-socket event (its reader thread sets it when a message or the
    client's close arrives), which also wakes the socket's pump through ``wake``.

    Without it each socket's thread had to wake every second to notice a closed socket: with
    2,000 viewers, 2,000 wake-ups a second for nothing, each taking the GIL from the threads
    sending transcript lines (issue 18). Woken by its socket, a pump waits on its subscription
    until the next keepalive is due."""

    wake: Any = None

    def set(self) -> None:
        super().set()
        wake = self.wake
        if wake is not None:
            wake()


@bp.record_once
def _socket_options(state: Any) -> None:
    options = state.app.config.setdefault("SOCK_SERVER_OPTIONS", {})
    options.setdefault("event_class", SocketEvent)


# --------------------------------------------------------------------------- template helpers


@bp.app_template_filter("duration")
def duration_filter(value: timedelta | None) -> str:
    if value is None:
        return ""
    seconds = int(value.total_seconds())
    if seconds < 60:
        return _("%(seconds)s s", seconds=seconds)
    hours, rest = divmod(seconds, 3600)
    minutes = rest // 60
    if hours:
        padded = f"{minutes:02d}"
        return _("%(hours)s h %(minutes)s min", hours=hours, minutes=padded)
    return _("%(minutes)s min", minutes=minutes)


@bp.app_template_filter("elapsed")
def elapsed_filter(value: datetime, start: datetime) -> str:
    return transcripts.format_elapsed((value - start).total_seconds())


@bp.app_template_global("session_state_badge")
def state_badge(state: object) -> Markup:
    """A session's state as a badge; sessions/_macros.html exports this function as ``state_badge``
    (it was a macro: the lists call it per row and a macro call cost several times more). An
    unknown state is shown as it is, escaped; a known one is its translation (trusted, as a
    template's ``_()`` is) joined to its tag as text: Markup's % would double the cost per row
    (see the note above _hits_html)."""
    if state == "active":
        return Markup('<span class="badge badge-ok badge-live">' + _("Live") + "</span>")
    if state == "pending":
        return Markup('<span class="badge badge-warn badge-live">' + _("Starting") + "</span>")
    if state == "ended":
        return Markup('<span class="badge">' + _("Ended") + "</span>")
    return Markup('<span class="badge">%s</span>') % (state,)


@bp.app_template_global("session_bot_badge")
def bot_badge(bot: svc.BotBadge | None) -> Markup:
    """The bot's status as a badge; sessions/_macros.html exports this function as ``bot_badge``.
    The sessions page calls ``session_bot_badge`` itself (importing that file costs a module build
    per request). Markup's % escapes the gateway's error; the translations go in as Markup, as a
    template's ``_()`` does."""
    if not bot:
        return Markup("")
    if bot.state == "no_server":
        return Markup('<a class="badge badge-warn" href="%s#discord-h" title="%s">%s</a>\n') % (
            url_for("settings.index"),
            Markup(_("Add your Discord server in the table settings")),
            Markup(_("No Discord server")),
        )
    if bot.state == "connected":
        title = ngettext(
            "The Discord bot is online in %(num)d server",
            "The Discord bot is online in %(num)d servers",
            bot.guild_count,
        )
        return Markup('<span class="badge badge-ok" title="%s">%s</span>\n') % (
            Markup(title),
            Markup(_("Bot connected")),
        )
    if bot.state == "unavailable":
        return Markup('<span class="badge badge-warn" title="%s">%s</span>\n') % (
            bot.error,
            Markup(_("Bot status unknown")),
        )
    title = bot.error or Markup(_("The Discord bot is offline"))
    return Markup('<span class="badge badge-danger" title="%s">%s</span>') % (title, Markup(_("Bot offline")))


def _guild_names() -> dict[str, str]:
    return svc.guild_names(getattr(current_user.user, "discord_guilds", None))


# --------------------------------------------------------------------------- list, detail


@bp.get("")
@login_required
def index():
    filters, errors = svc.SessionFilters.parse(request.args)
    result = svc.list_sessions(current_user, filters, cursor=request.args.get("cursor"))
    context = dict(
        result=result,
        filters=filters,
        errors=errors,
        guild_names=_guild_names(),
        states=svc.STATES,
        duration=svc.duration,
    )
    if not htmx.wants_block():  # the filter form and the bot badge are outside the #results block
        context.update(
            campaigns=campaigns.choices(current_user, include_archived=True),
            bot=svc.bot_status(current_user),
            gateway_configured=gateway() is not None,
        )
    else:
        campaigns.register_found(current_user)  # as choices() would: the found-campaigns sync keeps its pace
    return htmx.render("sessions/index.html", "results", status=422 if errors else 200, **context)


@bp.get("/new")
@login_required
def new():
    return _start_page()


def _start_page(
    errors: dict | None = None,
    form: dict | None = None,
    status: int = 200,
    live_session_id=None,
    maybe_started: bool = False,
    empty_cast: bool = False,
):
    require(current_user, Perm.CONTROL_SESSIONS)
    data = control.start_form(current_user, getattr(current_user.user, "discord_guilds", None))
    return htmx.render(
        "sessions/new.html",
        "start_form",
        status=status,
        data=data,
        errors=errors or {},
        form=form or {"campaign_id": request.args.get("campaign", "")},
        live_session_id=live_session_id,
        maybe_started=maybe_started,
        empty_cast=empty_cast,
    )


@bp.post("/new")
@login_required
def start():
    form = {k: request.form.get(k, "") for k in ("campaign_id", "guild_id", "channel_id")}
    try:
        session_id = control.start(current_user, **form, allow_empty_cast=request.form.get("empty_cast_ok") == "1")
    except control.EmptyCast:
        # Ask first (with and without JavaScript: the same form again, with "Start anyway").
        return _start_page({}, form, 422, empty_cast=True)
    except control.StartRefused as exc:
        return _start_page(exc.errors, form, 422, live_session_id=exc.live_session_id, maybe_started=exc.maybe_started)
    except ValidationError as exc:
        return _start_page(exc.errors, form, 422)
    if not session_id:
        htmx.toast(_("Session starting. The bot is joining the voice channel."))
        return htmx.redirect_to(url_for("sessions.index"))
    # The live page says "joining…" next to its status badge until the session is live, so no
    # flashed notice that would stay on the page after the session went live.
    return htmx.redirect_to(url_for("sessions.live_view", session_id=session_id))


@bp.post("/new/check-channel")
@login_required
def check_channel():
    """Inline check of the voice channel id while the DM fills the start form (htmx, on change)."""
    require(current_user, Perm.CONTROL_SESSIONS)
    value = request.form.get("channel_id", "").strip()
    if not value:
        return ""
    # Our own (trusted) text, as templates treat translations; nothing the user sent is echoed.
    if SNOWFLAKE_RE.match(value):
        fine = _("Looks like a channel id.")
        return f'<span class="ok-text">{fine}</span>'
    problem = _(
        "That isn't a channel id: 17 to 20 digits (in Discord, enable Developer Mode, "
        "then right-click the channel and choose Copy Channel ID)."
    )
    return f'<span class="error-text">{problem}</span>'


@bp.get("/<session_id>")
@login_required
def detail(session_id: str):
    data = svc.detail(current_user, session_id)
    stop = None
    if request.args.get("stop") == "check" and current_user.can(Perm.CONTROL_SESSIONS):
        stop = control.reconcile_stop(current_user, data["session"].id)  # after a stop that timed out
        if stop is not None and stop.outcome != "checking":
            data = svc.detail(current_user, session_id)
    return htmx.render("sessions/detail.html", "content", guild_names=_guild_names(), stop=stop, **data)


@bp.get("/<session_id>/stop-status")
@login_required
def stop_status(session_id: str):
    """Polled by the session page while a stop's outcome is unknown (the gateway's answer never
    came): 204 while public.sessions still shows it running, then the page's content with the
    real outcome (which reconcile_stop audits once)."""
    session = svc.get(current_user, session_id)  # another table's session: 404 before the role's 403
    require(current_user, Perm.CONTROL_SESSIONS)
    if not htmx.is_htmx():
        return redirect(url_for("sessions.detail", session_id=session.id, stop="check"), 303)
    result = control.reconcile_stop(current_user, session.id)
    if result is not None and result.outcome == "checking":
        return Response(status=204)  # nothing known yet: the page keeps polling
    if result is not None:
        htmx.toast(result.message, "success" if result.outcome == "stopped" else "warning")
    data = svc.detail(current_user, session.id)
    return htmx.render("sessions/detail.html", "content", guild_names=_guild_names(), stop=result, **data)


@bp.get("/<session_id>/stop")
@login_required
def stop_page(session_id: str):
    """Reloading the no-JavaScript confirmation (a GET to the POST-only URL): the session page,
    where Stop is, instead of 'Error 405'."""
    session = svc.get(current_user, session_id)
    return redirect(url_for("sessions.detail", session_id=session.id), 303)


@bp.post("/<session_id>/stop")
@login_required
def stop(session_id: str):
    session = svc.get(current_user, session_id)  # another tenant's session: 404 before anything else (the role too)
    require(current_user, Perm.CONTROL_SESSIONS)
    detail_url = url_for("sessions.detail", session_id=session.id)
    if svc.is_live(session) and not htmx.confirmed():
        return htmx.confirm_page(
            _("Stop this session for everyone at the table?"), submit_label=_("Stop session"), cancel_url=detail_url
        )
    try:
        result = control.stop(current_user, session.id)
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
            return htmx.render("sessions/detail.html", "stop_status", status=202, session=result.session, stop=result)
        htmx.toast(result.message, "warning")
        return htmx.redirect_to(url_for("sessions.detail", session_id=session.id, stop="check"))
    htmx.toast(result.message, "warning" if result.outcome in ("untracked", "ended_otherwise") else "success")
    return htmx.redirect_to(detail_url)


# --------------------------------------------------------------------------- live view


def _panel(session):
    if not current_user.can(Perm.CONTROL_SESSIONS):
        return None
    return control.npc_panel(current_user, session)


def _cast_names(session, panel) -> set[str] | None:
    """Names in the campaign's cast, to mark NPCs the voice service runs that aren't in it
    (one query, only when the panel lists NPCs)."""
    if panel is None or not panel.npcs:
        return None
    return {npc.name for npc in svc.campaign_npcs(current_user, session.campaign_id)}


def _elapsed(session) -> str:
    if session.state == "ended" or session.started_at is None:
        return ""
    return transcripts.format_elapsed((datetime.now(session.started_at.tzinfo) - session.started_at).total_seconds())


@bp.get("/<session_id>/live")
@login_required
def live_view(session_id: str):
    return _live_page(session_id)


def _live_page(session_id: str, *, status: int = 200, errors: dict | None = None, **form):
    require(current_user, Perm.VIEW_TRANSCRIPTS)
    session, name = svc.get_named(current_user, session_id)
    snap = transcripts.snapshot(current_user, session)
    panel = _panel(session)
    return htmx.render(
        "sessions/live.html",
        "content",
        status=status,
        session=session,
        lines=snap.lines,
        elapsed=_elapsed(session),
        after=snap.cursor,
        panel=panel,
        cast_names=_cast_names(session, panel),
        ws_path=_ws_path(session.id),
        campaign_name=name or session.campaign_id or _("Default campaign"),
        guild_names=_guild_names(),
        poll_seconds=POLL_SECONDS,
        errors=errors or {},
        **form,
    )


def _ws_path(session_id: str) -> str:
    """The socket's path only: werkzeug builds ws:// URLs for WebSocket rules, but the browser
    must pick ws:// or wss:// from the page it is on (the ws extension does that for paths)."""
    return urlsplit(url_for("sessions.stream", session_id=session_id)).path


@bp.get("/<session_id>/lines")
@login_required
def poll(session_id: str):
    """Polling fallback: lines that arrived after ``after`` (the highest id the page has) as
    out-of-band fragments, the status, and once the
    session has ended the final fragment (which also stops the polling). Served by the
    per-process live hub, so many polling viewers of one session share one database poll."""
    require(current_user, Perm.VIEW_TRANSCRIPTS)
    session = svc.get(current_user, session_id)  # the tenant check, before the hub is touched
    if not htmx.is_htmx():
        return redirect(url_for("sessions.live_view", session_id=session.id), 303)
    dbconn.release_connections()  # the hub may wait for its next poll: hold no database connection meanwhile
    result = live.poll(current_user, session, int_arg(request.args.get("after"), 0), limit=500)
    return render_template(
        "sessions/_stream.html",
        lines=_in_order(result.lines),
        state=result.state,
        ended=result.ended,
        error=result.error,
        session_id=session.id,
        polling=True,
        poll_seconds=POLL_SECONDS,
    )


@bp.get("/<session_id>/controls")
@login_required
def controls(session_id: str):
    session = svc.get(current_user, session_id)
    require(current_user, Perm.CONTROL_SESSIONS)
    if not htmx.wants_block():
        return redirect(url_for("sessions.live_view", session_id=session.id), 303)
    panel = _panel(session)
    return htmx.render(
        "sessions/live.html",
        "controls",
        session=session,
        panel=panel,
        cast_names=_cast_names(session, panel),
        errors={},
    )


@bp.post("/<session_id>/npcs/<action>")
@login_required
def npc_control(session_id: str, action: str):
    """Mute/unmute/speak. The status says what happened, so htmx and scripts can tell: 200 done,
    422 with the form's errors, 409 the session has ended, 503 the voice service failed (with the
    message as a toast, or on the live page without JavaScript)."""
    action = action.replace("-", "_")
    errors: dict = {}
    status = 200
    panel = None
    try:
        message = control.control(
            current_user, session_id, action, npc=request.form.get("npc", ""), speech=request.form.get("speech", "")
        )
        if action == "speak":
            # The gateway speaks a DM's line even for a muted NPC: say so, so that the toast and
            # the "Muted" badge tell one story.
            panel = _panel(svc.get(current_user, session_id))
            spoken = request.form.get("npc", "").strip()
            if panel is not None and any(n.name == spoken and n.muted for n in panel.npcs):
                message = control.muted_speak_message(spoken)
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
    session = svc.get(current_user, session_id)
    if panel is None:
        panel = _panel(session)
    return htmx.render(
        "sessions/live.html",
        "controls",
        status=status,
        session=session,
        panel=panel,
        cast_names=_cast_names(session, panel),
        errors=errors,
        **form,
    )


# --------------------------------------------------------------------------- WebSocket


_DEFAULT_PORTS = {"http": 80, "https": 443, "ws": 80, "wss": 443}


def _origin_tuple(url: str) -> tuple[str, str, int] | None:
    """(scheme, host, port) of an origin or base URL, default ports filled in; None if malformed."""
    try:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme.lower(), (parts.hostname or "").lower(), parts.port
    except ValueError:
        return None
    if scheme not in ("http", "https") or not host:
        return None
    return scheme, host, port or _DEFAULT_PORTS[scheme]


def _origin_ok() -> bool:
    """The handshake's Origin must be exactly our origin: scheme, host and port of PUBLIC_URL, or
    (without PUBLIC_URL, or outside production) of the request itself as the browser reached it.
    ``https://host`` is not the origin of an http server on that host, nor ``http://host:8080``."""
    origin = _origin_tuple(request.headers.get("Origin", ""))
    if origin is None:
        return False
    cfg = settings()
    allowed = set()
    if cfg.public_url:
        allowed.add(_origin_tuple(cfg.public_url))
    if not cfg.public_url or not cfg.production:
        allowed.add(_origin_tuple(f"{request.scheme}://{request.host}"))
    return origin in allowed


@bp.before_request
def _ws_handshake_guard():
    """Refuse the WebSocket handshake (plain HTTP status, no upgrade, nothing sent) unless the
    Origin is ours, the cookie is a live sign-in and the session belongs to the user's tenant."""
    if request.endpoint != "sessions.stream":
        return None
    if not _origin_ok():
        log.warning("websocket refused: origin %r", request.headers.get("Origin"))
        return Response(status=403)
    if not current_user.is_authenticated:
        return Response(status=401)
    try:
        require(current_user, Perm.VIEW_TRANSCRIPTS)
        session = svc.get(current_user, (request.view_args or {}).get("session_id", ""))
    except DomainError as exc:
        return Response(status=exc.status)
    # The sign-in is re-checked while the socket is open (sign-out, revocation, suspension):
    # keep only the cookie token's hash, which is how login sessions are stored.
    g.ws_session = {
        "id": session.id,
        "tenant_id": session.tenant_id,
        "token_hash": hash_token(request.cookies.get(COOKIE, "")),
    }
    # The viewer's language, settled now while the sign-in is loaded: the socket's fragments are
    # rendered later, per viewer, in this request's context but without a database connection.
    current_locale()
    return None


@sock.route("/<session_id>/ws", bp=bp)
def stream(ws, session_id: str):
    """Stream new transcript lines as rendered out-of-band fragments. ``after`` is the highest
    line id the client has (an arrival mark, not a place in time): it receives exactly the lines
    that arrived after it, including one with an earlier timestamp. When the session ends it
    gets the final fragment and a normal close (1000); a viewer that fell too far behind is
    closed with 1013 so that the client reconnects and resumes."""
    info = g.ws_session
    after = int_arg(request.args.get("after"), 0)
    dbconn.release_connections()  # hold no database connection for the life of the socket
    try:
        with live.hub().subscribe(
            info["tenant_id"],
            info["id"],
            after,
            token_hash=info["token_hash"],
            recheck=min(AUTH_RECHECK_SECONDS, KEEPALIVE_SECONDS),
        ) as sub:
            _pump(ws, sub, info)
    except ConnectionClosed:
        pass
    except Exception:  # noqa: BLE001 - never let an error page be written onto an upgraded socket
        log.exception("live stream for session %s failed", info["id"])
        close_cleanly(ws, 1011, "server error")
        return
    close_cleanly(ws, 1000, "bye")  # e.g. the client went away: nothing may follow on the socket


def close_cleanly(ws, code: int, message: str) -> None:
    """Close with ``code`` and a proper closing handshake, and make sure nothing follows the
    close frame. Under the development server (werkzeug) flask-sock lets werkzeug write an HTTP
    response after the handler returns; socket.close() does not really close a socket that
    werkzeug still holds a file on, so those bytes reached the browser after our close frame,
    Chrome failed the connection ("Invalid frame header") and reported 1006 — which the ws
    extension answers by reconnecting, for an ended session forever. So: send the close frame,
    let the reader thread take the client's answering close, then shut the connection down
    (which does cut it, whoever holds the file), so the late HTTP bytes go nowhere."""
    if ws.connected:
        # The frame only; the socket stays open. Any close code goes out as is (4xxx are ours).
        _WsBase.close(ws, reason=code, message=message)  # type: ignore[arg-type]  # stub admits only wsproto's CloseReason members
        reader = getattr(ws, "thread", None)
        if reader is not None and reader.is_alive():
            reader.join(timeout=CLOSE_WAIT_SECONDS)
    try:
        ws.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass  # already gone
    try:
        ws.sock.close()
    except OSError:
        pass


def _pump(ws, sub, info: dict) -> None:
    """Forward the hub's events; the hub re-checks the sign-in (all viewers of the process in one
    query) and flags the subscription when it ended."""
    next_keepalive = time.monotonic() + KEEPALIVE_SECONDS
    event = getattr(ws, "event", None)
    woken = isinstance(event, SocketEvent)  # (else a server without SOCK_SERVER_OPTIONS': look each second)
    if isinstance(event, SocketEvent):
        event.wake = sub.nudge  # a message or the close wakes this thread (then ws.connected is read)
    while ws.connected:
        while ws.receive(timeout=0) is not None:  # the client has nothing to say; drain
            pass
        wait = max(0.0, next_keepalive - time.monotonic()) if woken else UNWOKEN_WAIT_SECONDS
        events = [e for e in sub.get(timeout=wait) if e[0] != "wake"]
        if sub.signed_out:
            close_cleanly(ws, 1008, "signed out")
            return
        now = time.monotonic()
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
            close_cleanly(ws, 1013, "resync")
            return
        if ended:
            close_cleanly(ws, 1000, "session ended")
            return


def _in_order(lines: list) -> list:
    """A delivery (which comes in arrival order, by id) in transcript order, (timestamp, id); the
    live script then moves a line that arrived late with an earlier timestamp into its place."""
    return sorted(lines, key=lambda line: line.order_key)


# One delivery of a watched session reaches every viewer of it in this process with the same
# lines: the fragment is rendered once per (session, language, content) and shared, instead of once
# per viewer (2,000 viewers of 50 sessions were ~1,000 renders a second, issue 18). Lines are frozen
# values, so the key is their content, not an id that could have been reused.
MAX_RENDERED_DELIVERIES = 2048
_rendered_deliveries: Memo[tuple, str] = Memo(MAX_RENDERED_DELIVERIES)


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
    key = (session_id, current_locale(), tuple(lines), state, ended, error)
    body = _rendered_deliveries.get(key)
    if body is None:
        body = render_template(
            "sessions/_stream.html",
            lines=_in_order(lines),
            state=state,
            ended=ended,
            error=error,
            session_id=session_id,
            polling=False,
            poll_seconds=POLL_SECONDS,
        )
        _rendered_deliveries.keep(key, body)
    return body, ended, overflow


# --------------------------------------------------------------------------- transcripts


@bp.get("/<session_id>/transcript")
@login_required
def transcript(session_id: str):
    require(current_user, Perm.VIEW_TRANSCRIPTS)
    session, name = svc.get_named(current_user, session_id)
    filters = transcripts.TranscriptFilters.parse(request.args)
    errors = {}
    if request.args.get("at") and filters.at is None:
        errors["at"] = _("Use hours:minutes, e.g. 1:15.")
    page = transcripts.page(
        current_user,
        session,
        filters,
        after=int_arg(request.args.get("after")),
        before=int_arg(request.args.get("before")),
        around=int_arg(request.args.get("around")),
    )
    return htmx.render(
        "sessions/transcript.html",
        "lines",
        session=session,
        page=page,
        filters=filters,
        errors=errors,
        campaign_name=name or session.campaign_id or _("Default campaign"),
        status=422 if errors else 200,
        oob_fields=htmx.wants_block(),
    )


def _download(session_id: str, kind: str):
    require(current_user, Perm.VIEW_TRANSCRIPTS)
    session, campaign_name = svc.get_named(current_user, session_id)
    name = campaign_name or session.campaign_id or _("Default campaign")
    render = transcripts.as_markdown if kind == "md" else transcripts.as_text
    body = render(session, name, transcripts.iter_lines(current_user, session))
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
    # The campaign filter is outside the #results block: a block request doesn't read it. The full
    # page's comes with the hits' sessions (one statement fewer).
    block = htmx.wants_block()
    try:
        result = transcripts.search(
            current_user, q, campaign=campaign, before=int_arg(request.args.get("before")), choices=not block
        )
    except ValidationError as exc:
        errors, result = exc.errors, transcripts.SearchResult(query=q)
    choices = result.choices
    if choices is None:
        choices = [] if block else campaigns.choices(current_user, include_archived=True)
    # The names of the hits' sessions' campaigns came with the hits (one statement fewer).
    campaign_names = {
        grp.session.campaign_id: grp.session.campaign_name
        for grp in result.groups
        if grp.session is not None and grp.session.campaign_name is not None
    }
    return htmx.render(
        "sessions/search.html",
        "results",
        result=result,
        q=q,
        campaign=campaign,
        campaigns=choices,
        campaign_names=campaign_names,
        errors=errors,
        status=422 if errors else 200,
    )


@bp.get("/<session_id>/recap.wav")
@login_required
def recap_audio(session_id: str):
    session = svc.get(current_user, session_id)
    data = transcripts.recap_audio(current_user, session)
    resp = Response(data, mimetype="audio/wav")
    resp.headers["Content-Disposition"] = f'inline; filename="recap-{session.id[:8]}.wav"'
    resp.headers["Cache-Control"] = "private, max-age=3600"
    return resp


# --------------------------------------------------------------------------- search hits

# The per-row builders (_hits_html, search_groups, session_rows, line_items_html, cast_rows in
# web/npcs.py, entity_rows in web/knowledge.py, and the known states of session_state_badge) fill a
# str template with values escaped one by one, not Markup(template) % values as core/markup.py
# does: markupsafe's % wraps every value in a Python helper object and escapes it through two
# Python calls, 1.6-2.4x the cost per row even with the template built once at module level
# (measured for the issue 18 review). Escape every new value.

# One hit of the search results, as the template's loop wrote it (issue 18: per-hit url_for, filter
# and attribute lookups were most of the page's render time), written by ``_hits_html``. Every
# interpolated value is escaped or is ours: the colour slot is an int, the elapsed time digits and
# colons, the id an int.
_NPC_BADGE = ' <span class="badge badge-accent">NPC</span>'
_SECOND = timedelta(seconds=1)


def _hits_html(hits: list[transcripts.SearchHit], href: str, start: datetime | None) -> Iterator[str]:
    """Each hit as an ``<li>``: ``href`` the escaped transcript URL; the time shown is the time
    since ``start`` (digits and colons), or with None the line's date (``when_html``). What a
    speaker shows (class, colour, name, badge) is worked out once per speaker: a page has
    SEARCH_RESULTS hits and a handful of speakers (~2 µs a hit). The highlight is Markup already
    (``fulltext``), so escape() hands it back as it is."""
    speakers: dict[tuple[str, str, str], tuple[str, int, str, str]] = {}
    for line, highlight in hits:
        key = (line.speaker_id, line.speaker_name, line.npc_id)
        who = speakers.get(key)
        if who is None:
            npc = line.is_npc
            who = speakers[key] = (
                " is-npc" if npc else "",
                line.colour,
                escape(line.speaker),
                _NPC_BADGE if npc else "",
            )
        npc_class, colour, speaker, badge = who
        line_id = int(line.id)
        # (whole seconds by floor division: what int(total_seconds()) gives, without the float)
        at = (
            transcripts.format_elapsed((line.timestamp - start) // _SECOND)
            if start is not None
            else when_html(line.timestamp)
        )
        yield (
            f'    <li class="hit{npc_class} spk-{colour}">\n'
            f'      <a href="{href}?around={line_id}#line-{line_id}">\n'
            f'        <span class="speaker">{speaker}</span>{badge}        <span class="small muted">{at}</span>\n'
            "      </a>\n"
            f'      <p class="hit-text">{escape(highlight)}</p>\n'
            "    </li>\n"
        )


@bp.app_template_global()
def search_groups(groups: list[transcripts.SearchGroup], campaign_names: dict[str, str]) -> Markup:
    """The search results, one section per session, as the template's loop wrote them (issue 18:
    the loop around the hits cost ~25 µs a group, a page has up to SEARCH_RESULTS). A group whose
    session isn't one of the table's (``session`` None) is labelled by its id and its hits show
    their date. Every value from the database is escaped; translations are trusted."""
    detail_url = id_url("sessions.detail", "session_id")
    transcript_url = id_url("sessions.transcript", "session_id")
    # (formats translated once, outside the f-strings: Babel's extractor can't see into them)
    label_fmt = _("Session %(label)s")
    unknown_fmt = _('Session <span class="mono">%(id)s</span>')
    default = markup_gettext("Default campaign")
    out = []
    for group in groups:
        session, sid = group.session, group.session_id
        if session is not None:
            day = escape(date_text(session.started_at))
            name = escape(campaign_names.get(session.campaign_id) or session.campaign_id or default)
            heading = f'<a href="{escape(detail_url(sid))}">{name} · {day}</a>\n'
            label, start = day, session.started_at
        else:
            heading = unknown_fmt % {"id": escape(sid[:8])}
            label, start = escape(sid), None
        hits = "".join(_hits_html(group.hits, escape(transcript_url(sid)), start))
        out.append(
            f'<section class="card search-group" aria-label="{label_fmt % {"label": label}}">\n'
            '  <h2 class="h3">\n'
            f"{heading}  </h2>\n"
            '  <ol class="hits">\n'
            f"{hits}  </ol>\n"
            "</section>\n"
        )
    return trusted("".join(out))


# The sessions table's rows, as the template's loop wrote them (issue 18: the loop cost ~40 µs a
# row, a third of the sessions page; this is ~10). Every value from the database is escaped; the
# labels are translations (trusted, as a template's ``_()`` is), the date and badge are Markup.


def _error_span(error: object) -> Markup:
    return Markup('<span class="error-text">%s</span>') % (error,)


# An ended session's row, kept per process: its HTML is a function of the row, the names shown
# for its campaign and guild, the language and time zone, and the detail URL's shape, all in the
# key; a running session's duration grows, so its row is built every time. The sessions page is
# reloaded often and its rows, once ended, never change: building one was ~18 µs, a lookup ~2.
MAX_ENDED_ROWS = 10_000  # ~1 KB each (the key holds the row)
_ended_rows: Memo[Any, str] = Memo(MAX_ENDED_ROWS)


@bp.app_template_global()
def session_rows(rows: list, campaign_names: dict[str, str], guild_names: dict[str, str], href: Any) -> Markup:
    """The sessions table's rows: ``href`` is the list's ``id_url`` for the detail page. The same
    HTML as the loop it replaces (``tests/test_markup.py`` renders both); an ended session's row
    comes from ``_ended_rows`` once built."""
    context = (format_context(), href("\x00"))  # (the language and zone; the URL's shape)
    # (each string spelt out: Babel's extractor only sees literal arguments)
    l_campaign, l_started, l_duration = (
        markup_gettext("Campaign"),
        markup_gettext("Started"),
        markup_gettext("Duration"),
    )
    l_state, l_error, default = markup_gettext("State"), markup_gettext("Error"), markup_gettext("Default campaign")
    badges: dict[Any, Markup] = {}  # per state: a page of ended sessions has one
    out = []
    for s in rows:
        campaign_name, guild_name = campaign_names.get(s.campaign_id), guild_names.get(s.guild_id)
        key: Any = (s, campaign_name, guild_name, context) if s.ended_at is not None else None
        if key is not None:
            try:
                kept = _ended_rows.get(key)
            except TypeError:  # a column the gateway filled with something unhashable: built each time
                kept, key = None, None
            if kept is not None:
                out.append(kept)
                continue
        state, error = s.state, s.error
        badge = badges.get(state)
        if badge is None:
            badge = badges[state] = state_badge(state)
        campaign = escape(campaign_name or s.campaign_id or default)
        guild = escape(guild_name or s.guild_id)
        row = (
            "  <tr>\n"
            f'    <td data-label="{l_campaign}"><a href="{escape(href(s.id))}">{campaign}</a></td>\n'
            f'    <td data-label="Discord" class="small wrap-anywhere">{guild}<br>'
            f'<span class="mono muted">#{escape(s.channel_id)}</span></td>\n'
            f'    <td data-label="{l_started}">{when_html(s.started_at)}</td>\n'
            f'    <td data-label="{l_duration}">{escape(duration_filter(svc.duration(s)))}</td>\n'
            f'    <td data-label="{l_state}">{badge}</td>\n'
            f'    <td data-label="{l_error if error else ""}" class="small">{_error_span(error) if error else ""}</td>\n'
            "  </tr>\n"
        )
        if key is not None:
            _ended_rows.keep(key, row)
        out.append(row)
    return Markup("".join(out))


# --------------------------------------------------------------------------- transcript lines


@bp.app_template_global()
def line_items_html(
    lines: Iterable[transcripts.Line],
    session_id: str,
    start: datetime | None = None,
    target: int | None = None,
    raw: bool = False,
    href: str | None = None,
) -> Markup:
    """Transcript lines: the ``line_item`` macro (sessions/_macros.html, once a call per line) as
    Python, for a whole list: same HTML, every value escaped, and what all lines share (the
    translations, the escaped transcript URL) worked out once, what a speaker shows once per
    speaker; a page shows up to 100 lines (issue 18: ~10 µs a line as one ``str.format`` with
    thirteen fields, ~4 as this). ``start`` shows the time since it (archive), else the clock time
    (live); ``href`` is the session's transcript URL (built here when not given). Each line links to
    ``href?around=<id>#line-<id>``. Ids and the colour slot go in as digits when they are ints;
    every other value is escaped."""
    # (translated outside any f-string: Babel's extractor doesn't look inside one)
    link_title = Markup(_("Link to this line"))
    raw_label = Markup(_("Raw speech-to-text:")) if raw else ""
    base = escape(href or url_for("sessions.transcript", session_id=session_id))
    speakers: dict[tuple[str, str, str], tuple[str, str]] = {}
    out = []
    for line in lines:
        key = (line.speaker_id, line.speaker_name, line.npc_id)
        who = speakers.get(key)
        if who is None:
            npc = line.is_npc
            who = speakers[key] = (
                f"{_digits(line.colour)}{' is-npc' if npc else ''}",
                f'<span class="speaker">{escape(line.speaker)}</span>' + (_NPC_BADGE if npc else ""),
            )
        classes, speaker = who
        lid = _digits(line.id)
        stamp = line.timestamp
        shown = transcripts.format_elapsed((stamp - start).total_seconds()) if start else stamp.strftime("%H:%M:%S")
        raw_html = ""
        if raw and line.raw_text and line.raw_text != line.text:
            raw_html = (
                f'<p class="line-raw"><span class="visually-hidden">{raw_label} </span>{escape(line.raw_text)}</p>'
            )
        out.append(
            f'<li id="line-{lid}" data-line-id="{lid}" data-at="{_digits(line.at_us)}" class="line spk-{classes}'
            f'{" is-target" if target == line.id else ""}">\n'
            f'<div class="line-meta">{speaker}'
            f'<a class="line-time" href="{base}?around={lid}#line-{lid}" data-copy-link title="{link_title}">'
            f'<time datetime="{escape(stamp.isoformat())}">{escape(shown)}</time></a></div>\n'
            f'<p class="line-text">{escape(line.text)}</p>\n'
            f"{raw_html}</li>"
        )
    return Markup("".join(out))


def _digits(value: Any) -> Any:
    """An int as its digits (nothing to escape); anything else escaped."""
    return str(value) if type(value) is int else escape(value)
