"""Table settings: name, Discord connection; links to people and sign-in sessions."""

from __future__ import annotations

from flask import Blueprint, request, url_for
from flask_login import current_user, login_required

from glyphoxa_htmx.adapters import identity
from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.authz import Perm, require
from glyphoxa_htmx.core.errors import Unavailable, ValidationError
from glyphoxa_htmx.core.i18n import _, ngettext
from glyphoxa_htmx.services import sessions as sessions_service
from glyphoxa_htmx.services import tenant_lifecycle, tenants

bp = Blueprint("settings", __name__, url_prefix="/settings")


def _page(
    block: str | None = None, *, status: int = 200, name_errors=None, discord_errors=None, form=None, delete_errors=None
):
    tenant = tenants.get(current_user)
    discord = tenants.discord_connection(current_user)
    names = sessions_service.guild_names(getattr(current_user.user, "discord_guilds", None))
    own = [gd for gd in (current_user.user.discord_guilds or []) if isinstance(gd, dict) and gd.get("id")]
    own_ids = {str(gd["id"]) for gd in own}
    form = dict(form or {})
    # The form posts the whole list (UpdateTenant replaces it): saved servers that aren't among
    # the user's own Discord servers must be in the text box, or saving would drop them.
    form.setdefault("checked", [gid for gid in discord["guild_ids"] if gid in own_ids])
    form.setdefault("guild_ids_text", "\n".join(gid for gid in discord["guild_ids"] if gid not in own_ids))
    # Re-consent: a fresh Discord sign-in re-reads which servers this person manages.
    reconsent_url = (
        url_for("auth.oauth_start", provider="discord", next=url_for("settings.index"))
        if "discord" in identity.enabled()
        else None
    )
    return htmx.render(
        "settings/index.html",
        block,
        status=status,
        tenant=tenant,
        discord=discord,
        guild_names=names,
        own_guilds=own,
        name_errors=name_errors or {},
        discord_errors=discord_errors or {},
        form=form,
        reconsent_url=reconsent_url,
        delete_errors=delete_errors or {},
    )


@bp.get("")
@login_required
def index():
    require(current_user, Perm.VIEW_SESSIONS)
    return _page()


@bp.post("/name")
@login_required
def rename():
    try:
        tenant = tenants.rename(current_user, request.form.get("name", ""))
    except ValidationError as exc:
        return _page("name_form", status=422, name_errors=exc.errors, form=request.form)
    htmx.toast(_("Your table is now called %(name)s.", name=tenant.name))
    return htmx.redirect_to(url_for("settings.index"))


@bp.post("/discord")
@login_required
def discord():
    ids = request.form.getlist("guild_id") + request.form.get("guild_ids_text", "").replace(",", "\n").splitlines()
    try:
        saved = tenants.update_discord(current_user, ids, request.form.get("bot_token"))
    except ValidationError as exc:
        return _page(
            "discord_form",
            status=422,
            discord_errors=exc.errors,
            form={
                "guild_ids_text": request.form.get("guild_ids_text", ""),
                "checked": request.form.getlist("guild_id"),
            },
        )
    htmx.toast(
        ngettext(
            "Discord connection saved (%(num)d server).", "Discord connection saved (%(num)d servers).", len(saved)
        )
    )
    if htmx.wants_block():
        return _page("discord_form")
    return htmx.redirect_to(url_for("settings.index"))


@bp.post("/delete")
@login_required
def delete_table():
    """Danger zone: delete the table (typed confirmation; the gateway first, then our rows)."""
    try:
        tenant_lifecycle.delete_tenant(current_user, request.form.get("confirm_name", ""), ip=request.remote_addr)
    except ValidationError as exc:
        return _page("danger_form", status=422, delete_errors=exc.errors)
    except Unavailable as exc:
        return _page("danger_form", status=503, delete_errors={"": exc.message})
    # Every member's sign-ins ended with the table, this one too.
    return htmx.client_redirect(url_for("pages.landing", deleted=1))


@bp.get("/export")
@login_required
def export_table():
    """Danger zone: download everything of the table before deleting it (a zip)."""
    from flask import send_file

    data = tenant_lifecycle.export_zip(current_user)
    return send_file(
        data, mimetype="application/zip", as_attachment=True, download_name=f"glyphoxa-{current_user.tenant_id}.zip"
    )
