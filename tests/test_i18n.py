"""English and German (issue 17): every visible string is marked and translated, the language follows
the user's choice, else Accept-Language, and the compiled catalogue is the one the sources make."""

from __future__ import annotations

import re

import pytest
from sqlalchemy import select

from glyphoxa_htmx import i18n_catalog
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import User
from tests.conftest import Browser


@pytest.fixture(scope="module")
def report():
    return i18n_catalog.check("de")


def test_compiled_catalogue_is_current():
    assert i18n_catalog.mo_path("de").read_bytes() == i18n_catalog.compile_catalog("de"), (
        "translations/de/LC_MESSAGES/messages.mo is stale: run `glyphoxa-web i18n compile`"
    )


def test_every_marked_string_has_a_german_translation(report):
    assert not report.conflicts, report.conflicts
    assert not report.bad_format, report.bad_format
    assert not report.missing, "\n".join(x for x in report.lines() if x.startswith("untranslated"))[:6000]


def test_no_visible_text_is_left_unmarked(report):
    assert not report.unmarked, "\n".join(report.unmarked)[:6000]


def test_every_translation_is_used(report):
    """A German string no source marks is stale, or its source is marked where Babel's extractor
    can't see it: "Raw speech-to-text:" sat inside an f-string, so it counted as unused (and a
    clean-up of unused strings would have taken it from German pages)."""
    assert not report.unused, report.unused


def test_the_checker_sees_unmarked_text(tmp_path, monkeypatch):
    """The two checks above could pass by seeing nothing: show that they do see text and sentences."""
    (tmp_path / "t.html").write_text(
        '<p>{{ _("Fine") }}</p>\n<p title="Hover text">Plain words</p>\n{{ macro("Open the door") }}\n'
        '{% trans %}Also fine{% endtrans %}<input type=submit value="Go now">\n'
    )
    monkeypatch.setattr(i18n_catalog, "TEMPLATES", tmp_path)
    monkeypatch.setattr(i18n_catalog, "ROOT", tmp_path.parent)
    found = i18n_catalog.unmarked_templates()
    assert any("Plain words" in f for f in found)
    assert any("Hover text" in f for f in found)
    assert any("Open the door" in f for f in found)
    assert any("Go now" in f for f in found)
    assert not any("Fine" in f or "Also fine" in f for f in found)


def test_accept_language_picks_german_for_visitors(app):
    client = app.test_client()
    de = client.get("/auth/signin", headers={"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"})
    assert re.search(r'<html lang="de">', de.get_data(as_text=True))
    en = client.get("/auth/signin", headers={"Accept-Language": "fr-FR,en;q=0.5"})
    assert re.search(r'<html lang="en">', en.get_data(as_text=True))
    none = client.get("/auth/signin")
    assert '<html lang="en">' in none.get_data(as_text=True)


def test_the_browsers_choice_is_werkzeugs_best_match_remembered_per_header(app):
    """``select_locale`` keeps what each Accept-Language header picks (issue 18: the parse was
    ~24 µs a request): the same answer as werkzeug's ``best_match`` over the supported languages,
    the first time and from the memo, for headers browsers send and headers nobody should."""
    from glyphoxa_htmx.core import i18n

    headers = [
        "",
        "de",
        "de-DE,de;q=0.9,en;q=0.5",
        "en-US,en;q=0.9,de;q=0.8",
        "fr-FR,fr;q=0.9",
        "fr-FR,de;q=0.1,en;q=0.2",
        "*",
        "de;q=0",
        "DE-at",
        "en;q=0.5, de;q=0.5",
        "de;q=abc, en",
        ";;;,,,q=",
        "x" * 5000,
    ]
    i18n._browser_choices.clear()
    for _round in range(2):  # the second round from the memo
        for header in headers:
            with app.test_request_context(headers={"Accept-Language": header} if header else {}):
                from flask import request

                expected = request.accept_languages.best_match(i18n.LOCALES) or i18n.DEFAULT
                assert i18n.select_locale() is i18n._LOCALE_OBJECTS[expected], header
    assert "de-DE,de;q=0.9,en;q=0.5" in i18n._browser_choices
    assert i18n._browser_choices.used <= i18n._browser_choices.limit


