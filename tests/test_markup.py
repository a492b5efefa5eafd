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
