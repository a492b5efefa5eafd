"""The operators' platform dashboard (super admins): system health, business figures and the
whole platform's usage. A constant number of queries per page, whatever the number of tenants;
every outside check is bounded by its own short timeout."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import text

from glyphoxa_htmx.adapters.gateway.client import month_start
from glyphoxa_htmx.core.authz import Actor, Perm, require
from glyphoxa_htmx.core.deps import gateway, secrets, settings
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.services import plans
from glyphoxa_htmx.services.sessions import LIVE_STATES, gateway_tables_ready
from glyphoxa_htmx.services.usage import METRICS, Month, add_months, chart

if TYPE_CHECKING:
    from glyphoxa_htmx.models import User

SIGNUP_DAYS = 14
REDIS_TIMEOUT = 1.0


@dataclass
class Check:
    name: str
    ok: bool
    detail: str
    latency_ms: float | None = None


def _gateway_check() -> Check:
    client = gateway()
    if client is None:
        return Check("Voice gateway", False, "not configured")
    from glyphoxa_htmx.adapters.gateway.errors import GatewayError, GatewayUnavailable

    started = time.perf_counter()
    try:
        client.get_bot_status("platform_dashboard_probe", quick=True)
        ok, detail = True, "reachable"
    except GatewayUnavailable:
        ok, detail = False, "unreachable"
    except GatewayError:
        ok, detail = True, "reachable"  # it answered (e.g. NOT_FOUND for the probe tenant)
    return Check("Voice gateway", ok, detail, round((time.perf_counter() - started) * 1000, 1))


def _redis_check() -> Check:
    url = settings().redis_url
    if not url:
        return Check("Redis", True, "not configured (in-memory rate limits)")
    import redis

    started = time.perf_counter()
    try:
        client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()
        ok, detail = True, "reachable"
    except Exception:  # noqa: BLE001 - any failure is "unreachable" on this page
        ok, detail = False, "unreachable"
    return Check("Redis", ok, detail, round((time.perf_counter() - started) * 1000, 1))


def _secrets_check() -> Check:
    backend = secrets()
    kind = type(backend).__name__.replace("Backend", "").replace("Secrets", "") or "secrets"
    started = time.perf_counter()
    problem = backend.health()
    return Check(
        f"Secrets ({kind})", problem is None, problem or "usable", round((time.perf_counter() - started) * 1000, 1)
    )


def pool_stats() -> dict[str, Any]:
    """SQLAlchemy's pool right now: connections in use, idle, and beyond the pool size."""
    pool = db.engine.pool
    stats: dict[str, Any] = {"size": None, "in_use": None, "idle": None, "overflow": None, "kind": type(pool).__name__}
    for key, attr in (("size", "size"), ("in_use", "checkedout"), ("idle", "checkedin"), ("overflow", "overflow")):
        fn = getattr(pool, attr, None)
        if callable(fn):
            try:
                stats[key] = fn()
            except Exception:  # noqa: BLE001 - a pool kind without that figure
                stats[key] = None
    if stats["overflow"] is not None and stats["overflow"] < 0:
        stats["overflow"] = 0  # QueuePool reports -size..0 before any overflow
    return stats


def health() -> dict[str, Any]:
    """Outside checks (each bounded by its own timeout) and the gateway's live figures."""
    checks = [_gateway_check(), _redis_check(), _secrets_check()]
    live = {"sessions": 0, "workers": 0, "known": False}
    if gateway_tables_ready():
        row = (
            db.session.execute(
                text(
                    "SELECT count(*) AS sessions, count(DISTINCT worker_pod) AS workers FROM public.sessions"
                    " WHERE state = ANY(:live) AND ended_at IS NULL"
                ),
                {"live": list(LIVE_STATES)},
            )
            .mappings()
            .one()
        )
        live = {"sessions": row["sessions"], "workers": row["workers"], "known": True}
    return {"checks": checks, "live": live, "pool": pool_stats()}


