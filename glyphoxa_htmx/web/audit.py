"""The audit log viewer: a table's owner reads their table's log (/audit), a super admin every
table's (/admin/audit). Filters, keyset pages, before/after as a diff, streamed CSV export."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, request, stream_with_context
from flask_login import current_user, login_required

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.core.ratelimits import admin_limit
from glyphoxa_htmx.services import audit_log

bp = Blueprint("audit", __name__)


def _page(everywhere: bool):
    try:
        filters = audit_log.parse_filters(request.args)
    except ValidationError as exc:
        audit_log.scope(current_user, everywhere=everywhere)  # the permission before the form
        return htmx.render(
            "audit/index.html",
            "results",
            status=422,
            entries=[],
            next_after=None,
            errors=exc.errors,
            form=request.args,
            everywhere=everywhere,
            args={},
        )
    entries, next_after = audit_log.page(current_user, filters, after=request.args.get("after"), everywhere=everywhere)
    return htmx.render(
        "audit/index.html",
        "results",
        entries=entries,
        next_after=next_after,
        errors={},
        form=request.args,
        everywhere=everywhere,
        args=filters.query_args(),
    )


def _export(everywhere: bool):
    try:
        filters = audit_log.parse_filters(request.args)
    except ValidationError:
        return _page(everywhere)
    lines = audit_log.export_csv(current_user, filters, everywhere=everywhere)
    scope = "all" if everywhere else current_user.tenant_id
    name = f"glyphoxa-audit-{scope}-{datetime.now(UTC):%Y%m%d-%H%M}.csv"
    return Response(
        stream_with_context(lines),
        mimetype="text/csv",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


@bp.get("/audit")
@login_required
def index():
    return _page(everywhere=False)


@bp.get("/audit/export")
@login_required
def export():
    return _export(everywhere=False)


@bp.get("/admin/audit")
@admin_limit
@login_required
def admin_index():
    return _page(everywhere=True)


@bp.get("/admin/audit/export")
@admin_limit
@login_required
def admin_export():
    return _export(everywhere=True)
