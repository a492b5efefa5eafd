"""The operators' platform dashboard (super admins): system health, business figures and the
whole platform's usage. A constant number of queries per page, whatever the number of tenants;
every outside check is bounded by its own short timeout."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any, TypedDict

from sqlalchemy import Row, func, select, text

from glyphoxa_htmx.adapters.gateway.client import month_start
from glyphoxa_htmx.core import keyset
from glyphoxa_htmx.core.authz import Actor, Perm, require
from glyphoxa_htmx.core.deps import gateway, secrets, settings
from glyphoxa_htmx.core.i18n import _, format_decimal, lazy_gettext
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.services import plans
from glyphoxa_htmx.services.sessions import LIVE_STATES, gateway_tables_ready
from glyphoxa_htmx.services.usage import METRICS, Month, add_months, chart

if TYPE_CHECKING:
    from glyphoxa_htmx.adapters.prometheus import PrometheusError
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
        return Check(_("Voice gateway"), False, _("not configured"))
    from glyphoxa_htmx.adapters.gateway.errors import GatewayError, GatewayUnavailable

    started = time.perf_counter()
    try:
        client.get_bot_status("platform_dashboard_probe", quick=True)
        ok, detail = True, _("reachable")
    except GatewayUnavailable:
        ok, detail = False, _("unreachable")
    except GatewayError:
        ok, detail = True, _("reachable")  # it answered (e.g. NOT_FOUND for the probe tenant)
    return Check(_("Voice gateway"), ok, detail, round((time.perf_counter() - started) * 1000, 1))


def _redis_check() -> Check:
    url = settings().redis_url
    if not url:
        return Check("Redis", True, _("not configured (in-memory rate limits)"))
    import redis

    started = time.perf_counter()
    try:
        client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT, socket_connect_timeout=REDIS_TIMEOUT)
        try:
            client.ping()
        finally:
            client.close()
        ok, detail = True, _("reachable")
    except Exception:  # noqa: BLE001 - any failure is "unreachable" on this page
        ok, detail = False, _("unreachable")
    return Check("Redis", ok, detail, round((time.perf_counter() - started) * 1000, 1))


def _secrets_check() -> Check:
    backend = secrets()
    kind = type(backend).__name__.replace("Backend", "").replace("Secrets", "") or "secrets"
    started = time.perf_counter()
    problem = backend.health()
    return Check(
        _("Secrets (%(kind)s)", kind=kind),
        problem is None,
        problem or _("usable"),
        round((time.perf_counter() - started) * 1000, 1),
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


CHURN_DAYS = 30
MRR_STATUSES = ("active", "past_due")  # billed subscriptions (a trial pays nothing yet)
NEVER_STARTED = ("incomplete", "incomplete_expired")  # the first payment never went through


def monthly_cents(tier_key: str, interval: str) -> Decimal:
    """A subscription's monthly price from the plan table (annual prices spread over 12 months)."""
    tier = plans.TIERS.get(tier_key)
    if tier is None:
        return Decimal(0)
    return Decimal(tier.annual_cents) / 12 if interval == "year" else Decimal(tier.monthly_cents)