def test_dates_formatted_here_read_as_babels_own():
    """``i18n.fast_datetime`` fills the common fields itself (issue 18: Babel's pattern engine was
    ~5-17 µs a date, paid for every date a process shows the first time); its text must be
    Babel's, for every language, zone (pytz, as Flask-Babel hands it over, and zoneinfo), named
    format and pattern the app uses, and for fields it leaves to Babel (weekdays, eras, long zone
    names), over random instants and each side of daylight-saving changes."""
    import random
    from datetime import UTC, datetime, timedelta
    from zoneinfo import ZoneInfo

    from babel import Locale
    from babel.dates import format_date, format_datetime
    from flask_babel import timezone as pytz_zone  # Flask-Babel's zones are pytz's (its own ``timezone``)

    from glyphoxa_htmx.core import i18n

    rng = random.Random(18)
    instants = [
        datetime(1970, 1, 1, tzinfo=UTC) + timedelta(seconds=rng.randrange(0, 4_100_000_000)) for _ in range(150)
    ]
    for change in ("2026-03-29 01:00", "2026-10-25 01:00", "2026-03-08 07:00", "2026-11-01 06:00"):
        at = datetime.fromisoformat(change).replace(tzinfo=UTC)
        instants += [at + timedelta(seconds=s) for s in (-3601, -1, 0, 1, 3599, 3600)]
    instants += [datetime(2026, 12, 2, h, 5, 7, tzinfo=UTC) for h in (0, 1, 11, 12, 13, 23)]
    zones = [pytz_zone("UTC"), pytz_zone("Europe/Berlin"), pytz_zone("America/New_York"), ZoneInfo("Asia/Kolkata")]
    zones.append(ZoneInfo("Australia/Lord_Howe"))  # a half-hour daylight-saving shift
    formats = [*i18n._NAMED_FORMATS, *i18n.BRIEF.values(), "MMMM y", "LLL", "LLLL", "MMMMM", "h:mm a", "K:mm a"]
    formats += ["yy-M-d H:m:s", "y yyyy", "EEEE d MMMM y zzzz", "z", "zz zzz", "G 'at' hh:mm:ss a z", "d. LLL ''yy"]
    checked = 0
    # The app's own Locale objects (what Flask-Babel hands over) take the fast path; another
    # Locale object for the same language is Babel's to format: both must read the same.
    for locale in [*i18n._LOCALE_OBJECTS.values(), Locale.parse("de")]:
        for zone in zones:
            for fmt in formats:
                for value in instants:
                    expected = format_datetime(value, fmt, tzinfo=zone, locale=locale)
                    assert i18n.fast_datetime(value, fmt, zone, locale) == expected, (locale, zone, fmt, value)
                    checked += 1
    assert checked > 50_000

    # Days (the date filter, ``date_text``, the month filter): Flask-Babel's ``format_date`` takes
    # the day in the request's zone (a naive datetime is UTC) and hands it to Babel.
    days = (
        [value.date() for value in instants[:40]] + instants + [value.replace(tzinfo=None) for value in instants[:40]]
    )
    day_formats = [*i18n._NAMED_FORMATS, "MMMM y", "LLL", "LLLL y", "EEEE, d. MMMM y", "d.M.yy", "QQQ y G"]
    for locale in [*i18n._LOCALE_OBJECTS.values(), Locale.parse("en")]:
        for zone in zones:
            for fmt in day_formats:
                for value in days:
                    day = value
                    if isinstance(value, datetime):
                        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
                        local = aware.astimezone(zone)
                        day = (zone.normalize(local) if hasattr(zone, "normalize") else local).date()
                    expected = format_date(day, fmt, locale=locale)
                    assert i18n.fast_date(value, fmt, zone, locale) == expected, (locale, zone, fmt, value)


