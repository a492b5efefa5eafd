"""The onboarding wizard (issue 12, plan §6 step 4): name your table → first campaign → Discord
bot token and server → plan (only when billing is enabled) → first NPC. Every step is a plain
form (works without JavaScript) calling the same service as its full page; each can be skipped,
and the wizard resumes at the first step neither done nor skipped. Progress: what the table has
(a campaign, an NPC, a Discord server) plus the steps this browser finished or skipped."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, abort, request, session, url_for
from flask_login import current_user, login_required

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.authz import Perm, require
from glyphoxa_htmx.core.deps import settings
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.core.i18n import _, lazy_gettext
from glyphoxa_htmx.services import campaigns, npcs, plans, tenants
from glyphoxa_htmx.services.dashboard import _progress

bp = Blueprint("welcome", __name__, url_prefix="/welcome")

STEPS = [
    ("name", lazy_gettext("Name your table")),
    ("campaign", lazy_gettext("First campaign")),
    ("discord", lazy_gettext("Discord bot and server")),
    ("plan", lazy_gettext("Choose a plan")),
    ("npc", lazy_gettext("First NPC")),
]
_KEY = "wizard"  # the steps this browser finished or skipped


def _steps() -> list[tuple[str, str]]:
    return [s for s in STEPS if s[0] != "plan" or plans.billing_enabled()]


def _state() -> dict:
    marked = set(session.get(_KEY, []))
    have = _progress(current_user)
    done = {"campaign": have["campaign"], "npc": have["npc"]}
    status = {}
    for key, _title in _steps():
        status[key] = "done" if done.get(key) or key in marked else "todo"
    return status


def _mark(step: str) -> None:
    session[_KEY] = sorted(set(session.get(_KEY, [])) | {step})


def _next_step() -> str | None:
    status = _state()
    return next((key for key, _title in _steps() if status[key] == "todo"), None)


def add_bot_url(guild_id: str = "") -> str:
    """Discord's "add the bot to your server" link for the configured application."""
    app_id = settings().discord_client_id
    if not app_id:
        return ""
    params = {"client_id": app_id, "scope": "bot applications.commands", "permissions": "3148800"}
    if guild_id:
        params.update(guild_id=guild_id, disable_guild_select="true")
    return "https://discord.com/oauth2/authorize?" + urlencode(params)


def _render(step: str, *, status: int = 200, errors=None, form=None):
    ctx: dict[str, Any] = {
        "step": step,
        "steps": _steps(),
        "state": _state(),
        "errors": errors or {},
        "form": form or {},
    }
    if step == "name":
        ctx["tenant"] = tenants.get(current_user)
    elif step == "discord":
        ctx["guilds"] = [
            gd
            for gd in (current_user.user.discord_guilds or [])
            if isinstance(gd, dict) and gd.get("id") and gd.get("manage") is True
        ]
        ctx["add_bot_url"] = add_bot_url
        ctx["connection"] = tenants.discord_connection(current_user)
    elif step == "npc":
        ctx["campaigns"] = campaigns.choices(current_user)
    return htmx.render("welcome/step.html", status=status, **ctx)


@bp.get("")
@login_required
def index():
    require(current_user, Perm.MANAGE_TENANT)
    step = _next_step()
    if step is None:
        htmx.toast(_("Your table is set up."))
        return htmx.redirect_to(url_for("pages.dashboard"))
    return htmx.redirect_to(url_for("welcome.step", step=step))


@bp.get("/<step>")
@login_required
def step(step: str):
    require(current_user, Perm.MANAGE_TENANT)
    if step not in dict(_steps()):
        abort(404)
    return _render(step)


@bp.post("/<step>/skip")
@login_required
def skip(step: str):
    require(current_user, Perm.MANAGE_TENANT)
    if step not in dict(_steps()):
        abort(404)
    _mark(step)
    return htmx.redirect_to(url_for("welcome.index"))


@bp.post("/<step>")
@login_required
def save(step: str):
    require(current_user, Perm.MANAGE_TENANT)
    if step not in dict(_steps()):
        abort(404)
    f = request.form
    try:
        if step == "name":
            tenants.rename(current_user, f.get("name", ""))
        elif step == "campaign":
            campaigns.create(current_user, {"name": f.get("name", ""), "game_system": f.get("game_system", "")})
        elif step == "discord":
            kept = tenants.discord_connection(current_user)["guild_ids"]
            tenants.update_discord(current_user, kept + f.getlist("guild_id"), f.get("bot_token") or None)
        elif step == "npc":
            npcs.create(
                current_user,
                f.get("campaign_id", ""),
                {"name": f.get("name", ""), "personality": f.get("personality", "")},
            )
    except ValidationError as exc:
        form = {k: v for k, v in f.items() if k not in {"bot_token", "csrf_token"}}  # the token is never echoed
        return _render(step, status=422, errors=exc.errors, form=form)
    _mark(step)
    return htmx.redirect_to(url_for("welcome.index"))
