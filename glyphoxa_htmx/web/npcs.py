"""NPC editor: a campaign's cast (search, drag and keyboard ordering), create, edit, duplicate,
delete, the voice picker and voice previews. Every URL is a full page, and a named block for htmx."""

from __future__ import annotations

from itertools import zip_longest
from typing import Any

from flask import Blueprint, current_app, make_response, request, url_for
from flask_login import current_user, login_required
from jinja2.filters import do_truncate
from markupsafe import Markup

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.authz import Perm, require
from glyphoxa_htmx.core.errors import Conflict, ValidationError
from glyphoxa_htmx.core.i18n import _, markup_gettext, number_text
from glyphoxa_htmx.core.markup import escape, field_error, id_urls, list_editor
from glyphoxa_htmx.core.parse import int_arg
from glyphoxa_htmx.extensions import limiter, user_or_ip
from glyphoxa_htmx.services import campaigns, npcs, voice
from glyphoxa_htmx.web.campaigns import done

bp = Blueprint("npcs", __name__)


def form_data() -> dict:
    """The editor's fields as the service takes them. Lists arrive one item per line (the no-JS
    textarea; the list widget writes the same textarea); attributes as parallel key/value inputs,
    with hidden inputs for the JSON type each value had and the key it was loaded with."""
    f = request.form
    data = {
        "name": f.get("name", ""),
        "personality": f.get("personality", ""),
        "engine": f.get("engine", ""),
        "budget_tier": f.get("budget_tier", ""),
        "voice": {
            "provider": f.get("voice_provider", ""),
            "voice_id": f.get("voice_id", ""),
            "pitch_shift": f.get("pitch_shift", ""),
            "speed_factor": f.get("speed_factor", ""),
        },
        "gm_helper": f.get("gm_helper") == "on",
        "address_only": f.get("address_only") == "on",
        "attributes": [
            npcs.AttrRow(*row)
            for row in zip_longest(
                f.getlist("attr_key"),
                f.getlist("attr_value"),
                f.getlist("attr_type"),
                f.getlist("attr_orig"),
                fillvalue="",
            )
        ],
        "updated_at": f.get("updated_at", ""),
    }
    for field in npcs.LIST_FIELDS:
        data[field] = [line.strip() for line in f.get(field, "").splitlines() if line.strip()]
    return data


# --------------------------------------------------------------------------- the cast


def _cast(campaign_id: str, status: int = 200):
    campaign = campaigns.get(current_user, campaign_id)
    page = int_arg(request.values.get("page"), 1, minimum=1)
    cast = npcs.list_cast(current_user, campaign.id, q=request.values.get("q", ""), page=page)
    return htmx.render("npcs/index.html", "cast", status=status, campaign=campaign, cast=cast, forwarded=npcs.FORWARDED)


# --------------------------------------------------------------------------- the cast list


