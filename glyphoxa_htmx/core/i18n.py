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

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar, cast

import flask_babel
from babel import Locale
from babel.dates import (
    DateTimeFormat,
    get_date_format,
    get_datetime_format,
    get_time_format,
    parse_pattern,
)
from babel.dates import format_date as babel_format_date
from babel.dates import format_datetime as babel_format_datetime
from babel.support import NullTranslations
from flask import Flask, has_request_context, request
from flask.globals import _cv_app
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
    get_timezone,
)
from flask_babel.speaklater import LazyString
from jinja2 import nodes, pass_eval_context
from jinja2.nodes import EvalContext
from jinja2.visitor import NodeTransformer
from markupsafe import Markup
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from glyphoxa_htmx.core.markup import escape
from glyphoxa_htmx.core.memo import Memo

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
    "date_text",
    "markup_gettext",
    "decimal_text",
    "when_html",
    "format_context",
]

_NULL = NullTranslations()


_T = TypeVar("_T")


def _babel_namespace() -> Any:
    """Flask-Babel's per-request namespace (``g._flask_babel``: the locale and time zone in force),
    read from the app context directly; None outside one or before Flask-Babel made it."""
    app_ctx = _cv_app.get(None)
    return app_ctx.g.__dict__.get("_flask_babel") if app_ctx is not None else None


def _per_request(slot: str, compute: Callable[[], _T], *, zoned: bool = True) -> _T:
    """``compute()`` once per request and per language (and, when ``zoned``, time zone) in force.

    The value is kept on Flask-Babel's own per-request namespace with the locale and time zone
    objects it was computed under, so ``force_locale`` (e-mails in the recipient's language) still
    switches it; outside an app context it is computed every time. A value that doesn't depend on
    the time zone (the catalogue) passes ``zoned=False``: the zone is looked up only once a date is
    shown, after which a zoned value would be computed again."""
    ns = _babel_namespace()
    if ns is not None:
        cached = ns.__dict__.get(slot)
        if (
            cached is not None
            and cached[0] is not None
            and cached[0] is ns.__dict__.get("babel_locale")
            and (not zoned or cached[1] is ns.__dict__.get("babel_tzinfo"))
        ):
            hit: _T = cached[2]
            return hit
    value = compute()
    ns = _babel_namespace()  # (computing may have made it)
    if ns is not None:
        setattr(ns, slot, (ns.__dict__.get("babel_locale"), ns.__dict__.get("babel_tzinfo"), value))
    return value


def translations() -> NullTranslations:
    """The current language's catalogue, looked up once per request: Flask-Babel's own
    ``gettext`` finds it again on every call (three context lookups, ~20 µs), and a page has a
    few hundred strings."""
    if _cv_app.get(None) is None:
        return _NULL
    found: NullTranslations = _per_request("gx_translations", _catalogue, zoned=False)
    return found


def _catalogue() -> NullTranslations:
    """The catalogue of the language in force, kept per Flask-Babel domain for each supported
    language (issue 18): ``flask_babel.get_translations`` cost ~40 µs a request (the domain and
    context found again through ``g``, an AttributeError on the way, the locale turned into its
    code to key Flask-Babel's own cache). A locale that isn't one of ``_LOCALE_OBJECTS`` (one a
    caller forced by another spelling) is Flask-Babel's to look up, as before."""
    app_ctx = _cv_app.get()
    ns = _babel_namespace()
    domain = ns.__dict__.get("babel_domain") if ns is not None else None
    if domain is None:
        domain = flask_babel.get_babel(app_ctx.app).instance.domain_instance
    locale = get_locale()
    if locale is None or _CODES.get(id(locale), (None,))[0] is not locale:
        looked_up: NullTranslations = flask_babel.get_translations()
        return looked_up
    kept: dict[int, NullTranslations] = domain.__dict__.setdefault("gx_catalogues", {})
    found = kept.get(id(locale))
    if found is None:
        found = kept[id(locale)] = domain.get_translations()
    return found


def _fill(text: str, variables: dict[str, Any]) -> str:
    """Jinja's newstyle gettext formatting: placeholders filled (escaped when ``text`` is Markup),
    and "%%" a percent sign."""
    return text % variables if (variables or "%" in text) else text