def _subscriptions(now: datetime) -> tuple[list[tuple[str, str, int]], dict[str, Any]]:
    """Subscriptions by tier and status, MRR and churn: one query over web.subscriptions.

    MRR: the monthly price (plan table) of every active or past-due subscription. Churn: paid
    subscriptions canceled in the last CHURN_DAYS days / paid subscriptions active at the start of
    that window (created before it and not ended before it)."""
    since = now - timedelta(days=CHURN_DAYS)
    rows = db.session.execute(
        text(
            "SELECT tier, interval, status, count(*) AS n,"
            " count(*) FILTER (WHERE status = 'canceled' AND canceled_at >= :since) AS churned,"
            " count(*) FILTER (WHERE created_at < :since AND (canceled_at IS NULL OR canceled_at >= :since)"
            "   AND status <> ALL(:never)) AS at_start"
            " FROM web.subscriptions GROUP BY tier, interval, status ORDER BY tier, status"
        ),
        {"since": since, "never": list(NEVER_STARTED)},
    ).all()
    by_tier: dict[tuple[str, str], int] = {}
    mrr = Decimal(0)
    churned = at_start = 0
    for r in rows:
        name = plans.TIERS[r.tier].name if r.tier in plans.TIERS else r.tier
        by_tier[(name, r.status)] = by_tier.get((name, r.status), 0) + r.n
        if r.status in MRR_STATUSES:
            mrr += r.n * monthly_cents(r.tier, r.interval)
        if r.tier in plans.TIERS and plans.TIERS[r.tier].paid:
            churned += r.churned
            at_start += r.at_start
    money = {
        "mrr": (mrr / 100).quantize(Decimal("0.01")),
        "churned": churned,
        "at_start": at_start,
        "churn": (Decimal(churned) / at_start * 100).quantize(Decimal("0.1")) if at_start else None,
        "days": CHURN_DAYS,
    }
    return [(tier, status, n) for (tier, status), n in by_tier.items()], money


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
    subs = money = None
    if plans.billing_enabled():
        subs, money = _subscriptions(now)
    return {
        "signups": signups,
        "signups_total": sum(n for _, n in signups),
        "tenants": dict(tenants),
        "tenants_in_use": in_use,
        "subscriptions": subs,
        "money": money,
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


# ---- Provider latency and errors (the voice gateway's metrics, read from Prometheus) ----------
#
# The gateway exports these series (its Prometheus recorder, namespace glyphoxa_voice): one latency
# histogram per pipeline stage, labelled by provider, and call/error counters by stage and provider.
# The names are constants (README, "Provider latency"); PROMETHEUS_URL only says where to ask.
LATENCY_HISTOGRAMS = (
    ("stt", "glyphoxa_voice_stt_request_seconds"),
    ("llm", "glyphoxa_voice_llm_round_seconds"),
    ("tts", "glyphoxa_voice_tts_ttfb_seconds"),
)
PROVIDER_CALLS = "glyphoxa_voice_provider_calls_total"
PROVIDER_ERRORS = "glyphoxa_voice_provider_errors_total"
STAGE_NAMES = {
    "stt": lazy_gettext("Speech-to-text"),
    "llm": lazy_gettext("Language model"),
    "tts": lazy_gettext("Text-to-speech (first audio)"),
}
RATE_WINDOW = "5m"
PROMETHEUS_BUDGET = 2.5  # seconds for all of the dashboard's queries together
PROMETHEUS_CACHE_SECONDS = 10.0  # one answer serves every open dashboard for this long (per process)


class _ProviderAnswer(TypedDict):
    """Prometheus's answer as cached: in no language (the problem is still the exception)."""

    configured: bool
    error: PrometheusError | None
    rows: list[dict[str, Any]]  # stage, provider, p50, p99, errors


class ProviderHealth(TypedDict):
    """What the dashboard shows: the answer worded in the reader's language."""

    configured: bool
    error: str | None
    rows: list[dict[str, Any]]


_prom_cache: dict[str, tuple[float, _ProviderAnswer]] = {}


def latency_query(quantile: float) -> str:
    """One query for a quantile of every stage: each stage's histogram_quantile, labelled with
    ``stage`` (label_replace) and joined with ``or``."""
    return " or ".join(
        f"label_replace(histogram_quantile({quantile}, sum by (le, provider) (rate({metric}_bucket[{RATE_WINDOW}]))),"
        f' "stage", "{stage}", "", "")'
        for stage, metric in LATENCY_HISTOGRAMS
    )


def error_rate_query() -> str:
    return (
        f"sum by (stage, provider) (rate({PROVIDER_ERRORS}[{RATE_WINDOW}]))"
        f" / sum by (stage, provider) (rate({PROVIDER_CALLS}[{RATE_WINDOW}]))"
    )


def provider_health(now: float | None = None) -> ProviderHealth:
    """p50/p99 latency and error rate per (stage, provider) over the last 5 minutes, from
    PROMETHEUS_URL. ``configured`` False: no URL; ``error``: what went wrong (the page shows it
    instead of the figures, never a 500). Bounded by PROMETHEUS_BUDGET; the answer is cached
    briefly, in no language (worded per request by ``_worded``)."""
    import math

    from glyphoxa_htmx.adapters.prometheus import PrometheusError, query

    base = (settings().prometheus_url or "").strip()
    if not base:
        return {"configured": False, "rows": [], "error": None}
    now = time.monotonic() if now is None else now
    hit = _prom_cache.get(base)
    if hit is not None and hit[0] > now:
        return _worded(hit[1])
    deadline = time.monotonic() + PROMETHEUS_BUDGET
    rows: dict[tuple[str, str], dict[str, float]] = {}
    error: PrometheusError | None = None
    try:
        for column, promql in (
            ("p50", latency_query(0.5)),
            ("p99", latency_query(0.99)),
            ("errors", error_rate_query()),
        ):
            left = deadline - time.monotonic()
            if left <= 0.05:
                raise PrometheusError("timeout", seconds=PROMETHEUS_BUDGET)
            for labels, value in query(base, promql, timeout=left):
                key = (labels.get("stage", ""), labels.get("provider", ""))
                rows.setdefault(key, {"p50": math.nan, "p99": math.nan, "errors": math.nan})[column] = value
    except PrometheusError as exc:
        error = exc
    result: _ProviderAnswer = {
        "configured": True,
        "error": error,
        "rows": []
        if error
        else [
            {"stage": stage, "provider": provider or "—", **values}
            for (stage, provider), values in sorted(rows.items())
        ],
    }
    _prom_cache[base] = (now + PROMETHEUS_CACHE_SECONDS, result)
    return _worded(result)


def _prometheus_problem(exc: PrometheusError) -> str:
    p = exc.params
    if exc.code == "timeout":
        return _("Prometheus unreachable: no answer within %(seconds)s s", seconds=format_decimal(p["seconds"]))
    if exc.code == "connect":
        return _("Prometheus unreachable: connection failed")
    if exc.code == "request":
        return _("Prometheus unreachable: the request failed")
    if exc.code == "not_prometheus":
        return _("Prometheus answered with an error: HTTP %(status)s without a Prometheus answer", status=p["status"])
    if exc.code == "not_vector":
        return _("Prometheus answered with an error: expected a vector, got %(got)s", got=p["got"])
    if p.get("detail"):
        return _("Prometheus answered with an error: %(kind)s: %(detail)s", kind=p["kind"], detail=p["detail"])
    return _("Prometheus answered with an error: %(kind)s", kind=p.get("kind", ""))


def _worded(result: _ProviderAnswer) -> ProviderHealth:
    """The cached answer in the reader's language: stage names and the problem, if any."""
    return {
        "configured": result["configured"],
        "error": _prometheus_problem(result["error"]) if result["error"] else None,
        "rows": [{**r, "stage": str(STAGE_NAMES.get(r["stage"], r["stage"] or "—"))} for r in result["rows"]],
    }


def dashboard(actor: Actor) -> dict[str, Any]:
    require(actor, Perm.PLATFORM_OBSERVABILITY)
    return {
        "health": health(),
        "business": business(),
        "usage": usage(),
        "providers": provider_health(),
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
        return {"available": False, "note": _("No voice gateway is connected to this server.")}
    try:
        info = client.get_tenant(tenant_id, quick=True)
    except GatewayNotFound:
        return {"available": False, "note": _("The voice service doesn't know this table.")}
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


# Every list on the drill-down: keyset pages (core/keyset.py) and a search, each by its own
# query arguments (``<list>_q``, ``<list>_after``; members keep the plain ``q``).
LISTS = ("members", "campaigns", "sessions", "audit")
SEARCH_ARG = {"members": "q", "campaigns": "campaigns_q", "sessions": "sessions_q", "audit": "audit_q"}
ARGS = (*SEARCH_ARG.values(), *(f"{name}_after" for name in LISTS), "errors")


def gateway_only(actor: Actor, tenant_id: str) -> dict[str, Any] | None:
    """A tenant the voice gateway has but this site doesn't manage yet (adoptable): the gateway's
    view of it, or None when the gateway doesn't know it either (or can't say)."""
    require(actor, Perm.MANAGE_ALL_TENANTS)
    from glyphoxa_htmx.adapters.gateway.tenant_id import is_valid_tenant_id

    if not is_valid_tenant_id(tenant_id):
        return None
    view = _gateway_view(tenant_id)
    return view if view["available"] else None


def detail_args(source: Mapping[str, str]) -> dict[str, str]:
    """The drill-down's query arguments that are set (searches trimmed), from ``request.args``."""
    out = {}
    for name in ARGS:
        value = (source.get(name) or "").strip()[:200]
        if value:
            out[name] = value
    return out


def _members(tenant_id: str, q: str, after: str | None) -> tuple[list[User], str | None]:
    from glyphoxa_htmx.core.parse import like_pattern
    from glyphoxa_htmx.models import User

    stmt = select(User).where(User.tenant_id == tenant_id)
    if q:
        p = like_pattern(q)
        stmt = stmt.where(User.name.ilike(p) | User.email.ilike(p))
    rows, cursor = keyset.page(stmt, ((User.id, str),), after, DETAIL_PAGE, key_of=lambda r: (r[0].id,))
    return [r[0] for r in rows], cursor


# The drill-down's campaign and session rows (the columns its lists show).
CampaignRow = tuple[str, str, str, datetime | None]  # id, name, origin, archived_at
# id, campaign_id, guild_id, state, error, worker_pod, started_at, ended_at
SessionRow = tuple[str, str, str, str, str | None, str | None, datetime, datetime | None]


def _campaigns(tenant_id: str, q: str, after: str | None) -> tuple[Sequence[Row[CampaignRow]], str | None]:
    from glyphoxa_htmx.core.parse import like_pattern
    from glyphoxa_htmx.models import Campaign

    stmt = select(Campaign.id, Campaign.name, Campaign.origin, Campaign.archived_at).where(
        Campaign.tenant_id == tenant_id
    )
    if q:
        p = like_pattern(q)
        stmt = stmt.where(Campaign.name.ilike(p) | Campaign.id.ilike(p))
    return keyset.page(
        stmt, ((Campaign.name, str), (Campaign.id, str)), after, DETAIL_PAGE, key_of=lambda r: (r.name, r.id)
    )


def _sessions(
    tenant_id: str, q: str, after: str | None, errors_only: bool
) -> tuple[Sequence[Row[SessionRow]], str | None]:
    """The table's sessions, newest first (keyset on started_at, id)."""
    if not gateway_tables_ready():
        return [], None
    from glyphoxa_htmx.core.parse import like_pattern
    from glyphoxa_htmx.models import GatewaySession as S

    stmt = select(S.id, S.campaign_id, S.guild_id, S.state, S.error, S.worker_pod, S.started_at, S.ended_at).where(
        S.tenant_id == tenant_id
    )
    if errors_only:
        stmt = stmt.where(func.coalesce(S.error, "") != "")
    if q:
        p = like_pattern(q)
        stmt = stmt.where(S.id.ilike(p) | S.campaign_id.ilike(p) | S.error.ilike(p) | S.worker_pod.ilike(p))
    return keyset.page(
        stmt,
        ((S.started_at, datetime.fromisoformat), (S.id, str)),
        after,
        DETAIL_PAGE,
        key_of=lambda r: (r.started_at, r.id),
        descending=True,
    )


def tenant_detail(
    actor: Actor, tenant_id: str, *, args: Mapping[str, str] | None = None, only: str | None = None
) -> dict[str, Any]:
    """Everything an operator needs about one table: a constant number of queries. ``args`` are
    the lists' searches and cursors (``detail_args``); ``only`` names one list (an htmx block),
    and then only that list is read."""
    from glyphoxa_htmx.services import audit_log, tenants
    from glyphoxa_htmx.services.sessions import month_usage

    require(actor, Perm.MANAGE_ALL_TENANTS)
    args = dict(args or {})
    tenant = tenants.get(actor, tenant_id)  # 404 for an unknown table
    wanted = {only} if only in LISTS or only == "tier" else set(LISTS)
    out: dict[str, Any] = {"tenant": tenant, "args": args, "errors_only": args.get("errors") == "1"}
    for name in LISTS:
        out[f"{name}_q"] = args.get(SEARCH_ARG[name], "")
    out["q"] = out["members_q"]
    if "members" in wanted:
        out["members"], out["members_next"] = _members(tenant.id, out["members_q"], args.get("members_after"))
    if "campaigns" in wanted:
        out["campaigns"], out["campaigns_next"] = _campaigns(tenant.id, out["campaigns_q"], args.get("campaigns_after"))
    if "sessions" in wanted:
        out["sessions"], out["sessions_next"] = _sessions(
            tenant.id, out["sessions_q"], args.get("sessions_after"), out["errors_only"]
        )
    if "audit" in wanted:
        out["audit"], out["audit_next"] = audit_log.for_tenant(
            actor, tenant.id, q=out["audit_q"], after=args.get("audit_after"), limit=DETAIL_PAGE
        )
    if only in LISTS:
        return out
    out.update(billing=plans.billing_enabled(), license_tiers=tenants.LICENSE_TIERS, gateway=_gateway_view(tenant.id))
    if only == "tier":
        return out
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
    out.update(
        usage=month_usage(_as_tenant(actor, tenant.id)),
        tier=plans.current(tenant.id),
        session_counts=session_counts,
    )
    return out
