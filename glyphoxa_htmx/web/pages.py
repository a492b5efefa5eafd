"""Landing page and dashboard."""

from __future__ import annotations

from flask import Blueprint, redirect, url_for
from flask_login import current_user, login_required

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.services import dashboard as dashboard_service

bp = Blueprint("pages", __name__)


@bp.get("/")
def landing():
    if current_user.is_authenticated:
        return redirect(url_for("pages.dashboard"), 303)
    return htmx.render("pages/landing.html")


@bp.get("/favicon.ico")
def favicon():
    """Browsers ask for /favicon.ico regardless of the <link rel=icon>."""
    return redirect(url_for("static", filename="favicon.svg"), 301)


@bp.get("/dashboard")
@login_required
def dashboard():
    data = dashboard_service.overview(current_user)
    return htmx.render("pages/dashboard.html", "content", **data)