def gettext(string: str, **variables: Any) -> str:
    text = translations().ugettext(string)
    return text % variables if variables else text


def lazy_gettext(string: str, **variables: Any) -> LazyString:
    """A module-level constant translated when it is shown, as Flask-Babel's ``lazy_gettext``
    (the same LazyString), but through ``gettext`` above: Flask-Babel's own looks the catalogue
    up again each time (~20 µs; an NPC's engine and tier badges made it ~10 % of a campaign page)."""
    return LazyString(gettext, string, **variables)


def markup_gettext(string: str, **variables: Any) -> Markup:
    """``_()`` as an autoescaped template has it, for HTML built in Python: the translation as
    Markup with its variables escaped into it ("%%" a percent sign)."""
    text = Markup(translations().ugettext(string))
    return text % variables if (variables or "%" in text) else text  # (Markup's % escapes and stays Markup)


def ngettext(singular: str, plural: str, num: int, /, **variables: Any) -> str:
    # Positional-only count: a caller may pass its own formatted ``num=`` (e.g. "1.234").
    variables.setdefault("num", num)
    return translations().ungettext(singular, plural, num) % variables


def pgettext(context: str, string: str, **variables: Any) -> str:
    """A string whose meaning depends on where it stands ("Link" the verb vs "Link" the noun)."""
    text: str = translations().upgettext(context, string)
    return text % variables if variables else text


_ = gettext

TRANSLATIONS = Path(__file__).resolve().parent.parent / "translations"
LOCALES = ("en", "de")
# Each language's name in itself: what the language picker shows, whatever the current language.
LOCALE_NAMES = {"en": "English", "de": "Deutsch"}
DEFAULT = "en"


def valid_locale(value: object) -> str | None:
    """A supported locale code, or None. Callers refuse anything else (no silent fallback)."""
    return value if isinstance(value, str) and value in LOCALES else None


# The supported languages as Babel locales, made once per process (issue 18): Flask-Babel parses
# what the selector returns on every request (~5 µs; a Locale passes through as it is), and
# ``str(locale)`` builds the code anew each time (~2 µs, asked ~5 times a page). ``_CODES`` is
# keyed by identity: only these very objects are known by their code without asking Babel.
_LOCALE_OBJECTS: dict[str, Locale] = {code: Locale.parse(code) for code in LOCALES}
_CODES: dict[int, tuple[Locale, str]] = {id(obj): (obj, code) for code, obj in _LOCALE_OBJECTS.items()}


def select_locale() -> Locale:
    """Flask-Babel's locale selector: the signed-in user's language, else the browser's best match,
    else English (one of ``_LOCALE_OBJECTS``)."""
    if not has_request_context():
        return _LOCALE_OBJECTS[DEFAULT]
    app_ctx = _cv_app.get()
    # Flask-Login's user of this request, read where ``current_user`` keeps it (each ``current_user``
    # attribute went through two proxies); loaded through ``current_user`` if it isn't yet.
    signed_in = app_ctx.g.__dict__.get("_login_user")
    if signed_in is None and getattr(app_ctx.app, "login_manager", None) is not None:
        from flask_login import current_user

        signed_in = current_user._get_current_object()
    user = getattr(signed_in, "user", None) if getattr(signed_in, "is_authenticated", False) else None
    chosen = valid_locale(getattr(user, "locale", None))
    return _LOCALE_OBJECTS[chosen or browser_locale(request.headers.get("Accept-Language", ""))]


# What a browser's Accept-Language header picks, per header text. Parsing one and matching it cost
# ~24 µs (werkzeug's LanguageAccept: a regex over the header, a quality sort, a match per locale)
# on every request of a user who hasn't chosen a language (issue 18): most users, and every page
# before sign-in. Browsers send a handful of distinct headers; a header is at most ~8 KB (gunicorn's
# limit on a header field), and the memo counts characters, so it holds ~1 MB at most.
MAX_ACCEPT_CHARS = 1_000_000
_browser_choices: Memo[str, str] = Memo(MAX_ACCEPT_CHARS)