def test_profile_choice_beats_the_browser_and_bad_values_are_refused(app, make_user):
    user = make_user(role="dm")
    b = Browser(app).login(user)
    page = b.get("/me", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="en">' in page and "Interface language" in page

    assert b.post("/me/locale", {"locale": "de"}).status_code in (200, 303)
    page = b.get("/me", headers={"Accept-Language": "en"}).get_data(as_text=True)
    assert '<html lang="de">' in page and "Sprache der Oberfläche" in page
    # Scripts get the German strings they show.
    assert '"Dismiss": "Schlie\\u00dfen"' in page or '"Dismiss": "Schließen"' in page

    bad = b.post("/me/locale", {"locale": "fr"})
    assert bad.status_code == 422
    assert "Wähle eine der aufgeführten Sprachen." in bad.get_data(as_text=True)  # at the field, in German
    with app.app_context():
        assert db.session.execute(select(User.locale).where(User.id == user.id)).scalar_one() == "de"

    assert b.post("/me/locale", {"locale": "auto"}).status_code in (200, 303)
    page = b.get("/me", headers={"Accept-Language": "en-GB"}).get_data(as_text=True)
    assert '<html lang="en">' in page
    with app.app_context():
        assert db.session.execute(select(User.locale).where(User.id == user.id)).scalar_one() is None


def test_dates_and_numbers_follow_the_language(app):
    from datetime import UTC, datetime

    with app.test_request_context(headers={"Accept-Language": "de"}):
        env = app.jinja_env
        when = datetime(2026, 12, 2, 16, 5, tzinfo=UTC)
        assert env.from_string("{{ d|month }}").render(d=when) == "Dezember 2026"
        assert env.from_string("{{ n|number(2) }}").render(n=1234.5) == "1.234,50"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert app.jinja_env.from_string("{{ n|number(2) }}").render(n=1234.5) == "1,234.50"


def test_formatted_dates_are_remembered_per_language_and_zone(app):
    """Dates are formatted once per process (issue 18), keyed by language and time zone as well:
    the same instant still reads differently in each language, also under force_locale."""
    from datetime import UTC, datetime

    from flask_babel import force_locale

    from glyphoxa_htmx.core import i18n

    when = datetime(2026, 12, 2, 16, 5, tzinfo=UTC)
    tpl = app.jinja_env.from_string("{{ d|dt('long') }}|{{ d|date }}|{{ d|time }}|{{ d|month }}")
    for _round in range(2):  # the second round comes from the cache
        with app.test_request_context(headers={"Accept-Language": "de"}):
            assert tpl.render(d=when) == "2. Dezember 2026, 16:05:00 UTC|02.12.2026|16:05|Dezember 2026"
            with force_locale("en"):
                assert (
                    tpl.render(d=when) == "December 2, 2026, 4:05:00\u202fPM UTC|Dec 2, 2026|4:05\u202fPM|December 2026"
                )
            assert tpl.render(d=when).endswith("Dezember 2026")
        with app.test_request_context(headers={"Accept-Language": "en"}):
            assert tpl.render(d=when).startswith("December 2, 2026")
    assert any(key[2] == when for key in i18n._formatted)


def test_dates_read_as_flask_babel_writes_them(app):
    """i18n._format_datetime calls Babel with the request's locale and zone looked up once per
    request; every text must be Flask-Babel's own: both languages and force_locale inside a
    request (the zone is the app's), every month, hours around noon and midnight, naive and
    aware values, each named format, the list's brief patterns and a pattern of Babel's own."""
    from datetime import UTC, datetime, timedelta, timezone

    from flask_babel import force_locale
    from flask_babel import format_datetime as flask_babels

    from glyphoxa_htmx.core import i18n

    moments = [
        datetime(2026, month, 1 + month, hour, 7 * month % 60, 5, tzinfo=UTC)
        for month in range(1, 13)
        for hour in (0, 11, 12, 13, 23)
    ]
    moments += [datetime(2026, 7, 4, 12, 0), datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=2)))]
    formats = ["full", "long", "medium", "short", "brief", "EEEE, G y QQQ, h:mm a zzzz"]

    def same(lang):
        for when in moments:
            for fmt in formats:
                pattern = i18n.BRIEF[lang] if fmt == "brief" else fmt
                assert i18n._format_datetime(when, fmt) == flask_babels(when, pattern), (lang, when, fmt)

    for lang, other in (("en", "de"), ("de", "en")):
        with app.test_request_context(headers={"Accept-Language": lang}):
            same(lang)
            with force_locale(other):
                same(other)
            same(lang)