@bp.app_template_global()
def cast_rows(cast: Any, manage: bool, csrf: Markup, kept: Markup, mic: Markup) -> Markup:
    """The rows of a campaign's cast (npcs/_cast.html), with the owner's move, duplicate and delete
    forms when ``manage``; ``csrf``, ``kept`` (the list's filter and page as hidden fields) and
    ``mic`` are the list's, made once. The loop it replaces cost ~80 µs a row (issue 18); a cast
    can hold 25 on a page. The same HTML (``tests/test_markup.py`` renders both), except that a
    ``voice`` the gateway stored as something other than an object shows no voice badge, where the
    template failed the page."""
    row_urls = id_urls("npc_id", "npcs.edit", "npcs.move", "npcs.duplicate", "npcs.confirm_delete")
    size = number_text(cast.size)
    engines: dict[Any, str] = {}  # label per value, escaped, worked out once a list
    tiers: dict[Any, str] = {}
    t_drag, t_gm, t_engine, t_tier = (
        markup_gettext("Drag to reorder"),
        markup_gettext("GM helper"),
        markup_gettext("Engine"),
        markup_gettext("Budget tier"),
    )
    t_addressed_title, t_addressed, t_voice = (
        markup_gettext("Speaks only when addressed by name"),
        markup_gettext("Addressed only"),
        markup_gettext("Voice"),
    )
    # Per row, a translation with the row's values: the format once, the values escaped into it
    # (as Markup's % does; the translations are trusted, as a template's ``_()`` is).
    fmt = {
        "place": _("Position %(pos)s of %(size)s"),
        "tier": _("%(tier)s tier"),
        "up": _("Move %(name)s up"),
        "down": _("Move %(name)s down"),
        "delete": _('Delete<span class="visually-hidden"> %(name)s</span>'),
        "duplicate": markup_gettext("Duplicate"),
    }
    env = current_app.jinja_env
    out = []
    for m in cast.items:
        npc, position = m.npc, m.position
        npc_id = escape(npc.id)
        shown = number_text(position)
        voice = npc.voice
        voice_id = voice.get("voice_id") if isinstance(voice, dict) else None
        place = fmt["place"] % {"pos": escape(shown), "size": escape(size)}
        tier = tiers.get(npc.budget_tier)
        if tier is None:
            tier = tiers[npc.budget_tier] = fmt["tier"] % {"tier": escape(npcs.tier_label(npc.budget_tier))}
        engine = engines.get(npc.engine)
        if engine is None:
            engine = engines[npc.engine] = escape(npcs.engine_label(npc.engine))
        edit_url, move_url, duplicate_url, delete_url = row_urls(npc.id)
        out.append(
            f'  <li class="cast-item" id="npc-{npc_id}" data-id="{npc_id}">\n'
            + (f'<span class="drag-handle" title="{t_drag}" aria-hidden="true">⠿</span>' if manage else "")
            + f'    <span class="pos" title="{place}">'
            f"{escape(shown)}</span>\n"
            '    <div class="who">\n'
            f'      <h3><a href="{escape(edit_url)}">{escape(npc.name)}</a></h3>\n'
            + (
                f'<p class="muted small personality">{escape(do_truncate(env, npc.personality, 160))}</p>'
                if npc.personality
                else ""
            )
            + '      <p class="badges">\n'
            + (f'<span class="badge badge-accent">{t_gm}</span>' if npc.gm_helper else "")
            + (f'<span class="badge" title="{t_addressed_title}">{t_addressed}</span>' if npc.address_only else "")
            + f'        <span class="badge" title="{t_engine}">{engine}</span>\n'
            f'        <span class="badge" title="{t_tier}">'
            f"{tier}</span>\n"
            + (f'<span class="badge" title="{t_voice}">{mic}{escape(voice_id)}</span>' if voice_id else "")
            + "      </p>\n"
            "    </div>\n"
            + (
                _cast_actions(npc, position, cast.size, move_url, duplicate_url, delete_url, csrf, kept, fmt)
                if manage
                else ""
            )
            + "  </li>\n"
        )
    return Markup("".join(out))


def _cast_actions(
    npc: Any,
    position: int,
    size: int,
    move_url: str,
    duplicate_url: str,
    delete_url: str,
    csrf: Markup,
    kept: Markup,
    fmt: dict[str, str],
) -> str:
    move = escape(move_url)
    name = {"name": escape(npc.name)}
    delete, up, down, duplicate = fmt["delete"] % name, fmt["up"] % name, fmt["down"] % name, fmt["duplicate"]
    return (
        '    <div class="item-actions">\n'
        f'      <form method="post" action="{move}" hx-post="{move}" hx-target="#cast" class="move">\n'
        f"        {csrf}{kept}\n"
        '        <button class="btn btn-small icon-btn" type="submit" name="direction" value="up" data-move="up" '
        f'aria-label="{up}" {"disabled" if position == 1 else ""}>'
        '<span aria-hidden="true">↑</span></button>\n'
        '        <button class="btn btn-small icon-btn" type="submit" name="direction" value="down" data-move="down" '
        f'aria-label="{down}" {"disabled" if position == size else ""}>'
        '<span aria-hidden="true">↓</span></button>\n'
        "      </form>\n"
        f'      <form method="post" action="{escape(duplicate_url)}">\n'
        f'        {csrf}<button class="btn btn-small" type="submit">{duplicate}</button>\n'
        "      </form>\n"
        f'      <a class="btn btn-small btn-danger" href="{escape(delete_url)}">{delete}</a>\n'
        "    </div>\n"
    )