def browser_locale(header: str) -> str:
    """The supported language a browser's ``Accept-Language`` asks for (werkzeug's best match over
    ``LOCALES``), else ``DEFAULT``."""
    found = _browser_choices.get(header)
    if found is None:
        found = parse_accept_header(header, LanguageAccept).best_match(LOCALES) or DEFAULT
        _browser_choices.keep(header, found, size=len(header) + 1)
    return found


def _code(locale: Any) -> str:
    known = _CODES.get(id(locale))
    return known[1] if known is not None and known[0] is locale else str(locale)


def current_locale() -> str:
    """The language in force (Flask-Babel's, ``force_locale``'s inside one), read from Flask-Babel's
    per-request namespace when it is there (a page asks ~5 times; each ``get_locale`` went through
    ``g``'s proxy three times)."""
    ns = _babel_namespace()
    locale = ns.__dict__.get("babel_locale") if ns is not None else None
    return _code(locale or get_locale() or DEFAULT)


# -- localised formatting for templates (one place; the templates call these filters) ----------------


# Formatting a date with Babel costs 30-50 µs (a list page shows a few dozen): each result is kept
# per process, keyed by everything it depends on (value, format, language, time zone). Dates are
# the same text for every user with that language, so nothing of one table reaches another.
# Bounded (emptied when full): 1,000 tenants browsing their sessions, campaigns and transcripts
# show ~40,000 distinct dates; at 20,000 the cache emptied over and over and nearly every list
# date was formatted again. ~0.3 KB an entry.
MAX_FORMATTED = 50_000
_formatted: Memo[tuple[Any, ...], str] = Memo(MAX_FORMATTED)


def _locale_and_zone() -> tuple[Any, Any, tuple[str, str]]:
    """Flask-Babel's locale and time zone objects in force and the two as text, looked up once
    per request (and again under ``force_locale``)."""

    def look_up() -> tuple[Any, Any, tuple[str, str]]:
        locale, zone = get_locale(), get_timezone()
        return locale, zone, (_code(locale), str(zone))

    return _per_request("gx_locale_and_zone", look_up)


def format_context() -> tuple[str, str]:
    """The current language and time zone as text: what a formatted date or a translated piece of
    HTML depends on besides its value (keys of what is kept)."""
    return _locale_and_zone()[2]


def _memo(kind: str, value: Any, fmt: str, format_fn: Callable[[Any, str], str]) -> str:
    key = (kind, type(value), value, fmt, format_context())
    text = _formatted.get(key)
    if text is None:
        text = _formatted.keep(key, format_fn(value, fmt))
    return text


# "brief": day, month and time without the year, the way lists show recent things
# ("Mar 01, 20:00" / "01. März, 20:00"); CLDR has no such skeleton in every locale.
BRIEF = {"en": "MMM dd, HH:mm", "de": "dd. MMM, HH:mm"}


def _dt_filter(value: datetime | None, fmt: str = "medium") -> str:
    """Date and time, e.g. "Dec 2, 2026, 4:05:00 PM" / "02.12.2026, 16:05:00". ``fmt`` is a Babel
    format name (short/medium/long), "brief", or a CLDR pattern."""
    if value is None:
        return ""
    return _memo("dt", value, fmt, _format_datetime)


_NAMED_FORMATS = ("full", "long", "medium", "short")


def _configured(kind: str, fmt: str) -> bool:
    """Whether ``fmt`` is a named format the app configured for ``kind`` ("date", "datetime") in
    Flask-Babel's ``date_formats``: such a format is Flask-Babel's to apply."""
    if fmt not in _NAMED_FORMATS:
        return False
    app_ctx = _cv_app.get(None)  # (Flask-Babel's get_babel goes through current_app's proxy: ~4 µs)
    babel = app_ctx.app.extensions["babel"] if app_ctx is not None else flask_babel.get_babel()
    return babel.instance.date_formats.get(f"{kind}.{fmt}") is not None


