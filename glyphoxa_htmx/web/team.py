"""Your table: who is in it, with which role, and who is invited (issue 12)."""

from __future__ import annotations

from flask import Blueprint, request, url_for
from flask_login import current_user, login_required

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.authz import Perm, assignable_roles, can, role_phrase
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.core.i18n import _, lazy_gettext
from glyphoxa_htmx.services import adoption, invitations, users

bp = Blueprint("team", __name__, url_prefix="/team")

# A member's account state, as the badge next to their name shows it.
MEMBER_STATUSES = {"active": lazy_gettext("Active"), "suspended": lazy_gettext("Suspended")}

_BLANK = {
    "discord_id": "",
    "link": False,
    "role": "viewer",
    "expires_days": invitations.DEFAULT_EXPIRY_DAYS,
    "max_uses": 1,
}


def _render(errors=None, status=200, error_user=None, form=None, created=None, invite_errors=None):
    managing = can(current_user, Perm.MANAGE_USERS)
    return htmx.render(
        "team/index.html",
        "members",
        status=status,
        members=users.list_members(current_user),
        roles=assignable_roles(current_user),
        errors=errors or {},
        error_user=error_user,
        pending=invitations.list_pending(current_user) if managing else [],
        managing=managing,
        form=form or _BLANK,
        invite_errors=invite_errors or {},
        created=created,
        link_url=invitations.link_url(created.link_token) if created else "",
        max_days=adoption.MAX_EXPIRY_DAYS,
        max_uses=invitations.MAX_LINK_USES,
        now=adoption.now(),
        member_statuses=MEMBER_STATUSES,
    )


def _done():
    if htmx.wants_block():
        return _render()
    return htmx.redirect_to(url_for("team.index"))


@bp.get("")
@login_required
def index():
    return _render()


@bp.post("/<user_id>/role")
@login_required
def change_role(user_id: str):
    try:
        user = users.change_role(current_user, user_id, request.form.get("role", ""))
    except ValidationError as exc:
        return _render(exc.errors, 422, error_user=user_id)
    htmx.toast(_("%(name)s is now %(role)s.", name=user.name, role=role_phrase(user.role)))
    return _done()


@bp.post("/<user_id>/remove")
@login_required
def remove(user_id: str):
    try:
        user = users.remove_member(current_user, user_id)
    except ValidationError as exc:
        return _render(exc.errors, 422, error_user=user_id)
    if user.id == current_user.user_id:
        return htmx.client_redirect(url_for("pages.landing"))
    htmx.toast(_("%(name)s is no longer at this table; their sign-ins have ended.", name=user.name))
    return _done()


@bp.post("/invitations")
@login_required
def invite():
    f = request.form
    form = {
        "discord_id": f.get("discord_id", ""),
        "link": f.get("kind") == "link",
        "role": f.get("role", ""),
        "expires_days": f.get("expires_days", ""),
        "max_uses": f.get("max_uses", ""),
    }
    try:
        created = invitations.create(current_user, form)
    except ValidationError as exc:
        return _render(status=422, form=form, invite_errors=exc.errors)
    if created.link_token:
        htmx.toast(_("Invite link created: copy it now, it is shown once."))
    else:
        htmx.toast(
            _(
                "Invited %(discord_id)s: they join when they sign in with Discord "
                "(someone already at another table sees it on their profile page and may switch).",
                discord_id=created.invitation.discord_id,
            )
        )
    # The link is shown once, in this response (never stored): render rather than redirect.
    return _render(created=created)


@bp.post("/invitations/<invitation_id>/revoke")
@login_required
def revoke(invitation_id: str):
    invitations.revoke(current_user, invitation_id)
    htmx.toast(_("Invitation revoked."))
    return _done()
