"""Usage: this month vs quota, the last 12 months as SVG charts (with tables), CSV export."""

from __future__ import annotations

from flask import Blueprint, Response, request, stream_with_context
from flask_login import current_user, login_required

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.core.i18n import decimal_text
from glyphoxa_htmx.services import usage

bp = Blueprint("usage", __name__)


def _plain(value) -> str:
    """A table cell's number: the language's decimal sign, no grouping, no trailing zeros (3.5 / 3,5)."""
    return decimal_text(value or 0, "0.######")


def _page(errors=None, status: int = 200):
    data = usage.page(current_user)
    return htmx.render(
        "usage/index.html",
        "content",
        status=status,
        errors=errors or {},
        form={"from": request.args.get("from", ""), "to": request.args.get("to", "")},
        plain=_plain,
        **data,
    )


@bp.get("/usage")
@login_required
def index():
    return _page()


@bp.get("/usage/export")
@login_required
def export():
    try:
        start, end = usage.export_range(current_user, request.args.get("from"), request.args.get("to"))
    except ValidationError as exc:
        return _page(exc.errors, 422)
    lines = usage.export_csv(current_user, start, end)
    name = f"glyphoxa-usage-{current_user.tenant_id}-{start:%Y-%m}-{end:%Y-%m}.csv"
    return Response(
        stream_with_context(lines),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )
