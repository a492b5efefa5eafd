"""Sign-in, sign-out, session rotation, and loading the acting user for every request."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from flask import Blueprint, abort, g, make_response, redirect, request, url_for
from flask_login import AnonymousUserMixin, current_user, login_required
from werkzeug.wrappers import Response

from glyphoxa_htmx.adapters import identity
from glyphoxa_htmx.core import dbconn, htmx
from glyphoxa_htmx.core.authz import Actor
from glyphoxa_htmx.core.deps import settings
from glyphoxa_htmx.core.errors import DomainError, ValidationError
from glyphoxa_htmx.core.i18n import _, lazy_gettext
from glyphoxa_htmx.extensions import limiter, login_manager
from glyphoxa_htmx.services import auth as auth_service
from glyphoxa_htmx.services import signin_cache
from glyphoxa_htmx.services.signin_cache import LoginSnapshot, UserSnapshot

if TYPE_CHECKING:
    from glyphoxa_htmx.models import LoginSession, User

log = logging.getLogger(__name__)
bp = Blueprint("auth", __name__, url_prefix="/auth")

COOKIE = "gx_session"
# The plan's limit for /auth/*: every route of this blueprint carries it (tests walk the URL map).
AUTH_LIMIT = "10 per minute"
BLOCKED_MESSAGES = {
    "table_suspended": lazy_gettext("This table is suspended — contact support."),
    "account_suspended": lazy_gettext("This account is suspended — contact support if you think that's a mistake."),
}


def _ip_key() -> str:
    return request.remote_addr or "unknown"


def _sign_in_session_key() -> str:
    """/auth/refresh counts per sign-in session (family), so one browser's renewals never share a
    budget with everyone behind the same address; without a live session, per IP."""
    row = getattr(current_user, "login_session", None)
    return f"login:{row.family_id}" if row is not None else f"ip:{_ip_key()}"


auth_limit = limiter.limit(AUTH_LIMIT, key_func=_ip_key)


def _ip() -> str | None:
    return request.remote_addr


@dataclass(frozen=True)
class SignedIn(Actor):
    """flask-login's ``current_user`` for a live sign-in: the Actor services take (it *is* one),
    plus the rows the page chrome shows (never passed to services)."""

    user: User | UserSnapshot | None = field(default=None, compare=False, repr=False)
    login_session: LoginSession | LoginSnapshot | None = field(default=None, compare=False, repr=False)

    # flask-login's user protocol. Suspension and revocation end the sign-in on the next request
    # (resolve refuses the session), so a loaded user is always active.
    is_authenticated = True
    is_active = True
    is_anonymous = False

    def get_id(self) -> str:
        return self.user_id


class Anonymous(AnonymousUserMixin):
    """Nobody signed in: can do nothing (``authz.can(current_user, ...)`` is False)."""

    def can(self, perm) -> bool:
        return False


login_manager.anonymous_user = Anonymous


@login_manager.request_loader
def _load_signed_in(req) -> SignedIn | None:
    """Resolve the cookie to the signed-in user once per request: one query (session joined with
    user) through auth_service.resolve, which owns expiry, rotation and reuse detection, or none
    when this process resolved the same cookie from the same browser a moment ago
    (services/signin_cache.py; ``user`` and ``login_session`` are then frozen snapshots)."""
    token = req.cookies.get(COOKIE)
    if not token:
        return None
    row = signin_cache.resolve(token, user_agent=request.headers.get("User-Agent"))
    if row is None:
        g.session_expired = auth_service.refusal(token)
        return None
    if row.user.tenant_id:
        dbconn.prefer_home(row.user.tenant_id)
    return auth_service.actor_for(row, _ip(), SignedIn, user=row.user, login_session=row)


CSRF_BINDING = "csrf_for"  # flask-session key: the sign-in (family) and role the CSRF token was issued under


def renew_csrf_on_identity_change() -> None:
    """A CSRF token is good only for the sign-in and privileges it was issued under: after a
    sign-in (into another session family) and any gain in privileges, the old token stops working
    and the next page renders a new one (sign-in and sign-out also drop it in their own routes).
    Runs after the sign-in is resolved and before Flask-WTF's check. A loss of privileges keeps the token
    (it can do less than before, never more), and so does a sign-in that merely expired: that
    request must reach ``login_required`` and be sent to sign-in, not be refused as a stale form."""
    from flask import session

    from glyphoxa_htmx.core.authz import MATRIX, Role

    row = getattr(current_user, "login_session", None)
    if row is None:
        return
    bound = session.get(CSRF_BINDING, "")
    current = f"{row.family_id}:{row.user.role}"
    if bound == current:
        return

    def perms(role: str) -> frozenset:
        return MATRIX.get(Role(role), frozenset()) if role in {r.value for r in Role} else frozenset()

    old_family, _sep, old_role = bound.partition(":")
    new_family, _sep, new_role = current.partition(":")
    if old_family != new_family or not perms(new_role) <= perms(old_role):
        session.pop("csrf_token", None)
    session[CSRF_BINDING] = current


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and not urlsplit(target).netloc:
        return target
    return url_for("pages.dashboard")


@login_manager.unauthorized_handler
def _unauthorized():
    """Anonymous (or expired) visitors go to sign-in (``next`` brings them back); htmx requests
    get HX-Redirect, never a sign-in page swapped into a fragment. A suspended table or account
    is said as such, not as an expired session."""
    reason = g.get("session_expired")
    blocked = reason if reason in ("table_suspended", "account_suspended") else None
    target = url_for(
        "auth.signin",
        next=request.full_path.rstrip("?") if request.method == "GET" else None,
        expired=1 if reason and not blocked else None,
        blocked=blocked,
    )
    if htmx.is_htmx():
        came_from = htmx.current_url()
        path = urlsplit(came_from).path if came_from else ""
        target = url_for("auth.signin", next=path or None, expired=None if blocked else 1, blocked=blocked)
    return htmx.client_redirect(target)


def set_session_cookie(response: Response, token: str) -> Response:
    cfg = settings()
    response.set_cookie(
        COOKIE,
        token,
        max_age=cfg.session_absolute_days * 86400,
        httponly=True,
        secure=cfg.cookie_secure,
        samesite="Lax",
        path="/",
    )
    return response


def _finish_sign_in(user, next_url: str | None = None) -> Response:
    from flask import session

    token = auth_service.start_session(user, ip=_ip(), user_agent=request.headers.get("User-Agent"))
    session.pop("csrf_token", None)  # a token from before the sign-in never works after it
    response = redirect(_safe_next(next_url), 303)
    return set_session_cookie(response, token)


@bp.get("/signin")
@auth_limit
def signin():
    if current_user.is_authenticated:
        return redirect(_safe_next(request.args.get("next")), 303)
    cfg = settings()
    users = auth_service.dev_users() if cfg.dev_login_enabled else []
    return htmx.render(
        "auth/signin.html",
        providers=identity.enabled(),
        labels=identity.PROVIDER_LABELS,
        dev_login=cfg.dev_login_enabled,
        dev_users=users,
        next=request.args.get("next", ""),
        expired=bool(request.args.get("expired")),
        blocked=BLOCKED_MESSAGES.get(request.args.get("blocked", "")),
        errors={},
    )


@bp.get("/<provider>")
@auth_limit
def oauth_start(provider: str):
    if provider not in identity.enabled():
        abort(404)
    from flask import session

    session["oauth_next"] = _safe_next(request.args.get("next"))
    session["terms_accepted"] = request.args.get("accept_terms") == "1"
    redirect_uri = url_for("auth.oauth_callback", provider=provider, _external=True)
    if settings().public_url:
        redirect_uri = settings().public_url.rstrip("/") + url_for("auth.oauth_callback", provider=provider)
    try:
        return identity.client(provider).authorize_redirect(redirect_uri)
    except identity.unreachable_errors() as exc:  # e.g. Google's discovery document can't be fetched
        return _provider_unavailable(provider, exc)


def _provider_unavailable(provider: str, exc: BaseException):
    log.warning("sign-in provider unreachable", extra={"provider": provider, "error": type(exc).__name__})
    label = identity.PROVIDER_LABELS.get(provider, provider)
    others = [identity.PROVIDER_LABELS.get(p, p) for p in identity.enabled() if p != provider]
    if others:
        message = _(
            "%(provider)s sign-in is unavailable right now. Try again in a few minutes, or sign in with %(others)s.",
            provider=label,
            others=_(" or ").join(others),
        )
    else:
        message = _("%(provider)s sign-in is unavailable right now. Try again in a few minutes.", provider=label)
    return _signin_error(message, status=503)


@bp.get("/<provider>/callback")
@auth_limit
def oauth_callback(provider: str):
    if provider not in identity.enabled():
        abort(404)
    from authlib.integrations.base_client.errors import OAuthError
    from flask import session

    if request.args.get("error"):
        return _signin_error(_("Sign-in was cancelled at the provider. Try again when you're ready."))
    try:
        token = identity.client(provider).authorize_access_token()
    except identity.unreachable_errors() as exc:
        return _provider_unavailable(provider, exc)
    except OAuthError as exc:
        # Bad or missing state (CSRF), a reused code, or a provider refusal.
        log.warning("oauth callback refused", extra={"provider": provider, "error": exc.error})
        return _signin_error(_("That sign-in link is no longer valid. Please start again."))
    try:
        ident = identity.fetch_identity(provider, token)
    except identity.unreachable_errors() as exc:
        return _provider_unavailable(provider, exc)
    except DomainError as exc:
        return _signin_error(exc.message, status=exc.status)
    try:
        link_user = session.pop("link_user", None)
        if link_user and current_user.is_authenticated and current_user.user_id == link_user:
            # /me → "Link Google": attach this identity to the signed-in account (services/profile).
            from glyphoxa_htmx.services import profile

            profile.link(current_user, ident)
            htmx.toast(_("%(provider)s linked.", provider=identity.PROVIDER_LABELS.get(provider, provider)))
            return htmx.redirect_to(session.pop("oauth_next", None) or url_for("profile.index"))
        user, _created = auth_service.sign_in(
            ident,
            ip=_ip(),
            invitation_id=session.get("invitation_id"),
            terms_accepted=bool(session.pop("terms_accepted", False)),
        )
        session.pop("invitation_id", None)
    except DomainError as exc:
        return _signin_error(exc.message, status=exc.status)
    return _finish_sign_in(user, session.pop("oauth_next", None))


def _signin_error(message: str, status: int = 400):
    cfg = settings()
    return htmx.render(
        "auth/signin.html",
        status=status,
        providers=identity.enabled(),
        labels=identity.PROVIDER_LABELS,
        dev_login=cfg.dev_login_enabled,
        dev_users=auth_service.dev_users() if cfg.dev_login_enabled else [],
        next="",
        expired=False,
        errors={"": message},
    )


@bp.post("/dev")
@auth_limit
def dev_signin():
    """Development only: enter as an existing user, or create one. 404 unless dev mode."""
    cfg = settings()
    if not cfg.dev_login_enabled:
        abort(404)
    next_url = request.form.get("next")
    user_id = request.form.get("user_id")
    try:
        if user_id:
            user = auth_service.get_user(user_id)
            if user is None:
                raise ValidationError({"user_id": _("No such user.")})
            if user.status != "active":
                raise auth_service.AccountSuspended()
        else:
            user = auth_service.create_dev_user(
                request.form.get("name", ""),
                request.form.get("role", "tenant_owner"),
                request.form.get("tenant_id") or None,
                ip=_ip(),
            )
    except ValidationError as exc:
        return htmx.render(
            "auth/signin.html",
            status=422,
            providers=identity.enabled(),
            labels=identity.PROVIDER_LABELS,
            dev_login=True,
            dev_users=auth_service.dev_users(),
            next=next_url or "",
            expired=False,
            errors=exc.errors,
        )
    except DomainError as exc:
        return _signin_error(exc.message, status=exc.status)
    return _finish_sign_in(user, next_url)


@bp.post("/logout")
@auth_limit
def logout():
    auth_service.sign_out(request.cookies.get(COOKIE), ip=_ip(), user_agent=request.headers.get("User-Agent"))
    from flask import session

    session.pop("csrf_token", None)
    session.pop(CSRF_BINDING, None)
    response = htmx.redirect_to(url_for("pages.landing"))
    response.delete_cookie(COOKIE, path="/")
    htmx.toast(_("You're signed out."))
    return response


@bp.post("/refresh")
@limiter.limit(AUTH_LIMIT, key_func=_sign_in_session_key)
def refresh():
    """Rotate the session token: the old one stops working; re-use of it revokes the family."""
    new_token = auth_service.rotate(request.cookies.get(COOKIE), ip=_ip(), user_agent=request.headers.get("User-Agent"))
    if new_token is None:
        return htmx.client_redirect(url_for("auth.signin", expired=1))
    if request.accept_mimetypes.best == "application/json":
        response = make_response({"ok": True})
    else:
        response = htmx.redirect_to(url_for("account.sessions"))
        htmx.toast(_("Session renewed."))
    if not new_token:  # already rotated by a concurrent refresh: that response carries the cookie
        return response
    return set_session_cookie(response, new_token)


@bp.get("/invite/<token>")
@limiter.limit(AUTH_LIMIT, key_func=lambda: request.remote_addr or "unknown")
def invite(token: str):
    """An invitation link to an adopted table: remembered for the sign-in that follows (used once,
    at that sign-in). Invalid, used or expired links answer 404 with a clear message."""
    from flask import session

    from glyphoxa_htmx.services import adoption, invitations

    invitation = adoption.from_link(token)
    session["invitation_id"] = invitation.id
    current = refusal = None
    if current_user.is_authenticated:
        # One table per person: say where they are now, and whether they may leave it for this one.
        me = auth_service.get_user(current_user.user_id)
        if me is not None and me.tenant_id != invitation.tenant_id:
            current = invitations.tenant_name(me.tenant_id)
            refusal = invitations.leave_refusal(me)
        elif me is not None:
            refusal = _("You're already at this table.")
    return htmx.render(
        "auth/invite.html",
        tenant_name=adoption.tenant_name(invitation),
        token=token,
        role=invitation.role,
        providers=identity.enabled(),
        labels=identity.PROVIDER_LABELS,
        signed_in=current_user.is_authenticated,
        current=current,
        refusal=refusal,
        errors={},
    )


@bp.post("/invite/<token>/accept")
@auth_limit
@login_required
def invite_accept(token: str):
    """A signed-in person leaves their table for the one the link invites them to."""
    from glyphoxa_htmx.services import adoption, invitations

    try:
        user = invitations.switch(current_user, token, ip=_ip())
    except ValidationError as exc:
        invitation = adoption.from_link(token)
        return htmx.render(
            "auth/invite.html",
            status=422,
            tenant_name=adoption.tenant_name(invitation),
            token=token,
            role=invitation.role,
            providers=identity.enabled(),
            labels=identity.PROVIDER_LABELS,
            signed_in=True,
            current=None,
            refusal=exc.errors.get("") or exc.message,
            errors=exc.errors,
        )
    htmx.toast(_("Welcome to %(table)s.", table=invitations.tenant_name(user.tenant_id)))
    return htmx.redirect_to(url_for("pages.dashboard"))
