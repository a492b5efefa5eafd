"""Campaigns: list with active search, create, view (with its cast of NPCs), edit, make active,
archive, delete. Every URL is a full page, and a named block for htmx."""

from __future__ import annotations

import nh3
from flask import Blueprint, request, url_for
from flask_login import current_user, login_required
from markdown_it import MarkdownIt
from markupsafe import Markup

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.authz import Perm, require
from glyphoxa_htmx.core.errors import Conflict, ValidationError
from glyphoxa_htmx.core.i18n import _, ngettext
from glyphoxa_htmx.core.memo import Memo
from glyphoxa_htmx.core.parse import int_arg
from glyphoxa_htmx.services import campaigns, npcs

bp = Blueprint("campaigns", __name__, url_prefix="/campaigns")

_md = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable(["table", "strikethrough"])


# Rendered descriptions kept per process, keyed by the text itself: a pure function of it (parser
# and sanitiser are fixed for the process), and a 1.7 KB description costs ~1.1 ms to parse and
# clean, more than the rest of the campaign page (issue 18). Bounded by characters held (text and
# HTML), emptied when full; a text past MEMO_TEXT_MAX (the gateway's tools may write longer ones
# than our form allows) or whose HTML is past MEMO_HTML_MAX (reference links can multiply a text
# many times over) is rendered every time.
MEMO_CHARS = 4_000_000
MEMO_TEXT_MAX = 20_000
MEMO_HTML_MAX = 60_000
_rendered: Memo[str, Markup] = Memo(MEMO_CHARS)  # sized in characters


def render_markdown(text: str) -> Markup:
    """Markdown to HTML that is safe to show: raw HTML is escaped by the parser, then sanitised."""
    if not text:
        return Markup("")
    html = _rendered.get(text)
    if html is None:
        html = Markup(nh3.clean(_md.render(text), link_rel="noopener noreferrer nofollow"))
        if len(text) <= MEMO_TEXT_MAX and len(html) <= MEMO_HTML_MAX:
            _rendered.keep(text, html, size=len(text) + len(html))
    return html


def _page() -> int:
    return int_arg(request.args.get("page"), 1, minimum=1)


def done(message: str, url: str):
    """After a change that leaves the page: a toast (shown on the next page) and 303/HX-Redirect."""
    htmx.toast(message)
    return htmx.redirect_to(url)


def form_data() -> dict:
    f = request.form
    return {
        "name": f.get("name", ""),
        "game_system": f.get("game_system", ""),
        "description": f.get("description", ""),
        "language": f.get("language", ""),
        "tone": f.get("tone", ""),
        "lines_veils": [line.strip() for line in f.get("lines_veils", "").splitlines() if line.strip()],
        "house_rules": f.get("house_rules", ""),
        "version": f.get("version", ""),
    }


# --------------------------------------------------------------------------- list


@bp.get("")
@login_required
def index():
    archived = request.args.get("archived") == "1"
    q = request.args.get("q", "")
    # The #results block shows no tab counts: a block request doesn't count; the page reads them
    # with its cards (one statement).
    counts = None
    if htmx.wants_block():
        page = campaigns.list_cards(current_user, q=q, archived=archived, page=_page())
    else:
        page, counts = campaigns.cards_and_counts(current_user, q=q, archived=archived, page=_page())
    return htmx.render("campaigns/index.html", "results", page=page, archived=archived, counts=counts)


# --------------------------------------------------------------------------- create / edit


def _form(campaign=None, data=None, errors=None, status=200):
    return htmx.render(
        "campaigns/form.html",
        "form",
        status=status,
        campaign=campaign,
        data=data or (campaigns.to_form(campaign) if campaign else campaigns.blank()),
        errors=errors or {},
        game_systems=campaigns.GAME_SYSTEMS,
        limits=campaigns.LIMITS,
    )


@bp.get("/new")
@login_required
def new():
    require(current_user, Perm.MANAGE_CAMPAIGNS)
    return _form()


