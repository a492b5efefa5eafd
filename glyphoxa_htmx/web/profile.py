"""``/me``: your profile, linked sign-in providers, and deleting your account (issue 12)."""

from __future__ import annotations

from flask import Blueprint, abort, request, session, url_for
from flask_login import current_user, login_required

from glyphoxa_htmx.adapters import identity
from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.core.i18n import _
from glyphoxa_htmx.services import invitations, profile

bp = Blueprint("profile", __name__, url_prefix="/me")


def _render(status=200, errors=None, block=None):
    user = profile.me(current_user)
    offers = [(inv, invitations.tenant_name(inv.tenant_id)) for inv in invitations.for_me(user)]
    return htmx.render(
        "account/me.html",
        block,
        status=status,
        me=user,
        linked=profile.linked(user),
        offers=offers,
        leave_refusal=invitations.leave_refusal(user) if offers else None,
        providers=identity.enabled(),
        labels=identity.PROVIDER_LABELS,
        errors=errors or {},
    )


@bp.get("")
@login_required
def index():
    return _render()


@bp.post("/name")
@login_required
def rename():
    try:
        user = profile.rename(current_user, request.form.get("name", ""))
    except ValidationError as exc:
        return _render(422, exc.errors)
    htmx.toast(_("You're now %(name)s.", name=user.name))
    return htmx.redirect_to(url_for("profile.index"))


@bp.post("/locale")
@login_required
def set_locale():
    try:
        profile.set_locale(current_user, request.form.get("locale", ""))
    except ValidationError as exc:
        return _render(422, exc.errors)
    htmx.toast(_("Language saved."))
    # A full page load: every part of the page (navigation included) changes language.
    return htmx.client_redirect(url_for("profile.index"))


@bp.post("/link/<provider>")
@login_required
def link(provider: str):
    """Start a sign-in with another provider whose identity is then attached to this account."""
    if provider not in identity.enabled():
        abort(404)
    session["link_user"] = current_user.user_id
    return htmx.client_redirect(url_for("auth.oauth_start", provider=provider, next=url_for("profile.index")))


@bp.post("/unlink/<provider>")
@login_required
def unlink(provider: str):
    try:
        profile.unlink(current_user, provider)
    except ValidationError as exc:
        return _render(422, exc.errors)
    htmx.toast(_("%(provider)s unlinked.", provider=identity.PROVIDER_LABELS.get(provider, provider)))
    return htmx.redirect_to(url_for("profile.index"))


@bp.post("/delete")
@login_required
def delete():
    try:
        profile.delete_account(current_user, request.form.get("confirm", ""))
    except ValidationError as exc:
        return _render(422, exc.errors)
    return htmx.client_redirect(url_for("pages.landing"))


@bp.post("/invitations/<invitation_id>/accept")
@login_required
def accept_invitation(invitation_id: str):
    """Leave my table for one that invited my Discord account (one table per person)."""
    try:
        user = invitations.accept_mine(current_user, invitation_id, ip=request.remote_addr)
    except ValidationError as exc:
        return _render(422, exc.errors)
    htmx.toast(_("Welcome to %(table)s.", table=invitations.tenant_name(user.tenant_id)))
    return htmx.redirect_to(url_for("pages.dashboard"))
