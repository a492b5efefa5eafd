"""core/markup.py replaced the hottest Jinja macros of _macros.html: it must write their HTML,
character for character, escaping whatever it is given. The old macros are kept here as the
reference."""

from __future__ import annotations

from flask import render_template_string
from markupsafe import Markup

OLD_MACROS = """
{% macro icon(name, label=None) -%}
<svg {% if label %}role="img" aria-label="{{ label }}"{% else %}aria-hidden="true"{% endif %} focusable="false"><use href="#i-{{ name }}"/></svg>
{%- endmacro %}
{% macro field_error(errors, name) -%}
{% if errors and errors.get(name) %}<p class="error" id="{{ name }}-error">{{ errors[name] }}</p>{% endif %}
{%- endmacro %}
{% macro invalid(errors, name) -%}
{% if errors and errors.get(name) %}aria-invalid="true" aria-describedby="{{ name }}-error"{% endif %}
{%- endmacro %}
{% macro csrf_field() -%}
<input type="hidden" name="csrf_token" value="{{ csrf_token() }}">
{%- endmacro %}
{% macro spinner() -%}
<span class="spinner htmx-indicator" aria-hidden="true"></span>
{%- endmacro %}
{% macro char_counter() -%}
<p class="small muted" hidden x-bind:hidden="plain" x-bind:class="counterClass" x-text="counterText"></p>
{%- endmacro %}
"""

CALLS = (
    "[{{ icon(name) }}][{{ icon(name, label) }}][{{ icon(name, label=label) }}]"
    "[{{ field_error(errors, name) }}][{{ invalid(errors, name) }}]"
    "[{{ csrf_field() }}][{{ spinner() }}][{{ char_counter() }}]"
)


def test_python_pieces_write_the_old_macros_html(app):
    cases = [
        ("mic", None, None),
        ("plus", "", {}),
        ('x"><script>', 'Close "now" & <later>', {'x"><script>': "<b>bad</b> & 'worse'"}),
        ("name", Markup("<em>Named</em>"), {"name": Markup("Already <strong>safe</strong>"), "other": "x"}),
        ("personality", "Grüße", {"personality": ""}),
        ("field", 0, {"field": 42}),
    ]
    with app.test_request_context("/"):
        for name, label, errors in cases:
            values = dict(name=name, label=label, errors=errors)
            old = render_template_string(OLD_MACROS.lstrip() + CALLS, **values)
            new = render_template_string(
                '{% from "_macros.html" import icon, field_error, invalid, csrf_field, spinner, char_counter %}'
                + CALLS,
                **values,
            )
            assert new == old, (name, label, errors)
            assert "<script>" not in new and "<b>bad" not in new


OLD_FLASHES = """{% with messages = get_flashed_messages(with_categories=true) %}
{% for level, message in messages %}
<div class="notice {% if level == 'error' %}notice-error{% endif %}" role="{{ 'alert' if level == 'error' else 'status' }}">{{ message }}</div>
{% endfor %}
{% endwith %}
"""


def test_flashes_write_the_old_include_html(app):
    """base.html's flashed messages (once templates/_flashes.html) and the icon sprite (an include
    of a static file) come from Python now; same HTML for hostile and safe messages."""
    from flask import flash

    from glyphoxa_htmx.core import markup

    messages = [
        ("info", "Saved."),
        ("error", "<script>alert(\"x\")</script> & 'quoted'"),
        ("warning", Markup("Already <strong>safe</strong>")),
        ("error", "Grüße"),
    ]
    for batch in ([], messages[:1], messages):
        with app.test_request_context("/"):
            for level, message in batch:
                flash(message, level)
            old = render_template_string(OLD_FLASHES)  # reads them (Flask keeps them for the request)
            new = str(markup.flashes())
            assert new == old, batch
            assert "<script>" not in new
    with app.test_request_context("/"):
        sprite = render_template_string('{% include "_icons.html" %}')
        assert str(markup.icon_sprite()) == sprite and sprite.startswith("<svg")
