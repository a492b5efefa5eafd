"""Usage: this month vs quota, the last 12 months, per-campaign hours and the CSV export, all
read from the gateway's ``public.usage_records`` and ``public.sessions`` (tenant-scoped; a
constant number of queries per page)."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from glyphoxa_htmx.adapters.gateway.client import month_start
from glyphoxa_htmx.core import dbconn
from glyphoxa_htmx.core.authz import Actor, Perm, require
from glyphoxa_htmx.core.dbconn import sql_text
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.core.i18n import _, date_text, lazy_gettext
from glyphoxa_htmx.services import plans
from glyphoxa_htmx.services.sessions import gateway_tables_ready, month_usage

METRICS = (
    ("session_hours", lazy_gettext("Session hours")),
    ("llm_tokens", lazy_gettext("LLM tokens")),
    ("stt_seconds", lazy_gettext("Speech-to-text seconds")),
    ("tts_chars", lazy_gettext("Text-to-speech characters")),
)
MAX_EXPORT_MONTHS = 120
WARN_AT = Decimal("0.8")


def add_months(d: date, n: int) -> date:
    total = d.year * 12 + (d.month - 1) + n
    return date(total // 12, total % 12 + 1, 1)


def parse_month(raw: str | None, field: str) -> date | None:
    raw = (raw or "").strip()
    if not raw:
        return None
    try:
        year, month = raw.split("-")[:2]
        return date(int(year), int(month), 1)
    except (ValueError, TypeError):
        raise ValidationError({field: _("Use a month like 2026-03.")}) from None


@dataclass
class Month:
    period: date
    values: dict[str, Decimal | int]


def history(actor: Actor, *, months: int = 12, end: date | None = None) -> list[Month]:
    """The last ``months`` months (oldest first, zeros where nothing was recorded): one query."""
    require(actor, Perm.VIEW_USAGE)
    end = month_start(end)
    start = add_months(end, -(months - 1))
    return _months(actor, start, end)


def _months(actor: Actor, start: date, end: date) -> list[Month]:
    rows = {}
    if gateway_tables_ready():
        for r in dbconn.query(
            sql_text(
                "SELECT period, coalesce(sum(session_hours), 0) AS session_hours, coalesce(sum(llm_tokens), 0) AS llm_tokens,"
                " coalesce(sum(stt_seconds), 0) AS stt_seconds, coalesce(sum(tts_chars), 0) AS tts_chars"
                " FROM public.usage_records WHERE tenant_id = :t AND period BETWEEN :s AND :e GROUP BY period"
            ),
            {"t": actor.tenant_id, "s": start, "e": end},
        ):
            rows[r.period] = {k: r._mapping[k] for k, _ in METRICS}
    out, d = [], start
    while d <= end:
        out.append(Month(d, rows.get(d, {k: 0 for k, _ in METRICS})))
        d = add_months(d, 1)
    return out


def per_campaign(actor: Actor, period: date | None = None) -> list[dict[str, Any]]:
    """Session hours per campaign in a month, from public.sessions start/end clipped to the month
    (a live session counts up to now): one query."""
    require(actor, Perm.VIEW_USAGE)
    if not gateway_tables_ready():
        return []
    start = month_start(period)
    end = add_months(start, 1)
    rows = dbconn.query(
        sql_text(
            "SELECT s.campaign_id, c.name, count(*) AS sessions,"
            " sum(extract(epoch FROM least(coalesce(s.ended_at, now()), :e) - greatest(s.started_at, :s))) / 3600.0 AS hours"
            " FROM public.sessions s LEFT JOIN web.campaigns c ON c.id = s.campaign_id AND c.tenant_id = s.tenant_id"
            " WHERE s.tenant_id = :t AND s.started_at < :e AND coalesce(s.ended_at, now()) > :s"
            " GROUP BY s.campaign_id, c.name ORDER BY hours DESC, s.campaign_id"
        ),
        {
            "t": actor.tenant_id,
            "s": datetime(start.year, start.month, 1, tzinfo=UTC),
            "e": datetime(end.year, end.month, 1, tzinfo=UTC),
        },
    )
    return [
        {
            "campaign_id": r.campaign_id,
            "name": r.name or r.campaign_id or _("Default campaign"),
            "sessions": r.sessions,
            "hours": Decimal(str(round(float(r.hours or 0), 2))),
        }
        for r in rows
    ]


def chart(months: list[Month], key: str, *, width: int = 480, height: int = 160) -> dict[str, Any]:
    """Geometry for a server-rendered SVG bar chart (no script, no style attributes)."""
    values = [float(m.values[key] or 0) for m in months]
    top = max(values) or 1.0
    pad_bottom, pad_top = 18, 14
    slot = width / max(len(values), 1)
    bars = []
    for i, (m, v) in enumerate(zip(months, values, strict=True)):
        h = (height - pad_bottom - pad_top) * v / top
        bars.append(
            {
                "x": round(i * slot + slot * 0.15, 1),
                "y": round(height - pad_bottom - h, 1),
                "w": round(slot * 0.7, 1),
                "h": round(h, 1),
                "label": date_text(m.period, "LLL"),  # the month's short name in the page's language
                "tx": round(i * slot + slot / 2, 1),
                "value": v,
                "period": m.period,
            }
        )
    return {"width": width, "height": height, "bars": bars, "max": top, "baseline": height - pad_bottom}


def page(actor: Actor) -> dict[str, Any]:
    require(actor, Perm.VIEW_USAGE)
    months = history(actor)
    metrics = [(key, str(label)) for key, label in METRICS]  # each lazy label translated once, not per cell
    return {
        "month": month_usage(actor),
        "tier": plans.current(actor.tenant_id),
        "months": months,
        "charts": [(key, label, chart(months, key)) for key, label in metrics],
        "campaigns": per_campaign(actor),
        "metrics": metrics,
    }


def quota_warning(usage: dict[str, Any] | None) -> dict[str, Any] | None:
    """The dashboard's banner: at 80% of the month's session hours a warning, at 100% the limit."""
    if not usage or not usage.get("known") or not usage.get("quota") or usage["quota"] <= 0:
        return None
    ratio = Decimal(usage["hours"]) / Decimal(usage["quota"])
    if ratio >= 1:
        return {"level": "limit", "percent": int(ratio * 100)}
    if ratio >= WARN_AT:
        return {"level": "warn", "percent": int(ratio * 100)}
    return None


def export_range(actor: Actor, start_raw: str | None, end_raw: str | None) -> tuple[date, date]:
    require(actor, Perm.VIEW_USAGE)
    end = parse_month(end_raw, "to") or month_start(None)
    start = parse_month(start_raw, "from") or add_months(end, -11)
    if start > end:
        raise ValidationError({"from": _("The start month must not be after the end month.")})
    if (end.year - start.year) * 12 + end.month - start.month >= MAX_EXPORT_MONTHS:
        raise ValidationError({"from": _("Export at most %(max)s months at a time.", max=MAX_EXPORT_MONTHS)})
    return start, end


def export_csv(actor: Actor, start: date, end: date) -> Iterator[str]:
    """CSV lines, one month per row (read in one query, written as it streams)."""
    months = _months(actor, start, end)

    def generate() -> Iterator[str]:
        buf = io.StringIO()
        writer = csv.writer(buf)
        writer.writerow(["month", *[k for k, _ in METRICS]])
        yield buf.getvalue()
        for m in months:
            buf.seek(0)
            buf.truncate()
            writer.writerow([m.period.strftime("%Y-%m"), *[m.values[k] for k, _ in METRICS]])
            yield buf.getvalue()

    return generate()