def business(now: datetime | None = None) -> dict[str, Any]:
    now = now or datetime.now(UTC)
    first_day = (now - timedelta(days=SIGNUP_DAYS - 1)).date()
    counts = {
        r.day: r.n
        for r in db.session.execute(
            text(
                "SELECT (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n FROM web.users"
                " WHERE created_at >= :since GROUP BY 1"
            ),
            {"since": datetime(first_day.year, first_day.month, first_day.day, tzinfo=UTC)},
        )
    }
    signups = [
        (first_day + timedelta(days=i), counts.get(first_day + timedelta(days=i), 0)) for i in range(SIGNUP_DAYS)
    ]
    tenants = (
        db.session.execute(
            text(
                "SELECT count(*) FILTER (WHERE status = 'active') AS active, count(*) FILTER (WHERE status <> 'active') AS suspended,"
                " count(*) AS total FROM web.tenants"
            )
        )
        .mappings()
        .one()
    )
    in_use = 0
    if gateway_tables_ready():
        in_use = db.session.execute(
            text("SELECT count(DISTINCT tenant_id) FROM public.sessions WHERE started_at >= :since"),
            {"since": now - timedelta(days=30)},
        ).scalar_one()
    subs = None
    if plans.billing_enabled():
        subs = [
            (plans.TIERS[r.tier].name if r.tier in plans.TIERS else r.tier, r.status, r.n)
            for r in db.session.execute(
                text(
                    "SELECT tier, status, count(*) AS n FROM web.subscriptions GROUP BY tier, status ORDER BY tier, status"
                )
            )
        ]
    return {
        "signups": signups,
        "signups_total": sum(n for _, n in signups),
        "tenants": dict(tenants),
        "tenants_in_use": in_use,
        "subscriptions": subs,
    }


def usage(end: date | None = None) -> dict[str, Any]:
    """The whole platform's usage: this month's totals and the last 12 months (one query)."""
    end = month_start(end)
    start = add_months(end, -11)
    rows = {}
    if gateway_tables_ready():
        for r in db.session.execute(
            text(
                "SELECT period, coalesce(sum(session_hours), 0) AS session_hours, coalesce(sum(llm_tokens), 0) AS llm_tokens,"
                " coalesce(sum(stt_seconds), 0) AS stt_seconds, coalesce(sum(tts_chars), 0) AS tts_chars"
                " FROM public.usage_records WHERE period BETWEEN :s AND :e GROUP BY period"
            ),
            {"s": start, "e": end},
        ).mappings():
            rows[r["period"]] = {k: r[k] for k, _ in METRICS}
    months, d = [], start
    while d <= end:
        months.append(Month(d, rows.get(d, {k: 0 for k, _ in METRICS})))
        d = add_months(d, 1)
    return {
        "months": months,
        "this_month": months[-1],
        "metrics": METRICS,
        "charts": [(key, label, chart(months, key)) for key, label in METRICS],
    }


def dashboard(actor: Actor) -> dict[str, Any]:
    require(actor, Perm.PLATFORM_OBSERVABILITY)
    return {
        "health": health(),
        "business": business(),
        "usage": usage(),
        "prometheus": bool(getattr(settings(), "prometheus_url", "")),
        "generated_at": datetime.now(UTC),
    }


# ---- One tenant, drilled down (super admins) ----------------------------------------------------

DETAIL_PAGE = 20


def _as_tenant(actor: Actor, tenant_id: str) -> Actor:
    """The operator reading one table's figures through the same tenant-scoped reads its owner uses."""
    from glyphoxa_htmx.core.authz import Role

    return Actor(user_id=actor.user_id, tenant_id=tenant_id, role=Role.SUPER_ADMIN, name=actor.name, ip=actor.ip)


def _gateway_view(tenant_id: str) -> dict[str, Any]:
    """GetTenant and GetBotStatus, both quick reads; what went wrong when they can't answer."""
    from glyphoxa_htmx.adapters.gateway.errors import GatewayError
    from glyphoxa_htmx.adapters.gateway.errors import NotFound as GatewayNotFound

    client = gateway()
    if client is None:
        return {"available": False, "note": "No voice gateway is connected to this server."}
    try:
        info = client.get_tenant(tenant_id, quick=True)
    except GatewayNotFound:
        return {"available": False, "note": "The voice service doesn't know this table."}
    except GatewayError as exc:
        return {"available": False, "note": exc.message}
    try:
        bot = client.get_bot_status(tenant_id, quick=True)
        bot_state, bot_error = bot.state, bot.error
    except GatewayError as exc:
        bot_state, bot_error = "unknown", exc.message
    return {
        "available": True,
        "note": "",
        "license_tier": info.license_tier,
        "guild_ids": list(info.guild_ids or []),
        "campaign_id": info.campaign_id,
        "quota": info.monthly_session_hours,
        "bot_state": bot_state,
        "bot_error": bot_error,
    }


