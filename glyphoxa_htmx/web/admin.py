"""Operator pages (super admins only): every tenant, every user."""

from __future__ import annotations

from flask import Blueprint, request, url_for
from flask_login import current_user, login_required

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.authz import Perm, require
from glyphoxa_htmx.core.errors import NotFound, ValidationError
from glyphoxa_htmx.core.i18n import _, format_decimal, ngettext
from glyphoxa_htmx.core.ratelimits import admin_limit
from glyphoxa_htmx.services import platform, tenants, users

bp = Blueprint("admin", __name__, url_prefix="/admin")
admin_limit(bp)  # every operator page: the admin class (core/ratelimits.py)


@bp.before_request
@login_required
def _only_admins():
    require(current_user, Perm.MANAGE_ALL_TENANTS)


@bp.get("/")
def index():
    return htmx.render("admin/index.html", "live", **platform.dashboard(current_user))


@bp.get("/tenants")
def tenant_list():
    q = request.args.get("q", "").strip()
    rows, next_after = tenants.list_all(current_user, q=q, after=request.args.get("after"))
    return htmx.render("admin/tenants.html", "results", rows=rows, q=q, next_after=next_after)


def _detail(tenant_id: str, *, status: int = 200, tier_errors=None, tier_form=None):
    """The drill-down, or one of its blocks for htmx (a list, or the tier form): only what that
    block renders is read."""
    target = htmx.hx_target() if htmx.wants_block() else None
    block = target if target in (*platform.LISTS, "tier") else None
    try:
        data = platform.tenant_detail(
            current_user, tenant_id, args=platform.detail_args(request.args), only=block if block else None
        )
    except NotFound:
        # Not managed here: a tenant the voice gateway has can be adopted (services/adoption.py).
        gateway_only = platform.gateway_only(current_user, tenant_id)
        if gateway_only is None:
            raise
        return htmx.render("admin/tenant_gateway_only.html", status=200, tenant_id=tenant_id, gateway=gateway_only)

    def list_url(**changes) -> str:
        """This page with some lists' arguments changed (None drops one): pagers and filters."""
        merged = {**data["args"], **changes}
        return url_for("admin.tenant_detail", tenant_id=tenant_id, **{k: v for k, v in merged.items() if v})

    return htmx.render(
        "admin/tenant.html",
        block,
        status=status,
        tier_errors=tier_errors or {},
        tier_form=tier_form or {},
        list_url=list_url,
        **data,
    )


@bp.get("/tenants/<tenant_id>")
def tenant_detail(tenant_id: str):
    return _detail(tenant_id)


@bp.post("/tenants/<tenant_id>/tier")
def tenant_tier(tenant_id: str):
    tenants.get(current_user, tenant_id)  # 404 for an unknown tenant before anything else
    form = {"license_tier": request.form.get("license_tier", ""), "hours": request.form.get("hours", "")}
    try:
        result = tenants.change_tier(current_user, tenant_id, form["license_tier"], form["hours"])
    except ValidationError as exc:
        return _detail(tenant_id, status=422, tier_errors=exc.errors, tier_form=form)
    if result["hours"]:
        htmx.toast(
            _(
                "%(table)s is now %(tier)s, %(hours)s hours a month.",
                table=tenant_id,
                tier=result["license_tier"],
                hours=format_decimal(result["hours"]),
            )
        )
    else:
        htmx.toast(_("%(table)s is now %(tier)s, unlimited hours.", table=tenant_id, tier=result["license_tier"]))
    return htmx.redirect_to(url_for("admin.tenant_detail", tenant_id=tenant_id))


@bp.post("/tenants/<tenant_id>/revoke-sign-ins")
def tenant_revoke_sign_ins(tenant_id: str):
    tenant = tenants.get(current_user, tenant_id)
    back = url_for("admin.tenant_detail", tenant_id=tenant.id)
    if not htmx.confirmed():
        return htmx.confirm_page(
            _("Sign everyone at %(table)s out?", table=tenant.name or tenant.id),
            detail=_(
                "Every sign-in of this table's people ends now, on every device (yours stays). "
                "They can sign in again at once; to keep them out, suspend the table."
            ),
            submit_label=_("Sign everyone out"),
            cancel_url=back,
        )
    ended = tenants.revoke_sign_ins(current_user, tenant.id)
    htmx.toast(
        ngettext(
            "Ended %(num)d sign-in at %(table)s.",
            "Ended %(num)d sign-ins at %(table)s.",
            ended,
            table=tenant.name or tenant.id,
        )
    )
    return htmx.redirect_to(back)