def _format_datetime(value: datetime, fmt: str) -> str:
    """Flask-Babel's ``format_datetime(value, fmt)``: Babel's, given the request's locale and time
    zone objects, which this looks up once per request instead of on every call (Flask-Babel's
    wrapper cost ~12 µs of a date's 20-40, paid for every date a process shows the first time:
    each list ``<time>`` formats two). A named format the app configured (Flask-Babel's
    ``date_formats``) still goes through Flask-Babel."""
    if fmt == "brief":
        fmt = BRIEF.get(current_locale(), BRIEF[DEFAULT])
    elif _configured("datetime", fmt):
        configured: str = format_datetime(value, fmt)
        return configured
    locale, zone, _text = _locale_and_zone()
    return fast_datetime(value, fmt, zone, locale)


# Babel formats a date field by field through its pattern engine: a DateTimeFormat per value, then
# a method call and locale lookups per field. ~5.6 µs for the lists' brief "MMM dd, HH:mm" and
# ~17 µs for the long date and time of their titles, paid for every date a process shows the first
# time: most of a sessions page's first rendering, and most of the 1,000-user mix, where nearly every
# request is some tenant's first look at its page (issue 18). The common fields are filled here from
# the same locale data, the same way; every other field is Babel's own (``_Fields``). The text is
# Babel's (``tests/test_i18n.py`` compares the two over thousands of instants, zones, languages
# and formats).
_WIDTHS = {3: "abbreviated", 4: "wide", 5: "narrow"}
_zone_names: Memo[tuple[Any, ...], str] = Memo(4096)  # a zone's short name per offset and year


class _LocaleDates:
    """What the fields below read of one of the app's languages, taken out of Babel's locale data
    once (each lookup through Babel's ``LocaleDataDict`` wraps every level anew: ~1 µs)."""

    def __init__(self, locale: Locale) -> None:
        self.code = _code(locale)
        self.months: dict[tuple[str, int], dict[int, str]] = {
            (context, num): dict(locale.months[context][width])
            for context in ("format", "stand-alone")
            for num, width in _WIDTHS.items()
        }
        # AM/PM as Babel picks it: the width asked for, else wide, narrow, abbreviated in turn.
        self.periods: dict[tuple[int, str], str] = {}
        for num, first in _WIDTHS.items():
            for period in ("am", "pm"):
                for width in (first, "wide", "narrow", "abbreviated"):
                    names = locale.day_periods["format"][width]
                    if period in names:
                        self.periods[num, period] = names[period]
                        break
        self.brief = _pattern_text(parse_pattern(BRIEF.get(self.code, BRIEF[DEFAULT])))  # (when_html's)
        named = cast(Any, _NAMED_FORMATS)
        self.named = {
            fmt: (
                str(get_datetime_format(fmt, locale=locale)).replace("'", ""),
                _pattern_text(get_time_format(fmt, locale=locale)),
                _pattern_text(get_date_format(fmt, locale=locale)),
            )
            for fmt in named
        }


_locale_dates: dict[int, tuple[Locale, _LocaleDates]] = {}


class _Fields:
    """Babel's ``DateTimeFormat`` for ``pattern.format % fields``: the year, month, day, hours,
    minutes, seconds, AM/PM and short zone name filled directly; anything else asked of Babel's."""

    __slots__ = ("_babel", "dates", "locale", "value")

    def __init__(self, value: date | datetime, locale: Locale, dates: _LocaleDates) -> None:
        self.value: Any = value  # (a date has no time fields: asked for one, it fails as Babel's does)
        self.locale = locale
        self.dates = dates
        self._babel: DateTimeFormat | None = None

    def __getitem__(self, name: str) -> str:
        char, num, v = name[0], len(name), self.value
        if char == "d":
            return f"{v.day:0{num}d}"
        if char == "H":
            return f"{v.hour:0{num}d}"
        if char == "m":
            return f"{v.minute:0{num}d}"
        if char == "s":
            return f"{v.second:0{num}d}"
        if char == "h":
            return f"{v.hour % 12 or 12:0{num}d}"
        if char == "y":
            year = f"{v.year:0{num}d}"
            return year[-2:] if num == 2 else year
        if char in "ML" and num <= 5:
            if num <= 2:
                return f"{v.month:0{num}d}"
            return self.dates.months["format" if char == "M" else "stand-alone", num][v.month]
        if char == "a":
            return self.dates.periods[max(3, num), "pm" if v.hour >= 12 else "am"]
        if char == "z" and num <= 3 and isinstance(v, datetime) and v.tzinfo is not None:
            key = (v.tzinfo, v.utcoffset(), v.dst(), v.year, self.dates.code, num)
            zone_name = _zone_names.get(key)
            if zone_name is None:
                zone_name = _zone_names.keep(key, self._format(name))
            return zone_name
        return self._format(name)

    def _format(self, name: str) -> str:
        if self._babel is None:
            self._babel = DateTimeFormat(self.value, self.locale)
        text: str = self._babel[name]
        return text