@bp.get("/campaigns/<campaign_id>/npcs")
@login_required
def index(campaign_id: str):
    return _cast(campaign_id)


@bp.post("/campaigns/<campaign_id>/npcs/order")
@login_required
def reorder(campaign_id: str):
    ids = [i for raw in request.form.getlist("ids") for i in raw.split(",") if i.strip()]
    npcs.reorder(current_user, campaign_id, ids)
    if htmx.wants_block():
        htmx.toast(_("New order saved."))
        return _cast(campaign_id)
    return done(_("New order saved."), url_for("campaigns.show", campaign_id=campaign_id) + "#cast")


@bp.post("/npcs/<npc_id>/move")
@login_required
def move(npc_id: str):
    npc = npcs.move(current_user, npc_id, request.form.get("direction", ""))
    if htmx.wants_block():
        return _cast(npc.campaign_id)
    return htmx.redirect_to(
        url_for(
            "campaigns.show",
            campaign_id=npc.campaign_id,
            q=request.form.get("q") or None,
            page=request.form.get("page") or None,
        )
        + f"#npc-{npc.id}"
    )


# --------------------------------------------------------------------------- editor

# One list field of the editor (knowledge scope, secret knowledge, behaviour rules, tools), as the
# form's ``list_field`` macro wrote it: with ``reach`` (below), five macro calls a field, ~0.15 ms
# of the editor's page (issue 18). Every value is escaped; the labels are translations.
_LIST_FIELD = (
    '<div class="field" x-data="listEditor" data-item-label="{item}">\n'
    '  <label for="{name}" x-bind:for="labelFor">{label} {reach}</label>\n'
    "  {editor}\n"
    '  <p class="hint">{hint}</p>\n'
    "  {error}\n"
    "</div>"
)


@bp.app_template_global()
def npc_editor_fields(forwarded: Any, data: Any, errors: Any) -> tuple[Any, Any]:
    """The editor's ``reach(field)`` (whether the field reaches the running NPC) and
    ``list_field(name, label, item, hint, rows=4)`` (``item`` names one entry in running text)."""
    yes = Markup('<span class="reach reach-yes">%s</span>') % (markup_gettext("Sent to the NPC"),)
    no = Markup('<span class="reach reach-no" title="%s">%s</span>') % (
        markup_gettext("Saved, but the voice gateway doesn't send this to the running NPC yet"),
        markup_gettext("Stored only"),
    )

    def reach(field: Any) -> Markup:
        return yes if field in forwarded else no

    def list_field(name: Any, label: Any, item: Any, hint: Any, rows: Any = 4) -> Markup:
        return Markup(
            _LIST_FIELD.format(
                item=escape(item),
                name=escape(name),
                label=escape(label),
                reach=reach(name),
                editor=list_editor(name, item, data[name], errors, rows),
                hint=escape(hint),
                error=field_error(errors, name),
            )
        )

    return reach, list_field


def _editor(campaign, npc=None, data=None, errors=None, status=200):
    readonly = not current_user.can(Perm.MANAGE_NPCS)
    return htmx.render(
        "npcs/form.html",
        "form",
        status=status,
        campaign=campaign,
        npc=npc,
        readonly=readonly,
        data=data or (npcs.to_form(npc) if npc else npcs.blank(voice.default_provider(current_user))),
        errors=errors or {},
        engines=npcs.ENGINES,
        budget_tiers=npcs.BUDGET_TIERS,
        providers=voice.providers(),
        limits=npcs.LIMITS,
        forwarded=npcs.FORWARDED,
        preview_max=voice.PREVIEW_MAX,
        attr_row=npcs.AttrRow,
        attr_kinds=npcs.ATTR_KINDS,
    )


@bp.get("/campaigns/<campaign_id>/npcs/new")
@login_required
def new(campaign_id: str):
    campaign = campaigns.get(current_user, campaign_id)  # 404 first, then the role (403)
    require(current_user, Perm.MANAGE_NPCS)
    return _editor(campaign)


@bp.post("/campaigns/<campaign_id>/npcs")
@login_required
def create(campaign_id: str):
    data = form_data()
    try:
        npc = npcs.create(current_user, campaign_id, data)
    except ValidationError as exc:
        return _editor(campaigns.get(current_user, campaign_id), data=data, errors=exc.errors, status=422)
    return done(
        _("%(name)s joined the cast.", name=npc.name),
        url_for("campaigns.show", campaign_id=campaign_id) + f"#npc-{npc.id}",
    )


