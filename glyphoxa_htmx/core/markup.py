"""The small HTML pieces every page repeats (icons, field errors, the CSRF field), as Python.

They were Jinja macros in ``templates/_macros.html``; a macro call costs ~30-40 µs of Python
(a new context per call) and a form page makes dozens of them (issue 18). ``_macros.html``
still exports the same names (``{% set icon = icon_html %}``), so templates import them as before.
Every value put into the HTML is escaped; the output is the macros' HTML, character for character.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask_wtf.csrf import generate_csrf
from markupsafe import Markup

__all__ = ["char_counter", "csrf_field", "field_error", "icon", "invalid", "spinner"]

_SPINNER = Markup('<span class="spinner htmx-indicator" aria-hidden="true"></span>')
_COUNTER = Markup(
    '<p class="small muted" hidden x-bind:hidden="plain" x-bind:class="counterClass" x-text="counterText"></p>'
)


def icon(name: str, label: Any = None) -> Markup:
    """An icon from the sprite in _icons.html: decorative, or with ``label`` an image with a name."""
    if label:
        return Markup('<svg role="img" aria-label="%s" focusable="false"><use href="#i-%s"/></svg>') % (label, name)
    return Markup('<svg aria-hidden="true" focusable="false"><use href="#i-%s"/></svg>') % (name,)


def field_error(errors: Mapping[str, Any] | None, name: str) -> Markup:
    """The message under a field (``id="<name>-error"``, which ``invalid`` points to)."""
    if errors and errors.get(name):
        return Markup('<p class="error" id="%s-error">%s</p>') % (name, errors[name])
    return Markup("")


def invalid(errors: Mapping[str, Any] | None, name: str) -> Markup:
    """The attributes that mark a field invalid and tie it to its message."""
    if errors and errors.get(name):
        return Markup('aria-invalid="true" aria-describedby="%s-error"') % (name,)
    return Markup("")


def csrf_field() -> Markup:
    return Markup('<input type="hidden" name="csrf_token" value="%s">') % (generate_csrf(),)


def spinner() -> Markup:
    return _SPINNER


def char_counter() -> Markup:
    """Character count under a textarea (Alpine ``counter`` on the .field, x-ref="text" and
    x-on:input="count" on the textarea). Nothing without JavaScript: maxlength still holds."""
    return _COUNTER
