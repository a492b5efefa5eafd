"""Sign-in, sign-out, session rotation, and loading the acting user for every request."""

from __future__ import annotations

import functools
import logging
from urllib.parse import urlsplit

from flask import Blueprint, abort, g, make_response, redirect, request, url_for
from werkzeug.wrappers import Response

from glyphoxa_htmx.adapters import identity
from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.deps import settings
from glyphoxa_htmx.core.errors import DomainError, ValidationError
from glyphoxa_htmx.extensions import limiter
from glyphoxa_htmx.services import auth as auth_service

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__, url_prefix="/auth")

COOKIE = "gx_session"
AUTH_LIMIT = "10 per minute"


def _ip() -> str | None:
    return request.remote_addr


def load_actor() -> None:
    """Resolve the cookie to an Actor once per request (one query: session joined with user)."""
    g.actor = None
    token = request.cookies.get(COOKIE)
    if not token:
        return
    row = auth_service.resolve(token)
    if row is None:
        g.session_expired = True
        return
    g.login_session = row
    g.user = row.user
    g.actor = auth_service.actor_for(row, _ip())


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("pages.dashboard")


def login_required(view):
    """Anonymous (or expired) visitors go to sign-in; htmx requests get HX-Redirect, never a
    sign-in page swapped into a fragment."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if g.get("actor") is None:
            target = url_for("auth.signin", next=request.full_path.rstrip("?") if request.method == "GET" else None,
                             expired=1 if g.get("session_expired") else None)
            if htmx.is_htmx():
                came_from = htmx.current_url()
                path = urlsplit(came_from).path if came_from else ""
                target = url_for("auth.signin", next=path or None, expired=1)
            return htmx.client_redirect(target)
        return view(*args, **kwargs)

    return wrapper


def set_session_cookie(response: Response, token: str) -> Response:
    cfg = settings()
    response.set_cookie(
        COOKIE, token, max_age=cfg.session_absolute_days * 86400, httponly=True,
        secure=cfg.cookie_secure, samesite="Lax", path="/",
    )
    return response


def _finish_sign_in(user, next_url: str | None = None) -> Response:
    token = auth_service.start_session(user, ip=_ip(), user_agent=request.headers.get("User-Agent"))
    response = redirect(_safe_next(next_url), 303)
    return set_session_cookie(response, token)


@bp.get("/signin")
def signin():
    if g.get("actor") is not None:
        return redirect(_safe_next(request.args.get("next")), 303)
    cfg = settings()
    users = auth_service.dev_users() if cfg.dev_login else []
    return htmx.render(
        "auth/signin.html",
        providers=identity.enabled(),
        labels=identity.PROVIDER_LABELS,
        dev_login=cfg.dev_login,
        dev_users=users,
        next=request.args.get("next", ""),
        expired=bool(request.args.get("expired")),
        errors={},
    )


@bp.get("/<provider>")
@limiter.limit(AUTH_LIMIT, key_func=lambda: request.remote_addr or "unknown")
def oauth_start(provider: str):
    if provider not in identity.enabled():
        abort(404)
    from flask import session

    session["oauth_next"] = _safe_next(request.args.get("next"))
    redirect_uri = url_for("auth.oauth_callback", provider=provider, _external=True)
    if settings().public_url:
        redirect_uri = settings().public_url.rstrip("/") + url_for("auth.oauth_callback", provider=provider)
    return identity.client(provider).authorize_redirect(redirect_uri)


@bp.get("/<provider>/callback")
@limiter.limit(AUTH_LIMIT, key_func=lambda: request.remote_addr or "unknown")
def oauth_callback(provider: str):
    if provider not in identity.enabled():
        abort(404)
    from authlib.integrations.base_client.errors import OAuthError
    from flask import session

    if request.args.get("error"):
        return _signin_error("Sign-in was cancelled at the provider. Try again when you're ready.")
    try:
        token = identity.client(provider).authorize_access_token()
    except OAuthError as exc:
        # Bad or missing state (CSRF), a reused code, or a provider refusal.
        log.warning("oauth callback refused", extra={"provider": provider, "error": exc.error})
        return _signin_error("That sign-in link is no longer valid. Please start again.")
    try:
        ident = identity.fetch_identity(provider, token)
        user, _created = auth_service.sign_in(ident, ip=_ip(), invitation_id=session.pop("invitation_id", None))
    except DomainError as exc:
        return _signin_error(exc.message, status=exc.status)
    return _finish_sign_in(user, session.pop("oauth_next", None))


def _signin_error(message: str, status: int = 400):
    cfg = settings()
    return htmx.render(
        "auth/signin.html", status=status, providers=identity.enabled(), labels=identity.PROVIDER_LABELS,
        dev_login=cfg.dev_login, dev_users=auth_service.dev_users() if cfg.dev_login else [], next="",
        expired=False, errors={"": message},
    )


@bp.post("/dev")
@limiter.limit("60 per minute", key_func=lambda: request.remote_addr or "unknown")
def dev_signin():
    """Development only: enter as an existing user, or create one. 404 unless dev mode."""
    cfg = settings()
    if not cfg.dev_login or cfg.production:
        abort(404)
    next_url = request.form.get("next")
    user_id = request.form.get("user_id")
    try:
        if user_id:
            user = auth_service.get_user(user_id)
            if user is None:
                raise ValidationError({"user_id": "No such user."})
            if user.status != "active":
                raise auth_service.AccountSuspended()
        else:
            user = auth_service.create_dev_user(
                request.form.get("name", ""), request.form.get("role", "tenant_owner"),
                request.form.get("tenant_id") or None, ip=_ip(),
            )
    except ValidationError as exc:
        return htmx.render("auth/signin.html", status=422, providers=identity.enabled(),
                           labels=identity.PROVIDER_LABELS, dev_login=True, dev_users=auth_service.dev_users(),
                           next=next_url or "", expired=False, errors=exc.errors)
    except DomainError as exc:
        return _signin_error(exc.message, status=exc.status)
    return _finish_sign_in(user, next_url)


@bp.post("/logout")
def logout():
    auth_service.sign_out(request.cookies.get(COOKIE), ip=_ip())
    response = htmx.redirect_to(url_for("pages.landing"))
    response.delete_cookie(COOKIE, path="/")
    htmx.toast("You're signed out.")
    return response


@bp.post("/refresh")
def refresh():
    """Rotate the session token: the old one stops working; re-use of it revokes the family."""
    new_token = auth_service.rotate(request.cookies.get(COOKIE), ip=_ip(),
                                    user_agent=request.headers.get("User-Agent"))
    if new_token is None:
        return htmx.client_redirect(url_for("auth.signin", expired=1))
    if request.accept_mimetypes.best == "application/json":
        response = make_response({"ok": True})
    else:
        response = htmx.redirect_to(url_for("account.sessions"))
        htmx.toast("Session renewed.")
    return set_session_cookie(response, new_token)



@bp.get("/invite/<token>")
@limiter.limit(AUTH_LIMIT, key_func=lambda: request.remote_addr or "unknown")
def invite(token: str):
    """An invitation link to an adopted table: remembered for the sign-in that follows (used once,
    at that sign-in). Invalid, used or expired links answer 404 with a clear message."""
    from flask import session

    from glyphoxa_htmx.services import adoption

    invitation = adoption.from_link(token)
    session["invitation_id"] = invitation.id
    return htmx.render("auth/invite.html", tenant_name=adoption.tenant_name(invitation),
                       providers=identity.enabled(), labels=identity.PROVIDER_LABELS,
                       signed_in=g.get("actor") is not None)
