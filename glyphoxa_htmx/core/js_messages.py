"""Strings the browser scripts (static/js/*.js) show, so that they can be translated too.

Scripts call ``window.glyphoxa.t("English text %(name)s", {name: ...})``; base.html carries this list's
translations for the current language (nothing when the language is English: ``t`` falls back to the
English text it was given). Add a script's string here, wrapped in ``N_`` so that extraction finds it.
"""

from __future__ import annotations

from markupsafe import Markup


def N_(message: str) -> str:  # noqa: N802 - gettext's conventional name for "mark, don't translate yet"
    return message


JS_MESSAGES: tuple[str, ...] = (
    # static/js/app.js
    N_("Dismiss"),
    N_("Something went wrong on our side. Try again in a moment."),
    N_("That didn't work. Reload the page and try again."),
    N_("Can't reach Glyphoxa. Check your connection."),
    N_("That didn't work. Check what you entered and try again."),
    # static/js/npc-editor.js
    N_("item"),
    N_("Attribute %(n)s"),
    N_("Key %(n)s"),
    N_("Value %(n)s"),
    N_("%(count)s / %(max)s characters"),
    N_("%(count)s characters"),
    N_("Voice set to %(name)s. Save to keep it."),
    N_("Copied %(id)s"),
    # static/js/voice-preview.js
    N_("That's 5 previews this minute. Wait a moment, then try again."),
    N_("The preview didn't work (error %(status)s). Try again in a moment."),
    N_("Stopped."),
    N_("This browser can't play previews (no Web Audio)."),
    N_("Synthesizing the preview…"),
    N_("Done. Change the voice, pitch or speed and play again."),
    N_("Playing (from cache)… Move the sliders to hear the change."),
    N_("Playing… Move the sliders to hear the change."),
    N_("The audio could not be played."),
    # static/js/live.js
    N_("Link to this line copied."),
    N_("No matches on this page"),
    N_("%(current)s of %(total)s on this page"),
    N_("Jump to latest (%(n)s new)"),
    N_("Session ended."),
    N_("Live."),
    N_("Reconnecting…"),
    N_("Live updates every %(n)s seconds."),
)


def js_messages() -> dict[str, str]:
    from glyphoxa_htmx.core.i18n import current_locale, gettext

    if current_locale() == "en":
        return {}
    return {m: gettext(m) for m in JS_MESSAGES}


_JSON: dict[str, Markup] = {}


def js_messages_json() -> Markup:
    """``js_messages()|tojson`` for base.html's ``data-js-messages``, rendered once per language
    (Markup: tojson's HTML-safe JSON)."""
    from flask import current_app

    from glyphoxa_htmx.core.i18n import current_locale

    locale = current_locale()
    found = _JSON.get(locale)
    if found is None:
        template = current_app.jinja_env.from_string("{{ messages|tojson }}")
        found = _JSON[locale] = Markup(template.render(messages=js_messages()))
    return found
