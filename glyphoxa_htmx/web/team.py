"""Your table: who is in it and with which role."""

from __future__ import annotations

from flask import Blueprint, request, url_for
from flask_login import current_user, login_required

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.authz import assignable_roles, role_phrase
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.services import users

bp = Blueprint("team", __name__, url_prefix="/team")


def _render(errors=None, status=200, error_user=None):
    return htmx.render("team/index.html", "members", status=status, members=users.list_members(current_user),
                       roles=assignable_roles(current_user), errors=errors or {}, error_user=error_user)


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
    htmx.toast(f"{user.name} is now {role_phrase(user.role)}.")
    if htmx.wants_block():
        return _render()
    return htmx.redirect_to(url_for("team.index"))
