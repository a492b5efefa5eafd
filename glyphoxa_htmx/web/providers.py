"""Settings → Voice & AI providers: one card per slot; owners save providers and write-only
keys, remove keys and test them; everyone else at the table sees the status."""

from __future__ import annotations

from flask import Blueprint, request, url_for
from flask_login import current_user, login_required

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.authz import Perm, can, require
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.core.i18n import _
from glyphoxa_htmx.extensions import limiter
from glyphoxa_htmx.services import providers

bp = Blueprint("providers", __name__, url_prefix="/settings/providers")

TEST_LIMIT = "6 per minute"


def _tenant_key() -> str:
    actor = current_user if current_user.is_authenticated else None
    return f"tenant:{actor.tenant_id}" if actor else f"ip:{request.remote_addr}"


def _page(*, status: int = 200, errors: dict | None = None, form_slot: str = "", form=None):
    # The submitted values come back for the slot that failed, except the key: it is never rendered.
    form = {k: v for k, v in (form or {}).items() if k not in {"api_key", "csrf_token"}}
    return htmx.render(
        "settings/providers.html",
        "slots",
        status=status,
        slots=providers.overview(current_user),
        backend=providers.backend_status(),
        errors=errors or {},
        form_slot=form_slot,
        form=form,
    )


@bp.get("")
@login_required
def index():
    require(current_user, Perm.VIEW_SESSIONS)
    return _page()


@bp.post("")
@login_required
def save():
    slot = request.form.get("slot", "")
    try:
        row = providers.save(current_user, slot, request.form.to_dict())
    except ValidationError as exc:
        return _page(status=422, errors=exc.errors, form_slot=slot, form=request.form.to_dict())
    htmx.toast(_("%(slot)s saved.", slot=providers.SLOTS[row.slot][0]))
    return _done()


@bp.post("/<config_id>/key/remove")
@login_required
def remove_key(config_id: str):
    row = providers.get(current_user, config_id)  # 404 first, then the role (403)
    require(current_user, Perm.MANAGE_TENANT)
    if not htmx.confirmed():
        return htmx.confirm_page(
            _("Remove the saved %(slot)s key?", slot=providers.slot_phrase(row.slot)),
            detail=_("Sessions and previews that need it stop working until you add a key again."),
            submit_label=_("Remove key"),
            cancel_url=url_for("providers.index"),
        )
    providers.remove_key(current_user, config_id)
    htmx.toast(_("Key removed."))
    return _done()


@bp.post("/<config_id>/delete")
@login_required
def delete(config_id: str):
    row = providers.get(current_user, config_id)  # 404 first, then the role (403)
    require(current_user, Perm.MANAGE_TENANT)
    if not htmx.confirmed():
        return htmx.confirm_page(
            _("Forget the %(slot)s provider?", slot=providers.slot_phrase(row.slot)),
            detail=_("Its provider, model, options and key are removed."),
            submit_label=_("Forget provider"),
            cancel_url=url_for("providers.index"),
        )
    slot = providers.remove(current_user, config_id)
    htmx.toast(_("%(slot)s provider removed.", slot=providers.SLOTS[slot][0]))
    return _done()


@bp.post("/<config_id>/test")
@login_required
@limiter.limit(
    TEST_LIMIT,
    key_func=_tenant_key,
    # a refused role never reaches a provider, so it can't spend the owner's allowance
    exempt_when=lambda: not (current_user.is_authenticated and can(current_user, Perm.MANAGE_TENANT)),
)
def test(config_id: str):
    result = providers.test(current_user, config_id)
    htmx.toast(result.message, "success" if result.status == "ok" else "error")
    return _done()


def _done():
    if htmx.wants_block():
        return _page()
    return htmx.redirect_to(url_for("providers.index"))
