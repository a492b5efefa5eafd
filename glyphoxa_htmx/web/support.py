"""Support tickets: members file and follow them (/support), operators answer local ones
(/admin/support)."""

from __future__ import annotations

from flask import Blueprint, request, url_for
from flask_login import current_user, login_required

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.authz import Perm, require
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.core.i18n import _
from glyphoxa_htmx.core.ratelimits import admin_limit
from glyphoxa_htmx.services import support

bp = Blueprint("support", __name__)


@bp.app_template_filter("ticket_status")
def ticket_status(status: str) -> str:
    """A ticket status as people read it, in their language (the stored value is the English key)."""
    return str(support.STATUS_LABELS.get(status, status))


def _index(status: int = 200, errors=None, form=None):
    rows, nxt = support.list_for_tenant(current_user, request.args.get("after"))
    return htmx.render(
        "support/index.html",
        "new_ticket" if status == 422 else None,
        status=status,
        tickets=rows,
        next_after=nxt,
        errors=errors or {},
        form=form or {},
        categories=support.CATEGORIES,
    )


@bp.get("/support")
@login_required
def index():
    return _index()


@bp.post("/support")
@login_required
def create():
    try:
        ticket = support.create(current_user, request.form)
    except ValidationError as exc:
        return _index(422, exc.errors, request.form)
    htmx.toast(_("Your ticket was sent. We'll answer here."))
    return htmx.redirect_to(url_for("support.show", ticket_id=ticket.id))


def _show(ticket_id: str, status: int = 200, errors=None, form=None, *, admin: bool = False):
    """A ticket's page (the reply form alone on a 422): the table's view, or with ``admin`` the
    operators' (any table's ticket, with the status choices)."""
    data = support.admin_get(current_user, ticket_id) if admin else support.get(current_user, ticket_id)
    extra = {"statuses": support.STATUSES} if admin else {}
    return htmx.render(
        "support/show.html",
        "reply_form" if status == 422 else None,
        status=status,
        errors=errors or {},
        form=form or {},
        admin=admin,
        categories=support.CATEGORIES,
        **extra,
        **data,
    )


@bp.get("/support/<ticket_id>")
@login_required
def show(ticket_id: str):
    return _show(ticket_id)


@bp.post("/support/<ticket_id>/reply")
@login_required
def reply(ticket_id: str):
    try:
        support.reply(current_user, ticket_id, request.form.get("body", ""))
    except ValidationError as exc:
        return _show(ticket_id, 422, exc.errors, request.form)
    htmx.toast(_("Reply sent."))
    return htmx.redirect_to(url_for("support.show", ticket_id=ticket_id))


# ---- Operators ---------------------------------------------------------------------------------


@bp.get("/admin/support")
@admin_limit
@login_required
def admin_index():
    require(current_user, Perm.MANAGE_ALL_TENANTS)
    status = request.args.get("status", "")
    rows, nxt = support.list_all(current_user, status=status, after=request.args.get("after"))
    # Not ``status=``: that is render()'s HTTP status (a filter of "" was a 500, "open" a broken status line).
    return htmx.render(
        "support/admin_index.html", tickets=rows, next_after=nxt, status_filter=status, statuses=support.STATUSES
    )


@bp.get("/admin/support/<ticket_id>")
@admin_limit
@login_required
def admin_show(ticket_id: str):
    require(current_user, Perm.MANAGE_ALL_TENANTS)
    return _show(ticket_id, admin=True)


@bp.post("/admin/support/<ticket_id>/answer")
@admin_limit
@login_required
def admin_answer(ticket_id: str):
    require(current_user, Perm.MANAGE_ALL_TENANTS)
    try:
        support.admin_answer(current_user, ticket_id, request.form.get("body", ""), request.form.get("status", ""))
    except ValidationError as exc:
        return _show(ticket_id, 422, exc.errors, request.form, admin=True)
    htmx.toast(_("Answer saved."))
    return htmx.redirect_to(url_for("support.admin_show", ticket_id=ticket_id))
