"""Your account: profile and sign-in sessions (each can be revoked)."""

from __future__ import annotations

from flask import Blueprint, url_for
from flask_login import current_user, login_required

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.i18n import _
from glyphoxa_htmx.services import auth as auth_service

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.get("/sessions")
@login_required
def sessions():
    rows = auth_service.list_sessions(current_user)
    return htmx.render(
        "account/sessions.html", "session_list", sessions=rows, current_family=current_user.login_session.family_id
    )


@bp.post("/sessions/<session_id>/revoke")
@login_required
def revoke(session_id: str):
    auth_service.own_session(current_user, session_id)  # 404 before anything else for someone else's
    if not htmx.confirmed():
        return htmx.confirm_page(
            _("Sign out this session?"),
            detail=_("That browser will have to sign in again."),
            submit_label=_("Sign out"),
            cancel_url=url_for("account.sessions"),
        )
    auth_service.revoke_session(current_user, session_id)
    if session_id == current_user.login_session.id:
        return htmx.client_redirect(url_for("auth.signin"))
    htmx.toast(_("Session signed out."))
    if htmx.wants_block():
        return sessions()
    return htmx.redirect_to(url_for("account.sessions"))
