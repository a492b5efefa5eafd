"""The interface language (English and German) with Flask-Babel.

The language is the signed-in user's choice (``web.users.locale``, set on the profile page), else the
best match for the browser's ``Accept-Language``, else English. A campaign's spoken language (what
NPCs speak in Discord) is a separate setting and has nothing to do with this.

Everything user-visible is marked for translation:

- templates: ``{{ _("Save") }}``, ``{{ _("Signed in as %(name)s", name=user.name) }}``,
  ``{{ ngettext("%(num)d NPC", "%(num)d NPCs", n) }}`` (newstyle gettext: keyword arguments,
  autoescaped; a literal percent sign is written ``%%``);
- Python: ``_``/``ngettext`` at request time, ``lazy_gettext`` for module-level constants.

German lives in ``translations/de/parts/*.po`` (one file per product area, so that areas can be
translated independently); ``glyphoxa-web i18n compile`` merges them into the one compiled catalogue
``translations/de/LC_MESSAGES/messages.mo`` the app loads, and ``glyphoxa-web i18n check`` lists
strings that are marked but untranslated, or visible but not marked (tests/test_i18n.py runs both).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from flask import Flask, has_request_context, request
from flask_babel import (
    Babel,
    force_locale,
    format_date,
    format_datetime,
    format_decimal,
    format_number,
    format_time,
    format_timedelta,
    get_locale,
    gettext,
    lazy_gettext,
    ngettext,
)

__all__ = [
    "LOCALES",
    "LOCALE_NAMES",
    "_",
    "gettext",
    "lazy_gettext",
    "ngettext",
    "format_number",
    "format_decimal",
    "force_locale",
    "init_app",
    "current_locale",
]

_ = gettext

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
LOCALES = ("en", "de")
# Each language's name in itself: what the language picker shows, whatever the current language.
LOCALE_NAMES = {"en": "English", "de": "Deutsch"}
DEFAULT = "en"


def valid_locale(value: object) -> str | None:
    """A supported locale code, or None. Callers refuse anything else (no silent fallback)."""
    return value if isinstance(value, str) and value in LOCALES else None


def select_locale() -> str:
    if not has_request_context():
        return DEFAULT
    from flask_login import current_user

    user = getattr(current_user, "user", None) if current_user and current_user.is_authenticated else None
    chosen = valid_locale(getattr(user, "locale", None))
    if chosen:
        return chosen
    return request.accept_languages.best_match(LOCALES) or DEFAULT


def current_locale() -> str:
    return str(get_locale() or DEFAULT)


# -- localised formatting for templates (one place; the templates call these filters) ----------------


def _dt_filter(value: datetime | None, fmt: str = "medium") -> str:
    """Date and time, e.g. "Dec 2, 2026, 4:05 PM" / "02.12.2026, 16:05". ``fmt`` is a Babel format
    name (short/medium/long) or a CLDR skeleton-like pattern."""
    if value is None:
        return ""
    return format_datetime(value, fmt)


def _date_filter(value: date | datetime | None, fmt: str = "medium") -> str:
    if value is None:
        return ""
    return format_date(value, fmt)


def _time_filter(value: datetime | None, fmt: str = "short") -> str:
    if value is None:
        return ""
    return format_time(value, fmt)


def _month_filter(value: date | datetime | None) -> str:
    """Month and year, e.g. "December 2026" / "Dezember 2026"."""
    if value is None:
        return ""
    return format_date(value, "MMMM y")


def _number_filter(value: Any, digits: int | None = None) -> str:
    """A number with the locale's separators; ``digits`` fixes the decimals (else as many as needed)."""
    if value is None:
        return ""
    if digits is None:
        return format_number(value) if isinstance(value, int) else format_decimal(value)
    return format_decimal(value, format="#,##0." + "0" * digits if digits else "#,##0")


def _ago_filter(value: datetime | None) -> str:
    """A relative time, e.g. "3 minutes ago" / "vor 3 Minuten"."""
    if value is None:
        return ""
    now = datetime.now(value.tzinfo) if value.tzinfo else datetime.utcnow()
    return format_timedelta(value - now, add_direction=True, threshold=1.0)


def _span_filter(value: timedelta | float | int | None) -> str:
    """A duration in words, e.g. "2 hours" / "2 Stunden"."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    return format_timedelta(timedelta(seconds=seconds), threshold=1.0)


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale)
    app.jinja_env.filters.update(
        dt=_dt_filter,
        date=_date_filter,
        time=_time_filter,
        month=_month_filter,
        number=_number_filter,
        ago=_ago_filter,
        span=_span_filter,
    )
    from glyphoxa_htmx.core.js_messages import js_messages

    app.jinja_env.globals.update(current_locale=current_locale, LOCALE_NAMES=LOCALE_NAMES, js_messages=js_messages)