@bp.post("")
@login_required
def create():
    data = form_data()
    try:
        campaign = campaigns.create(current_user, data)
    except ValidationError as exc:
        return _form(data=data, errors=exc.errors, status=422)
    return done(
        _("Campaign “%(name)s” created. Now give it a cast of NPCs.", name=campaign.name),
        url_for("campaigns.show", campaign_id=campaign.id),
    )


@bp.get("/<campaign_id>/edit")
@login_required
def edit(campaign_id: str):
    campaign = campaigns.get(current_user, campaign_id)  # 404 first, then the role (403)
    require(current_user, Perm.MANAGE_CAMPAIGNS)
    return _form(campaign)


@bp.post("/<campaign_id>")
@login_required
def update(campaign_id: str):
    data = form_data()
    try:
        campaign = campaigns.update(current_user, campaign_id, data, version=data["version"])
    except ValidationError as exc:
        return _form(campaigns.get(current_user, campaign_id), data, exc.errors, 422)
    except Conflict as exc:
        return _form(campaigns.get(current_user, campaign_id), data, {"": exc.message, "_conflict": "1"}, 409)
    return done(_("Saved “%(name)s”.", name=campaign.name), url_for("campaigns.show", campaign_id=campaign.id))


# --------------------------------------------------------------------------- view


def _show(campaign_id: str, status: int = 200, block: str = "campaign_head"):
    card, cast = npcs.card_and_cast(current_user, campaign_id, q=request.args.get("q", ""), page=_page())
    return htmx.render(
        "campaigns/show.html",
        block,
        status=status,
        card=card,
        campaign=card.campaign,
        cast=cast,
        description_html=render_markdown(card.campaign.description),
        forwarded=npcs.FORWARDED,
    )


@bp.get("/<campaign_id>")
@login_required
def show(campaign_id: str):
    return _show(campaign_id)


def _after_head_change(campaign_id: str, message: str):
    if htmx.wants_block():
        htmx.toast(message)
        return _show(campaign_id)
    return done(message, url_for("campaigns.show", campaign_id=campaign_id))


@bp.post("/<campaign_id>/activate")
@login_required
def activate(campaign_id: str):
    campaign = campaigns.make_active(current_user, campaign_id)
    return _after_head_change(
        campaign.id,
        _(
            "“%(name)s” is now the active campaign: sessions started from Discord will use its NPCs.",
            name=campaign.name,
        ),
    )


@bp.post("/<campaign_id>/archive")
@login_required
def archive(campaign_id: str):
    campaign = campaigns.set_archived(current_user, campaign_id, True)
    return _after_head_change(campaign.id, _("“%(name)s” is archived. Its NPCs are kept.", name=campaign.name))


@bp.post("/<campaign_id>/unarchive")
@login_required
def unarchive(campaign_id: str):
    campaign = campaigns.set_archived(current_user, campaign_id, False)
    return _after_head_change(campaign.id, _("“%(name)s” is back among your campaigns.", name=campaign.name))


# --------------------------------------------------------------------------- delete


def _confirm(campaign_id: str, errors=None, status=200, typed=""):
    card = campaigns.card(current_user, campaign_id)  # 404 first, then the role (403)
    require(current_user, Perm.MANAGE_CAMPAIGNS)
    return htmx.render(
        "campaigns/delete.html",
        "confirm",
        status=status,
        card=card,
        campaign=card.campaign,
        errors=errors or {},
        typed=typed,
    )


@bp.get("/<campaign_id>/delete")
@login_required
def confirm_delete(campaign_id: str):
    return _confirm(campaign_id)


@bp.post("/<campaign_id>/delete")
@login_required
def delete(campaign_id: str):
    typed = request.form.get("confirm_name", "")
    try:
        summary = campaigns.delete(current_user, campaign_id, typed)
    except ValidationError as exc:
        return _confirm(campaign_id, exc.errors, 422, typed)
    n = summary["npcs_deleted"]
    message = ngettext(
        "Deleted “%(name)s” and its %(num)s NPC.", "Deleted “%(name)s” and its %(num)s NPCs.", n, name=summary["name"]
    )
    return done(message, url_for("campaigns.index"))