def _dates_for(locale: Locale) -> _LocaleDates | None:
    """The locale data the fields read, for one of the app's own Locale objects; else None."""
    kept = _locale_dates.get(id(locale))
    if kept is not None and kept[0] is locale:
        return kept[1]
    if _CODES.get(id(locale), (None,))[0] is not locale:
        return None
    dates = _LocaleDates(locale)
    _locale_dates[id(locale)] = (locale, dates)
    return dates


def _in_zone(value: datetime, zone: Any) -> datetime:
    """``value`` in ``zone`` as Babel and Flask-Babel put it there (pytz's ``normalize`` too)."""
    local = value.astimezone(zone)
    return zone.normalize(local) if hasattr(zone, "normalize") else local


def fast_datetime(value: datetime, fmt: str, zone: Any, locale: Locale) -> str:
    """``babel.dates.format_datetime(value, fmt, tzinfo=zone, locale=locale)`` for an aware
    datetime in one of the app's languages (``_LOCALE_OBJECTS``), a named format (full, long,
    medium, short) or a pattern; see ``_Fields``. Anything else is Babel's to format."""
    dates = _dates_for(locale)
    if dates is None or value.tzinfo is None:
        text: str = babel_format_datetime(value, fmt, tzinfo=zone, locale=locale)
        return text
    local = _in_zone(value, zone)
    named = dates.named.get(fmt)
    if named is not None:
        return _named_text(named, _Fields(local, locale, dates))
    return _pattern_text(parse_pattern(fmt)) % _Fields(local, locale, dates)


def _named_text(named: tuple[str, str, str], fields: _Fields) -> str:
    """A named date-and-time format (``_LocaleDates.named``: Babel's "{1}, {0}" with its date and
    time patterns) filled from ``fields``."""
    both, time_format, date_format = named
    return both.replace("{0}", time_format % fields).replace("{1}", date_format % fields)


def fast_date(value: date | datetime, fmt: str, zone: Any, locale: Locale) -> str:
    """What Flask-Babel's ``format_date(value, fmt)`` gives: the day of ``value`` in ``zone`` (a
    naive datetime is UTC) through ``babel.dates.format_date``, with the fields filled as
    ``fast_datetime`` fills them."""
    if isinstance(value, datetime):
        value = _in_zone(value if value.tzinfo is not None else value.replace(tzinfo=UTC), zone).date()
    dates = _dates_for(locale)
    if dates is None:
        text: str = babel_format_date(value, fmt, locale=locale)
        return text
    named = dates.named.get(fmt)
    return (named[2] if named is not None else _pattern_text(parse_pattern(fmt))) % _Fields(value, locale, dates)


def _pattern_text(pattern: Any) -> str:
    """A Babel DateTimePattern's %-format text ("%(MMM)s %(dd)s, %(HH)s:%(mm)s")."""
    text: str = pattern.format
    return text


def _date_filter(value: date | datetime | None, fmt: str = "medium") -> str:
    if value is None:
        return ""
    return _memo("date", value, fmt, _format_date)


def _format_date(value: date | datetime, fmt: str) -> str:
    """Flask-Babel's ``format_date(value, fmt)`` with the request's locale and time zone looked up
    once per request and the fields filled by ``fast_date``; a named format the app configured
    (Flask-Babel's ``date_formats``) still goes through Flask-Babel."""
    if _configured("date", fmt):
        configured: str = format_date(value, fmt)
        return configured
    locale, zone, _text = _locale_and_zone()
    return fast_date(value, fmt, zone, locale)