def _members(tenant_id: str, q: str, after: str | None) -> tuple[list[User], str | None]:
    from sqlalchemy import select

    from glyphoxa_htmx.core.parse import like_pattern
    from glyphoxa_htmx.models import User

    stmt = select(User).where(User.tenant_id == tenant_id).order_by(User.id).limit(DETAIL_PAGE + 1)
    if q:
        p = like_pattern(q)
        stmt = stmt.where(User.name.ilike(p) | User.email.ilike(p))
    if after:
        stmt = stmt.where(User.id > after)
    rows = list(db.session.execute(stmt).scalars())
    return rows[:DETAIL_PAGE], (rows[DETAIL_PAGE - 1].id if len(rows) > DETAIL_PAGE else None)


def _sessions(tenant_id: str, after: str | None, errors_only: bool) -> tuple[list[dict[str, Any]], str | None]:
    """The table's sessions, newest first (keyset on started_at, id); the cursor is 'iso~id'."""
    if not gateway_tables_ready():
        return [], None
    params: dict[str, object] = {"t": tenant_id, "n": DETAIL_PAGE + 1}
    where = "tenant_id = :t"
    if errors_only:
        where += " AND coalesce(error, '') <> ''"
    if after and "~" in after:
        ts, _, sid = after.rpartition("~")
        try:
            params["ats"], params["aid"] = datetime.fromisoformat(ts), sid
            where += " AND (started_at, id) < (:ats, :aid)"
        except ValueError:
            pass
    rows = (
        db.session.execute(
            text(
                f"SELECT id, campaign_id, guild_id, state, error, worker_pod, started_at, ended_at FROM public.sessions"
                f" WHERE {where} ORDER BY started_at DESC, id DESC LIMIT :n"
            ),
            params,
        )
        .mappings()
        .all()
    )
    page_rows = [dict(r) for r in rows[:DETAIL_PAGE]]
    cursor = None
    if len(rows) > DETAIL_PAGE:
        last = rows[DETAIL_PAGE - 1]
        cursor = f"{last['started_at'].isoformat()}~{last['id']}"
    return page_rows, cursor


def tenant_detail(
    actor: Actor,
    tenant_id: str,
    *,
    q: str = "",
    members_after: str | None = None,
    sessions_after: str | None = None,
    errors_only: bool = False,
) -> dict[str, Any]:
    """Everything an operator needs about one table: a constant number of queries."""
    from glyphoxa_htmx.services import audit_log, tenants
    from glyphoxa_htmx.services.sessions import month_usage

    require(actor, Perm.MANAGE_ALL_TENANTS)
    tenant = tenants.get(actor, tenant_id)  # 404 for an unknown table
    scoped = _as_tenant(actor, tenant.id)
    members, members_next = _members(tenant.id, q, members_after)
    sessions_rows, sessions_next = _sessions(tenant.id, sessions_after, errors_only)
    campaigns = (
        db.session.execute(
            text(
                "SELECT id, name, origin, archived_at FROM web.campaigns WHERE tenant_id = :t ORDER BY name, id LIMIT 50"
            ),
            {"t": tenant.id},
        )
        .mappings()
        .all()
    )
    session_counts = {"total": 0, "errors": 0}
    if gateway_tables_ready():
        session_counts = dict(
            db.session.execute(
                text(
                    "SELECT count(*) AS total, count(*) FILTER (WHERE coalesce(error, '') <> '') AS errors"
                    " FROM public.sessions WHERE tenant_id = :t"
                ),
                {"t": tenant.id},
            )
            .mappings()
            .one()
        )
    return {
        "tenant": tenant,
        "usage": month_usage(scoped),
        "tier": plans.current(tenant.id),
        "members": members,
        "members_next": members_next,
        "q": q,
        "sessions": sessions_rows,
        "sessions_next": sessions_next,
        "errors_only": errors_only,
        "session_counts": session_counts,
        "campaigns": campaigns,
        "audit": audit_log.recent_for_tenant(actor, tenant.id),
        "gateway": _gateway_view(tenant.id),
    }