@bp.get("/npcs/<npc_id>")
@login_required
def edit(npc_id: str):
    npc, campaign = npcs.view(current_user, npc_id)
    return _editor(campaign, npc)


@bp.post("/npcs/<npc_id>")
@login_required
def update(npc_id: str):
    data = form_data()
    try:
        saved = npcs.update(current_user, npc_id, data, updated_at=data["updated_at"])
    except ValidationError as exc:
        npc = npcs.get(current_user, npc_id)
        return _editor(npcs.campaign_of(current_user, npc), npc, data, exc.errors, 422)
    except Conflict as exc:
        npc = npcs.get(current_user, npc_id)
        return _editor(npcs.campaign_of(current_user, npc), npc, data, {"": exc.message, "_conflict": "1"}, 409)
    npc = saved.npc
    message = (
        _("Saved %(name)s.", name=npc.name)
        if saved.changed
        else _("Nothing changed; %(name)s was not saved again.", name=npc.name)
    )
    if htmx.wants_block():
        htmx.toast(message, "success" if saved.changed else "info")
        return _editor(npcs.campaign_of(current_user, npc), npc)
    return done(message, url_for("npcs.edit", npc_id=npc.id))


@bp.post("/npcs/<npc_id>/duplicate")
@login_required
def duplicate(npc_id: str):
    copy = npcs.duplicate(current_user, npc_id)
    return done(
        _("Created %(name)s. Change what makes this one different.", name=copy.name),
        url_for("npcs.edit", npc_id=copy.id),
    )


@bp.get("/npcs/<npc_id>/delete")
@login_required
def confirm_delete(npc_id: str):
    npc = npcs.get(current_user, npc_id)  # 404 first, then the role (403)
    require(current_user, Perm.MANAGE_NPCS)
    return htmx.render("npcs/delete.html", "confirm", npc=npc, campaign=npcs.campaign_of(current_user, npc))


@bp.post("/npcs/<npc_id>/delete")
@login_required
def delete(npc_id: str):
    npc = npcs.delete_npc(current_user, npc_id)
    return done(
        _("%(name)s left the cast.", name=npc.name), url_for("campaigns.show", campaign_id=npc.campaign_id) + "#cast"
    )


# --------------------------------------------------------------------------- voices


@bp.post("/npcs/<npc_id>/voice-preview")
@login_required
@limiter.limit("5 per minute", key_func=user_or_ip)
def voice_preview(npc_id: str):
    """Audio bytes of a short line in the NPC's voice. Without fields it uses the saved voice;
    the editor sends its current (unsaved) voice fields so the DM hears what they are editing."""
    f = request.form
    override = None
    if "voice_id" in f or "voice_provider" in f:
        override = {
            "provider": f.get("voice_provider", ""),
            "voice_id": f.get("voice_id", ""),
            "pitch_shift": f.get("pitch_shift", ""),
            "speed_factor": f.get("speed_factor", ""),
        }
    clip = voice.preview(current_user, npc_id, text=f.get("preview_text") or f.get("text"), voice=override)
    resp = make_response(clip.data)
    resp.mimetype = clip.mimetype
    resp.headers["Cache-Control"] = "private, no-store"
    resp.headers["X-Voice-Pitch"] = f"{clip.pitch_shift:g}"
    resp.headers["X-Voice-Speed"] = f"{clip.speed_factor:g}"
    resp.headers["X-Preview-Cache"] = "hit" if clip.cached else "miss"
    return resp


@bp.get("/voices")
@login_required
def voices():
    provider = (
        request.args.get("provider") or request.args.get("voice_provider") or voice.default_provider(current_user)
    )
    q = request.args.get("q", request.args.get("vq", ""))
    error = None
    found, total = [], 0
    try:
        found, total = voice.list_voices(current_user, provider, q)
    except voice.VoiceError as exc:
        error = exc.message
    return htmx.render(
        "npcs/voices.html",
        "voices",
        provider=provider,
        q=q,
        voices=found,
        total=total,
        error=error,
        providers=voice.providers(),
    )
