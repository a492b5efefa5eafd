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
from typing import TYPE_CHECKING

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
