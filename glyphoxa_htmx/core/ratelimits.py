"""The plan §7 rate-limit classes that aren't tied to one route (the README's table lists them
all). Flask-Limiter counts in Redis (``REDIS_URL``) so every process shares one budget.

* general: every route without a class of its own, per signed-in user (per IP before sign-in).
  Sized far above a DM's live-session traffic: the live page is one WebSocket (or one poll per
  second as the fallback), the stop check polls every 2 s, the admin dashboard every 15 s —
  about 100 requests a minute with three tabs open, against a default of 600.
* admin: operator pages, per operator.
* upload: file uploads (voice samples, imports), per user; applied with ``upload_limit``.

Routes with their own limit (sign-in, voice preview, provider Test, the billing webhook) keep it
instead of the general one; /healthz, /readyz and static files are exempt. Each class is read
from the settings (RATE_LIMIT_GENERAL, RATE_LIMIT_ADMIN, RATE_LIMIT_UPLOAD)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from flask import Flask, request
from flask_limiter.util import get_qualified_name
from limits import parse_many

from glyphoxa_htmx.extensions import limiter, user_or_ip

if TYPE_CHECKING:
    from glyphoxa_htmx.config import Settings


def _setting(name: str) -> Callable[[], str]:
    def read() -> str:
        from glyphoxa_htmx.core.deps import settings

        value: str = getattr(settings(), name)
        return value

    return read


general_limit_value = _setting("rate_limit_general")
admin_limit = limiter.limit(_setting("rate_limit_admin"), key_func=user_or_ip)
upload_limit = limiter.limit(_setting("rate_limit_upload"), key_func=user_or_ip)


def check(settings: Settings) -> list[str]:
    """Problems with the configured classes (empty: all parse)."""
    problems = []
    for name in ("rate_limit_general", "rate_limit_admin", "rate_limit_upload"):
        try:
            parse_many(getattr(settings, name))
        except ValueError:
            problems.append(f"{name.upper()}: {getattr(settings, name)!r} is not a limit like '600 per minute'")
    return problems


# --------------------------------------------------------------------------- the general class, fast


def init_app(app: Flask) -> None:
    """Count the general class without Flask-Limiter's per-request resolution (issue 18).

    Flask-Limiter's before-request check works out, on every request, which limits apply to the
    endpoint (decorated, blueprint, hinted, exempt, application, meta and default limits; the
    default re-parsed from its callable) before its one storage hit: ~0.3 ms of Python a request,
    a quarter of a page without a query. For an endpoint whose only limit is the general class the
    answer never changes, so it is worked out once per endpoint (by the same rules, asked of
    Flask-Limiter's own manager) and the request does just the hit, through Flask-Limiter's own
    strategy and storage and with its storage keys (``LIMITER/<user or ip>/<endpoint>/<limit>``,
    so counts carry over across a deploy and across processes running either path). Everything
    else goes to Flask-Limiter's own check, unchanged: endpoints with a class or limit of their
    own, exempt ones, hinted ones, a dead storage, and every refusal (the breached window is hit
    once more there, already over its limit, and Flask-Limiter raises its RateLimitExceeded
    with the context the 429 page reads Retry-After from). Call right after ``limiter.init_app``."""
    funcs = app.before_request_funcs.setdefault(None, [])
    slow = limiter._check_request_limit
    if slow not in funcs:  # this app has no Flask-Limiter check to replace (cannot happen after init_app)
        raise RuntimeError("ratelimits.init_app must run after limiter.init_app")
    plans: dict[str, Any] = {}

    def check_request() -> None:
        endpoint = request.endpoint
        if not endpoint or not limiter.enabled or limiter._storage_dead:
            return slow()
        plan = plans.get(endpoint)
        if plan is None:
            plan = plans[endpoint] = _plan(app, endpoint)
        if plan is _SLOW or limiter.limit_manager.has_hints(endpoint):
            return slow()
        key = user_or_ip()
        try:
            within = all(limiter.limiter.hit(item, key, endpoint) for item in plan)
        except Exception:  # noqa: BLE001 - the storage failed: Flask-Limiter's own error handling
            within = False
        return None if within else slow()  # over: Flask-Limiter refuses it, with its context

    funcs[funcs.index(slow)] = check_request


_SLOW = object()


def _plan(app: Flask, endpoint: str) -> Any:
    """The general class's parsed items (sorted as Flask-Limiter hits them) when they are the
    endpoint's only limits and are plain (per user or IP, per endpoint, cost 1); else ``_SLOW``."""
    from flask_limiter import ExemptionScope

    manager = limiter.limit_manager
    view = app.view_functions.get(endpoint)
    blueprint = endpoint.rpartition(".")[0] or None
    if (
        view is None
        or endpoint.split(".")[-1] == "static"
        or limiter._request_filters
        or limiter._key_prefix
        or limiter._meta_limits
        or manager.application_limits
        or get_qualified_name(view) in limiter._marked_for_limiting
        or (blueprint and manager.blueprint_limits(app, blueprint))
        or manager.exemption_scope(app, endpoint, blueprint) != ExemptionScope.NONE
    ):
        return _SLOW
    defaults = manager.default_limits  # evaluates the general class's setting (this app's)
    if not defaults:
        return _SLOW
    for lim in defaults:
        if (
            lim.key_func is not user_or_ip
            or lim.scope
            or lim.shared
            or lim.per_method
            or lim.methods
            or lim.exempt_when
            or lim.deduct_when
            or lim.meta_limits
            or lim.cost != 1
            or lim.on_breach
        ):
            return _SLOW
    return tuple(lim.limit for lim in sorted(defaults, key=lambda x: x.limit))