def _time_filter(value: datetime | None, fmt: str = "short") -> str:
    if value is None:
        return ""
    return _memo("time", value, fmt, format_time)


def _month_filter(value: date | datetime | None) -> str:
    """Month and year, e.g. "December 2026" / "Dezember 2026"."""
    if value is None:
        return ""
    return _memo("date", value, "MMMM y", _format_date)


def _number_filter(value: Any, digits: int | None = None) -> str:
    """A number with the locale's separators; ``digits`` fixes the decimals (else as many as needed)."""
    if value is None:
        return ""
    if digits is None:
        return _memo("number", value, "", _format_number)
    return decimal_text(value, "#,##0." + "0" * digits if digits else "#,##0")


number_text = _number_filter  # the ``|number`` filter, for HTML built in Python


def _format_number(value: Any, _fmt: str) -> str:
    text: str = format_number(value) if isinstance(value, int) else format_decimal(value)
    return text


def decimal_text(value: Any, pattern: str) -> str:
    """``value`` formatted with a CLDR decimal ``pattern`` in the current language, e.g. "0.######"
    (kept per process like dates: Babel's number formatting costs ~25 µs and a usage page shows
    a hundred numbers)."""
    return _memo("decimal", value, pattern, _format_decimal_pattern)


def _format_decimal_pattern(value: Any, pattern: str) -> str:
    text: str = format_decimal(value, format=pattern)
    return text


def date_text(value: date | datetime, fmt: str = "medium") -> str:
    """A date formatted in the current language (``fmt``: a Babel format name or a CLDR pattern
    like "LLL"), kept per process like the ``date`` filter's."""
    return _memo("date", value, fmt, _format_date)


def _ago_filter(value: datetime | None) -> str:
    """A relative time, e.g. "3 minutes ago" / "vor 3 Minuten"."""
    if value is None:
        return ""
    now = datetime.now(value.tzinfo) if value.tzinfo else datetime.utcnow()
    text: str = format_timedelta(value - now, add_direction=True, threshold=1.0)
    return text


def _span_filter(value: timedelta | float | int | None) -> str:
    """A duration in words, e.g. "2 hours" / "2 Stunden"."""
    if value is None:
        return ""
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    text: str = format_timedelta(timedelta(seconds=seconds), threshold=1.0)
    return text


def when_html(value: datetime | None) -> Markup:
    """``<time>`` with the brief date as text and the long one as its title ("never" without a
    value): what every list shows for a date. In Python rather than a Jinja macro, which cost
    ~40 µs a call on list pages (issue 18); the HTML is kept per process like the dates in it."""
    if not value:
        return Markup('<span class="muted">%s</span>') % gettext("never")
    return Markup(_memo("when", value, "", _format_when))


def _format_when(value: datetime, _fmt: str) -> str:
    # Formatted directly, not through _dt_filter: the <time> is kept whole, and keeping its two
    # parts as well tripled what a list's dates take of the cache. Both parts read one locale and
    # zone lookup, one conversion into the zone and one set of fields; the HTML is an f-string of
    # escaped text (the Markup % of three parts and two _format_datetime calls were ~60 % of a
    # date's ~40 µs, paid by every list date a process shows the first time: most of a 1,000-user
    # run's sessions pages, issue 18). The text is _format_datetime's (tests/test_i18n.py).
    locale, zone, _text = _locale_and_zone()
    dates = _dates_for(locale)
    if dates is None or value.tzinfo is None or _configured("datetime", "long"):
        long, brief = _format_datetime(value, "long"), _format_datetime(value, "brief")
    else:
        fields = _Fields(_in_zone(value, zone), locale, dates)
        long, brief = _named_text(dates.named["long"], fields), dates.brief % fields
    return f'<time datetime="{escape(value.isoformat())}" title="{escape(long)}">{escape(brief)}</time>'


@pass_eval_context
def _jinja_gettext(eval_ctx: EvalContext, string: str, **variables: Any) -> str:
    text = translations().ugettext(string)
    return _fill(Markup(text) if eval_ctx.autoescape else text, variables)


