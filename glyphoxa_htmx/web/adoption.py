"""Operator pages for adopting an existing installation's tenants (super admins only): the
gateway tenants not yet managed here, and the adopt form. Kept apart from ``admin.py``."""

from __future__ import annotations

from flask import Blueprint, request, url_for
from flask_login import current_user, login_required

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.authz import Perm, require
from glyphoxa_htmx.core.deps import settings
from glyphoxa_htmx.core.errors import Unavailable, ValidationError
from glyphoxa_htmx.core.i18n import _
from glyphoxa_htmx.core.ratelimits import admin_limit
from glyphoxa_htmx.services import adoption

bp = Blueprint("adoption", __name__, url_prefix="/admin/tenants")
admin_limit(bp)  # operator pages: the admin class (core/ratelimits.py)


@bp.before_request
@login_required
def _only_admins():
    require(current_user, Perm.MANAGE_ALL_TENANTS)


@bp.get("/unmanaged")
def unmanaged():
    """Gateway tenants without a web row, "not yet managed here" (loaded into the tenants page)."""
    try:
        rows, note = adoption.unmanaged(current_user), ""
    except Unavailable as exc:
        rows, note = [], exc.message
    return htmx.render("admin/unmanaged.html", "unmanaged", rows=rows, note=note)


def _form(tenant_id: str, data: dict, errors: dict | None = None, status: int = 200, adopted=None):
    return htmx.render(
        "admin/adopt.html",
        "adopt",
        status=status,
        tenant_id=tenant_id,
        data=data,
        errors=errors or {},
        adopted=adopted,
        link_url=_link_url(adopted),
        max_days=adoption.MAX_EXPIRY_DAYS,
    )


def _link_url(adopted) -> str:
    if adopted is None or not adopted.link_token:
        return ""
    path = url_for("auth.invite", token=adopted.link_token)
    base = settings().public_url.rstrip("/") if settings().public_url else request.host_url.rstrip("/")
    return base + path


@bp.get("/<tenant_id>/adopt")
def adopt_form(tenant_id: str):
    adoption._gateway_tenant(tenant_id)  # 404 for a tenant the gateway doesn't have
    return _form(
        tenant_id,
        {"name": tenant_id, "owner_discord_id": "", "link": False, "expires_days": adoption.DEFAULT_EXPIRY_DAYS},
    )


@bp.post("/<tenant_id>/adopt")
def adopt(tenant_id: str):
    f = request.form
    data = {
        "name": f.get("name", ""),
        "owner_discord_id": f.get("owner_discord_id", ""),
        "link": f.get("link") == "1",
        "expires_days": f.get("expires_days", ""),
    }
    try:
        adopted = adoption.adopt(current_user, tenant_id, data, ip=request.remote_addr)
    except ValidationError as exc:
        return _form(tenant_id, data, exc.errors, 422)
    htmx.toast(_("%(table)s is now managed here.", table=adopted.tenant.id))
    return _form(tenant_id, data, adopted=adopted)