def test_a_list_date_takes_one_cache_entry_and_reads_the_same_from_it(app):
    """when_html (every list's dates) is kept whole, not also its two formatted parts: with three
    entries a date, 1,000 tenants' lists overflowed the cache and emptied it over and over."""
    from datetime import UTC, datetime

    from glyphoxa_htmx.core import i18n

    when = datetime(2026, 3, 1, 20, 0, 7, 123456, tzinfo=UTC)
    with app.test_request_context(headers={"Accept-Language": "en"}):
        first = str(i18n.when_html(when))
        assert [k[0] for k in i18n._formatted if k[2] == when] == ["when"]
        assert str(i18n.when_html(when)) == first
        assert first == (
            f'<time datetime="{when.isoformat()}" title="{i18n._dt_filter(when, "long")}">'
            f"{i18n._dt_filter(when, 'brief')}</time>"
        )


def test_a_list_date_reads_as_its_long_and_brief_formats(app):
    """when_html's ``<time>`` fills both of its formats from one lookup of the language and zone
    (issue 18): its HTML must be what escaping the two formatted parts into the tag gives, in both
    languages, under force_locale, in the app's zone and another one, for aware values in other
    offsets and naive ones, and with a long format the app configured for Flask-Babel."""
    from datetime import UTC, datetime, timedelta, timezone

    from flask_babel import force_locale
    from flask_babel import timezone as pytz_zone
    from markupsafe import Markup

    from glyphoxa_htmx.core import i18n

    moments = [
        datetime(2026, month, 1 + month, hour, 7 * month % 60, 5, tzinfo=UTC)
        for month in range(1, 13)
        for hour in (0, 11, 12, 13, 23)
    ]
    moments += [datetime(2026, 7, 4, 12, 0), datetime(2026, 3, 29, 2, 30, tzinfo=timezone(timedelta(hours=2)))]
    moments += [datetime(2026, 10, 25, 0, 30, tzinfo=UTC) + timedelta(minutes=30 * i) for i in range(5)]

    def parts(when):
        return str(
            Markup('<time datetime="%s" title="%s">%s</time>')
            % (when.isoformat(), i18n._format_datetime(when, "long"), i18n._format_datetime(when, "brief"))
        )

    def same():
        for when in moments:
            assert i18n._format_when(when, "") == parts(when), when

    formats = app.extensions["babel"].instance.date_formats
    zone, configured = app.extensions.get("gx_zone"), formats.get("datetime.long")
    try:
        for app_zone in (None, pytz_zone("Europe/Berlin")):
            if app_zone is not None:
                app.extensions["gx_zone"] = app_zone
            for lang, other in (("en", "de"), ("de", "en")):
                with app.test_request_context(headers={"Accept-Language": lang}):
                    same()
                    with force_locale(other):
                        same()
        formats["datetime.long"] = "EEEE d MMMM y, HH:mm"  # configured: Flask-Babel's to apply
        with app.test_request_context(headers={"Accept-Language": "de"}):
            same()
            assert "Sonntag 1 März 2026" in i18n._format_when(datetime(2026, 3, 1, 20, 0, tzinfo=UTC), "")
    finally:
        if zone is None:
            app.extensions.pop("gx_zone", None)  # (the selector looks it up again)
        else:
            app.extensions["gx_zone"] = zone
        formats["datetime.long"] = configured


def test_formatted_numbers_are_remembered_per_language_and_pattern(app):
    """Numbers are formatted once per process too: the same value still reads differently in each
    language and pattern, and equal values of different types keep their own text."""
    from decimal import Decimal

    from glyphoxa_htmx.core import i18n

    tpl = app.jinja_env.from_string("{{ n|number }}|{{ n|number(2) }}|{{ n|number(0) }}")
    for _round in range(2):  # the second round comes from the cache
        with app.test_request_context(headers={"Accept-Language": "de"}):
            assert tpl.render(n=Decimal("1234.5")) == "1.234,5|1.234,50|1.234"
            assert i18n.decimal_text(Decimal("3.5"), "0.######") == "3,5"
        with app.test_request_context(headers={"Accept-Language": "en"}):
            assert tpl.render(n=Decimal("1234.5")) == "1,234.5|1,234.50|1,234"
            assert i18n.decimal_text(Decimal("3.5"), "0.######") == "3.5"
            assert tpl.render(n=1) == "1|1.00|1"