@pass_eval_context
def _jinja_pgettext(eval_ctx: EvalContext, context: str, string: str, **variables: Any) -> str:
    text = translations().upgettext(context, string)
    return _fill(Markup(text) if eval_ctx.autoescape else text, variables)


@pass_eval_context
def _jinja_ngettext(eval_ctx: EvalContext, singular: str, plural: str, num: int, /, **variables: Any) -> str:
    # Positional-only count: templates pass ``num=n|number`` to show it with the locale's separators.
    variables.setdefault("num", num)
    text = translations().ungettext(singular, plural, num)
    return _fill(Markup(text) if eval_ctx.autoescape else text, variables)


# -- translations compiled into templates (issue 18) ------------------------------------------------


def template_catalogue() -> NullTranslations | None:
    """The catalogue a template loaded now is compiled for: the request's (or ``force_locale``'s)
    language; None outside an app context, where templates are compiled as written."""
    return translations() if _cv_app.get(None) is not None else None


# Each constant call in a template and the function the environment must hold under that name for
# the call to be folded (fail closed: anything else under the name is called at render time).
_FOLDABLE: dict[str, tuple[Callable[..., Any], int]] = {
    "_": (_jinja_gettext, 1),
    "gettext": (_jinja_gettext, 1),
    "pgettext": (_jinja_pgettext, 2),
}
FOLDED_NAMES = tuple(_FOLDABLE)


def fold_gettext(tree: nodes.Template, catalogue: NullTranslations, env_globals: Mapping[str, Any]) -> nodes.Template:
    """Translate a template's constant strings while it compiles, for one catalogue.

    ``{{ _("Save") }}`` cost ~2.8 µs at every render (Jinja's generic call, the per-request
    catalogue, a Markup, the ``%%`` rule) and a page has 20-120 of them; folded, it is template
    text like the HTML around it. ``_("...%(name)s", name=x)`` becomes the translated text ``%`` the
    variables (escaped by Markup as ``_`` escapes them); ``{% trans %}`` compiles to the same call.
    ``ngettext`` depends on a count and stays a call. The same semantics as the call
    (``tests/test_i18n_fold.py`` renders every page both ways); the environment keeps one compiled copy
    per catalogue (``app.TemplateEnvironment``). A template that binds one of these names itself
    (``set``, a loop, a macro argument, an import) is left as written."""
    if folded_names_bound(tree):
        return tree
    foldable = {name for name, (func, _n) in _FOLDABLE.items() if env_globals.get(name) is func}
    return _Fold(catalogue, foldable).visit(tree)  # type: ignore[no-any-return]


def folded_names_bound(tree: nodes.Template) -> list[str]:
    """The names of ``_``, ``gettext`` and ``pgettext`` a template binds itself (``set``, a loop, a
    macro argument, an import), each as often as it binds it."""
    bound = [n.name for n in tree.find_all(nodes.Name) if n.name in _FOLDABLE and n.ctx != "load"]
    bound += [imp.target for imp in tree.find_all(nodes.Import) if imp.target in _FOLDABLE]
    for imp in tree.find_all(nodes.FromImport):
        bound += [a for a in (n if isinstance(n, str) else n[1] for n in imp.names) if a in _FOLDABLE]
    return bound


# Keyword names the render-time functions take themselves: a template passing one gets their
# TypeError at render time, as before (so such a call is left as written).
_OWN_ARGUMENTS = frozenset({"string", "eval_ctx", "context"})