@bp.post("/tenants/<tenant_id>/status")
def tenant_status(tenant_id: str):
    current = tenants.get(current_user, tenant_id)  # 404 for an unknown tenant before asking anything
    if not htmx.confirmed():
        suspend = request.form.get("status") == "suspended"
        name = current.name or tenant_id
        return htmx.confirm_page(
            _("Suspend %(table)s?", table=name) if suspend else _("Reinstate %(table)s?", table=name),
            detail=_("Everyone at that table is affected on their next request."),
            submit_label=_("Suspend") if suspend else _("Reinstate"),
            cancel_url=url_for("admin.tenant_list"),
        )
    tenant = tenants.set_status(current_user, tenant_id, request.form.get("status", ""))
    name = tenant.name or tenant.id
    if tenant.status == "suspended":
        htmx.toast(_("%(name)s is now suspended.", name=name))
    else:
        htmx.toast(_("%(name)s is now active again.", name=name))
    return htmx.redirect_to(url_for("admin.tenant_list"))


@bp.get("/users")
def user_list():
    q = request.args.get("q", "").strip()
    rows, next_after = users.list_all(current_user, q=q, after=request.args.get("after"))
    return htmx.render("admin/users.html", "results", rows=rows, q=q, next_after=next_after)


@bp.post("/users/<user_id>/status")
def user_status(user_id: str):
    users.get_any(current_user, user_id)
    if not htmx.confirmed():
        suspend = request.form.get("status") == "suspended"
        return htmx.confirm_page(
            _("Suspend this user?") if suspend else _("Reinstate this user?"),
            submit_label=_("Suspend") if suspend else _("Reinstate"),
            cancel_url=url_for("admin.user_list"),
        )
    user = users.set_status(current_user, user_id, request.form.get("status", ""))
    if user.status == "suspended":
        htmx.toast(_("%(name)s is now suspended.", name=user.name))
    else:
        htmx.toast(_("%(name)s is now active again.", name=user.name))
    return htmx.redirect_to(url_for("admin.user_list"))


# ---- Discord servers: which table one belongs to, and reassigning it (issue 8) ---------------


def _guild_page(*, status: int = 200, errors=None, form=None):
    form = dict(form or {})
    query = form.get("guild_id", request.args.get("guild_id", "")).strip()
    found, lookup_errors = None, {}
    try:
        found = tenants.guild_lookup(current_user, query)
    except ValidationError as exc:
        lookup_errors = exc.errors
    return htmx.render(
        "admin/guilds.html",
        "guild_result",
        status=status,
        found=found,
        q=query,
        errors={**lookup_errors, **(errors or {})},
        form=form,
    )


@bp.get("/guilds")
def guild_lookup():
    return _guild_page()


@bp.post("/guilds/<guild_id>/assign")
def guild_assign(guild_id: str):
    target = request.form.get("tenant_id", "").strip()
    form = {"guild_id": guild_id, "tenant_id": target}
    if not htmx.confirmed():
        return htmx.confirm_page(
            _("Give Discord server %(server)s to %(table)s?", server=guild_id, table=target or "?"),
            detail=_("Every other table loses it; their sessions there can no longer start."),
            submit_label=_("Reassign"),
            cancel_url=url_for("admin.guild_lookup", guild_id=guild_id),
        )
    try:
        result = tenants.reassign_guild(current_user, guild_id, target)
    except ValidationError as exc:
        return _guild_page(status=422, errors=exc.errors, form=form)
    if result["still_listed"]:
        htmx.toast(
            _(
                "Server %(server)s now belongs to %(table)s. The voice service still lists it for %(others)s "
                "(it can't empty a table's last server), but sessions there are refused.",
                server=result["guild_id"],
                table=result["tenant_id"],
                others=", ".join(result["still_listed"]),
            )
        )
    else:
        htmx.toast(
            _("Server %(server)s now belongs to %(table)s.", server=result["guild_id"], table=result["tenant_id"])
        )
    return htmx.redirect_to(url_for("admin.guild_lookup", guild_id=result["guild_id"]))