def test_template_gettext_escapes_formats_and_follows_force_locale(app):
    """Our fast gettext keeps Flask-Babel's newstyle semantics: placeholders are escaped, "%%" is a
    percent sign, force_locale switches the language inside a request, and outside one it's English."""
    from flask_babel import force_locale

    from glyphoxa_htmx.core.i18n import gettext

    env = app.jinja_env
    with app.test_request_context(headers={"Accept-Language": "de"}):
        out = env.from_string("{{ _('Language') }}|{{ _('%(x)s!', x='<b>') }}|{{ _('100%%') }}").render()
        assert out == "Sprache|&lt;b&gt;!|100%"
        # The same English word, two meanings: the verb on the profile's button, the noun in lists.
        assert env.from_string("{{ pgettext('verb', 'Link') }}|{{ _('Link') }}").render() == "Verknüpfen|Link"
        with force_locale("en"):
            assert gettext("Language") == "Language"
            assert env.from_string("{{ _('Language') }}").render() == "Language"
        assert gettext("Language") == "Sprache"
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert gettext("Language") == "Language"  # nothing cached across requests
    assert gettext("Language") == "Language"  # no context at all


def test_lazy_constants_translate_as_flask_babels_do_per_request_and_language(app):
    """i18n.lazy_gettext (module-level constants: badge names, notes) gives what Flask-Babel's own
    lazy_gettext gives, in each request's language, with variables, under force_locale and outside
    any request."""
    import flask_babel
    from flask_babel import force_locale

    from glyphoxa_htmx.core.i18n import lazy_gettext
    from glyphoxa_htmx.services.npcs import TIER_NAMES

    ours = [TIER_NAMES["deep"], lazy_gettext("Language"), lazy_gettext("%(x)s!", x="<b>"), lazy_gettext("100%%")]
    theirs = [flask_babel.lazy_gettext(s._args[0], **s._kwargs) for s in ours]
    seen = {}
    for lang in ("de", "en"):
        with app.test_request_context(headers={"Accept-Language": lang}):
            seen[lang] = [str(s) for s in ours]
            assert seen[lang] == [str(s) for s in theirs]
            with force_locale("en" if lang == "de" else "de"):
                assert [str(s) for s in ours] == [str(s) for s in theirs]
                assert str(ours[1]) != seen[lang][1]
    assert seen["de"][:2] == ["Gründlich", "Sprache"] and seen["en"][:2] == ["Deep", "Language"]
    assert seen["de"][2:] == ["<b>!", "100%%"]  # plain text (escaped where shown); no % without variables
    assert [str(s) for s in ours] == [str(s) for s in theirs]  # outside a request: as written


def test_the_language_in_force_is_one_of_the_made_locales_and_its_catalogue_is_kept(app):
    """The selector answers one of the Locale objects made once per process (issue 18), and each
    one's catalogue is kept per Flask-Babel domain; a locale forced by another object (an equal
    Locale, not one of ours) is still looked up by Flask-Babel, and every way gives the same text."""
    from babel import Locale
    from flask_babel import force_locale, get_locale, get_timezone

    from glyphoxa_htmx.core import i18n

    kept = []
    for _round in range(2):
        with app.test_request_context(headers={"Accept-Language": "de-DE,de;q=0.9"}):
            assert get_locale() is i18n._LOCALE_OBJECTS["de"]
            assert i18n.current_locale() == "de"
            assert i18n.gettext("Save") == "Speichern"
            kept.append(i18n.translations())
            assert str(get_timezone()) == "UTC" and get_timezone() is app.extensions["gx_zone"]
            with force_locale("en"):
                assert i18n.current_locale() == "en" and i18n.gettext("Save") == "Save"
            assert i18n.gettext("Save") == "Speichern"
        with app.test_request_context(headers={"Accept-Language": "fr"}):
            assert get_locale() is i18n._LOCALE_OBJECTS["en"] and i18n.gettext("Save") == "Save"
    assert kept[0] is kept[1]  # the same catalogue object, not looked up again
    with app.test_request_context(headers={"Accept-Language": "en"}):
        with force_locale(Locale.parse("de")):  # equal to ours, not ours: Flask-Babel's lookup
            assert get_locale() is not i18n._LOCALE_OBJECTS["de"]
            assert i18n.current_locale() == "de" and i18n.gettext("Save") == "Speichern"