class _Fold(NodeTransformer):
    """Folds the calls, except where Jinja would then evaluate the folded text at compile time
    and could change it: in a ``~`` concatenation (its compile-time join drops Markup, so the
    translation's HTML would be escaped) and as the subject of a filter or test (a filter that
    reads the request would be run once, at compile time). Those keep their call."""

    def __init__(self, catalogue: NullTranslations, names: set[str]) -> None:
        self.catalogue, self.names = catalogue, names
        self.frozen = 0

    @contextmanager
    def _not_folding(self) -> Iterator[None]:
        self.frozen += 1
        try:
            yield
        finally:
            self.frozen -= 1

    def visit_Concat(self, node: nodes.Concat) -> Any:  # noqa: N802 (Jinja's visitor naming)
        with self._not_folding():
            return self.generic_visit(node)

    def visit_Filter(self, node: nodes.Filter) -> Any:  # noqa: N802
        return self._subject_frozen(node)

    def visit_Test(self, node: nodes.Test) -> Any:  # noqa: N802
        return self._subject_frozen(node)

    def _subject_frozen(self, node: nodes.Filter | nodes.Test) -> Any:
        subject = node.node
        node.node = None  # (a filter block's filter has none)
        visited = self.generic_visit(node)  # its arguments fold as anywhere else
        assert isinstance(visited, (nodes.Filter, nodes.Test))
        if subject is not None:
            with self._not_folding():
                visited.node = self.visit(subject)
        return visited

    def visit_Call(self, node: nodes.Call) -> nodes.Node:  # noqa: N802 (Jinja's visitor naming)
        visited = self.generic_visit(node)  # inner calls first: value=_("(none)") inside another _()
        assert isinstance(visited, nodes.Call)
        node, callee = visited, visited.node
        if (
            self.frozen
            or not isinstance(callee, nodes.Name)
            or callee.name not in self.names
            or node.dyn_args is not None
            or node.dyn_kwargs is not None
            or len(node.args) != _FOLDABLE[callee.name][1]
            or not all(isinstance(a, nodes.Const) and isinstance(a.value, str) for a in node.args)
            or any(k.key in _OWN_ARGUMENTS for k in node.kwargs)
        ):
            return node
        strings = [a.value for a in node.args if isinstance(a, nodes.Const)]
        text = self.catalogue.ugettext(*strings) if len(strings) == 1 else self.catalogue.upgettext(*strings)
        if node.kwargs:  # _fill: the text % the variables, escaped when the text is Markup
            pairs = [nodes.Pair(nodes.Const(k.key), k.value, lineno=k.lineno) for k in node.kwargs]
            folded: nodes.Expr = nodes.Mod(
                nodes.MarkSafeIfAutoescape(nodes.Const(text)), nodes.Dict(pairs, lineno=node.lineno)
            )
        else:
            try:
                text = _fill(text, {})  # "%%" is a percent sign
            except (KeyError, TypeError, ValueError):
                return node  # a placeholder without its variable: fails at render time, as it did
            folded = nodes.MarkSafeIfAutoescape(nodes.Const(text))
        folded.set_lineno(node.lineno)
        if node.environment is not None:
            folded.set_environment(node.environment)
        return folded


def _default_zone() -> Any:
    """Flask-Babel's time zone selector: the configured default zone (``BABEL_DEFAULT_TIMEZONE``,
    UTC), made once per app (issue 18). Without a selector Flask-Babel builds it again with
    ``pytz.timezone`` on every request (~7 µs); this is that same zone, made on the first."""
    app = _cv_app.get().app
    zone = app.extensions.get("gx_zone")
    if zone is None:
        zone = app.extensions["gx_zone"] = flask_babel.get_babel(app).instance.default_timezone
    return zone


def init_app(app: Flask) -> None:
    app.config.setdefault("BABEL_TRANSLATION_DIRECTORIES", str(TRANSLATIONS))
    Babel(app, locale_selector=select_locale, timezone_selector=_default_zone)
    # Jinja's _()/gettext/ngettext: newstyle semantics (keyword placeholders, autoescaped, "%%" is a
    # percent sign) like Flask-Babel's, but through the per-request catalogue above and without
    # Jinja's generic wrappers (which cost ~14 µs a string; a page has a few hundred).
    app.jinja_env.newstyle_gettext = True  # type: ignore[attr-defined]  # set by jinja2.ext.i18n
    app.jinja_env.globals.update(
        _=_jinja_gettext, gettext=_jinja_gettext, ngettext=_jinja_ngettext, pgettext=_jinja_pgettext
    )
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

    app.jinja_env.globals.update(
        when_html=when_html, current_locale=current_locale, LOCALE_NAMES=LOCALE_NAMES, js_messages=js_messages
    )
