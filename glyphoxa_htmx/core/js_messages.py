"""Strings the browser scripts (static/js/*.js) show, so that they can be translated too.

Scripts call ``window.glyphoxa.t("English text %(name)s", {name: ...})``; base.html carries this list's
translations for the current language (nothing when the language is English: ``t`` falls back to the
English text it was given). Add a script's string here, wrapped in ``N_`` so that extraction finds it.
"""

from __future__ import annotations


def N_(message: str) -> str:  # noqa: N802 - gettext's conventional name for "mark, don't translate yet"
    return message


JS_MESSAGES: tuple[str, ...] = (
    # static/js/app.js
    N_("Dismiss"),
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
