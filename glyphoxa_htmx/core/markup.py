"""The small HTML pieces every page repeats (icons, field errors, the CSRF field), as Python.

They were Jinja macros in ``templates/_macros.html``; a macro call costs ~30-40 µs of Python
(a new context per call) and a form page makes dozens of them (issue 18). ``_macros.html``
still exports the same names (``{% set icon = icon_html %}``), so templates import them as before.
Every value put into the HTML is escaped; the output is the macros' HTML, character for character.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from functools import cache
from typing import Any

from flask import current_app, url_for
from flask.globals import _cv_request
from markupsafe import Markup

from glyphoxa_htmx.core.memo import Memo

try:  # markupsafe's C escaper (its pure-Python one without the extension); a str in, a str out
    from markupsafe import _escape_inner
except ImportError:  # pragma: no cover - a markupsafe without it: the public function, as text
    from markupsafe import escape as _public_escape

    def _escape_inner(s: str, /) -> str:
        return str(_public_escape(s))


__all__ = [
    "char_counter",
    "csrf_field",
    "escape",
    "field_error",
    "flashes",
    "icon",
    "icon_sprite",
    "id_url",
    "invalid",
    "spinner",
    "svg_chart",
    "trusted",
]

_SPINNER = Markup('<span class="spinner htmx-indicator" aria-hidden="true"></span>')
_COUNTER = Markup(
    '<p class="small muted" hidden x-bind:hidden="plain" x-bind:class="counterClass" x-text="counterText"></p>'
)


_new_str = str.__new__


def escape(s: Any, /) -> Markup:
    """``markupsafe.escape``, the same value for every input, at ~40 % of its cost: it builds the
    Markup without ``Markup.__new__`` (a Python-level call that probes the text for ``__html__``
    again) and hands a Markup back as it is instead of copying it (it is immutable). Compiled
    templates escape every ``{{ }}`` with it (``app.AppTemplate``) and the Python row builders
    use it: a list page escapes a few hundred values, and markupsafe's was ~6-11 % of one (issue 18).
    ``tests/test_markup.py`` compares the two over every kind of value."""
    kind = type(s)
    if kind is str:
        return _new_str(Markup, _escape_inner(s))
    if kind is Markup:
        return s  # type: ignore[no-any-return]
    if hasattr(s, "__html__"):
        return Markup(s.__html__())
    return _new_str(Markup, _escape_inner(str(s)))


def trusted(html: str, /) -> Markup:
    """HTML this app built from escaped values, as Markup, without ``Markup.__new__`` (a Python-level
    call; a search marks 25 lines, issue 18). Never for text from outside: escape() that."""
    return _new_str(Markup, html)


def icon(name: str, label: Any = None) -> Markup:
    """An icon from the sprite in _icons.html: decorative, or with ``label`` an image with a name."""
    if label:
        return Markup('<svg role="img" aria-label="%s" focusable="false"><use href="#i-%s"/></svg>') % (label, name)
    return Markup('<svg aria-hidden="true" focusable="false"><use href="#i-%s"/></svg>') % (name,)


@cache
def icon_sprite() -> Markup:
    """The SVG sprite every page carries (templates/_icons.html, static HTML): read once."""
    env = current_app.jinja_env
    source = env.loader.get_source(env, "_icons.html")[0]  # type: ignore[union-attr]
    return Markup(source[:-1] if source.endswith("\n") else source)  # Jinja drops one final newline too


def flashes() -> Markup:
    """The flashed messages (once templates/_flashes.html; an include costs a context copy)."""
    from flask import get_flashed_messages

    found: list[tuple[str, Any]] = get_flashed_messages(with_categories=True)  # type: ignore[assignment]
    out = [
        Markup('<div class="notice %s" role="%s">%s</div>\n')
        % ("notice-error" if level == "error" else "", "alert" if level == "error" else "status", message)
        for level, message in found
    ]
    return Markup("").join(out)


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
    from glyphoxa_htmx.core.cookies import csrf_token

    return Markup('<input type="hidden" name="csrf_token" value="%s">') % (csrf_token(),)


def spinner() -> Markup:
    return _SPINNER


def char_counter() -> Markup:
    """Character count under a textarea (Alpine ``counter`` on the .field, x-ref="text" and
    x-on:input="count" on the textarea). Nothing without JavaScript: maxlength still holds."""
    return _COUNTER


_ID_MARKER = "gxIdUrlMarker7q"  # letters only: url_for leaves it as it is


def id_url(endpoint: str, arg: str, **fixed: Any) -> Callable[[Any], str]:
    """``url_for(endpoint, **fixed, <arg>=value)`` for every row of a list. The URL is built once
    and each row's value goes in through the rule's own converter, so every result is url_for's,
    character for character (ids the gateway minted included); a list of 50 rows otherwise builds
    250 URLs (issue 18). Anything unusual (several rules, URL defaults, the argument not in the
    path, no request) falls back to url_for per row."""
    parts = url_parts(endpoint, arg, **fixed)
    if parts is not None:
        head, to_url, tail = parts
        return lambda value: head + to_url(value) + tail
    return lambda value: url_for(endpoint, **{**fixed, arg: value})


def id_urls(arg: str, *endpoints: str) -> Callable[[Any], tuple[str, ...]]:
    """Several endpoints' URLs for one row's value of ``arg`` (a list row's edit, move and delete
    links): ``id_url``'s for each, with the value put through the converter once when every rule's
    converter is of the same class and method (a row of the cast: four URLs, one quoting)."""
    parts = [url_parts(endpoint, arg) for endpoint in endpoints]
    known = [p for p in parts if p is not None]
    methods = {(type(getattr(p[1], "__self__", None)), getattr(p[1], "__func__", None)) for p in known}
    if len(known) == len(parts) and len(methods) == 1 and None not in next(iter(methods)):
        to_url = known[0][1]
        around = [(head, tail) for head, _to_url, tail in known]

        def urls(value: Any) -> tuple[str, ...]:
            quoted = to_url(value)
            return tuple(head + quoted + tail for head, tail in around)

        return urls
    singles = [id_url(endpoint, arg) for endpoint in endpoints]
    return lambda value: tuple(one(value) for one in singles)


MAX_URL_SHAPES = 4096


def url_parts(endpoint: str, arg: str, **fixed: Any) -> tuple[str, Callable[[Any], str], str] | None:
    """``(head, to_url, tail)`` with ``url_for(endpoint, **fixed, <arg>=v) == head + to_url(v) +
    tail`` for every ``v``: the endpoint has one rule, ``arg`` is in its path (``to_url`` is that
    argument's converter), no URL defaults apply and there is a request. Else None. Kept per app,
    endpoint, argument, fixed values and script root (a list's helpers and templates' url_for ask
    on every page; splitting costs a url_for, ~8 µs)."""
    ctx = _cv_request.get(None)
    if ctx is None:
        return None
    app = ctx.app
    try:
        key: Any = (endpoint, arg, tuple(sorted(fixed.items())), ctx.request.script_root)
        hash(key)
    except TypeError:  # an unhashable fixed value: worked out each time
        key = None
    shapes: Memo[Any, Any] | None = app.extensions.get("gx_url_shapes")
    if shapes is None:
        shapes = app.extensions.setdefault("gx_url_shapes", Memo(MAX_URL_SHAPES))
    if key is not None and key in shapes:
        known: tuple[str, Callable[[Any], str], str] | None = shapes[key]
        return known
    parts = _split_url(app, endpoint, arg, fixed)
    if key is not None:
        shapes.keep(key, parts)
    return parts


def _split_url(
    app: Any, endpoint: str, arg: str, fixed: dict[str, Any]
) -> tuple[str, Callable[[Any], str], str] | None:
    rules = list(app.url_map.iter_rules(endpoint))
    converter = getattr(rules[0], "_converters", {}).get(arg) if len(rules) == 1 else None
    if converter is not None and not app.url_default_functions:
        values: dict[str, Any] = {**fixed, arg: _ID_MARKER}
        url = url_for(endpoint, **values)
        if url.count(_ID_MARKER) == 1:
            head, tail = url.split(_ID_MARKER)
            return head, converter.to_url, tail
    return None


# The usage page and the operators' dashboard draw 4-8 bar charts of 12 bars: as a macro, with two
# filters and nine values per bar, ~0.1 ms a chart (issue 18). Geometry from services.usage.chart.
_CHART_HEAD = (
    '<svg class="chart" viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-{key}-t" id="chart-{key}">\n'
    '  <title id="chart-{key}-t">{title}</title>\n'
    '  <line class="axis" x1="0" x2="{width}" y1="{baseline}" y2="{baseline}"></line>\n'
)
_CHART_BAR = (
    '  <rect class="bar" x="{x}" y="{y}" width="{w}" height="{h}"><title>{month}: {value}</title></rect>\n'
    '  <text x="{tx}" y="{ty}" text-anchor="middle">{label}</text>\n'
)


def svg_chart(key: Any, label: Any, c: Mapping[str, Any], span: Any = None) -> Markup:
    """A server-rendered SVG bar chart (no script, no style attributes); every value escaped."""

    from glyphoxa_htmx.core.i18n import _month_filter, markup_gettext, number_text

    title = markup_gettext(
        "%(label)s, %(span)s (largest %(max)s)",
        label=label,
        span=span or markup_gettext("last 12 months"),
        max=number_text(c["max"]),
    )
    out = [
        _CHART_HEAD.format(
            width=escape(c["width"]),
            height=escape(c["height"]),
            key=escape(key),
            title=title,
            baseline=escape(c["baseline"]),
        )
    ]
    ty = escape(c["height"] - 4)
    for b in c["bars"]:
        out.append(
            _CHART_BAR.format(
                x=escape(b["x"]),
                y=escape(b["y"]),
                w=escape(b["w"]),
                h=escape(b["h"]),
                month=escape(_month_filter(b["period"])),
                value=escape(number_text(b["value"])),
                tx=escape(b["tx"]),
                ty=ty,
                label=escape(b["label"]),
            )
        )
    out.append("</svg>")
    return Markup("".join(out))


# A list field's editor (the NPC editor has four, the campaign form one): as a macro ~10 µs a call
# (issue 18). Without JavaScript a textarea, one item per line; with it the Alpine ``listEditor``
# island (npc-editor.js) shows one input per item and keeps the hidden textarea in step.
_LIST_EDITOR = (
    '<textarea id="{name}" name="{name}" rows="{rows}" {maxlength} x-ref="source" x-bind:hidden="enhanced" {invalid}>'
    "{text}</textarea>\n"
    '<div class="list-editor" hidden x-bind:hidden="plain">\n'
    '  <ul role="list">\n'
    '    <template x-for="(item, index) in items" x-bind:key="item.id">\n'
    '      <li class="row list-item" x-bind:data-item="item.id">\n'
    '        <input type="text" class="grow" autocomplete="off" x-bind:value="item.value"'
    ' x-bind:aria-label="itemLabel" x-on:input="edit" x-on:keydown.enter.prevent="noop">\n'
    '        <button type="button" class="btn btn-small icon-btn" aria-label="{up}" data-up'
    ' x-bind:disabled="isFirst" x-on:click="up">↑</button>\n'
    '        <button type="button" class="btn btn-small icon-btn" aria-label="{down}" data-down'
    ' x-bind:disabled="isLast" x-on:click="down">↓</button>\n'
    '        <button type="button" class="btn btn-small icon-btn btn-danger" aria-label="{remove}"'
    ' x-on:click="remove">×</button>\n'
    "      </li>\n"
    "    </template>\n"
    "  </ul>\n"
    '  <div class="row list-add">\n'
    '    <input type="text" id="{name}-new" placeholder="{placeholder}" class="grow" autocomplete="off" x-ref="adder"'
    ' x-bind:value="pending" x-on:input="typePending" x-on:keydown.enter.prevent="add" {invalid}>\n'
    '    <button type="button" class="btn btn-small" x-on:click="add">{add}</button>\n'
    "  </div>\n"
    "</div>"
)


def list_editor(
    name: Any, item_label: Any, items: Any, errors: Mapping[str, Any] | None, rows: Any = 4, maxlength: Any = None
) -> Markup:
    """A list field's editor: put x-data="listEditor" on the enclosing .field element and
    x-bind:for="labelFor" on its label. ``items`` are joined one per line as Jinja's ``join`` does
    (each as ``str``; a string that isn't a list shows as it is stored, one character a line)."""

    from glyphoxa_htmx.core.i18n import markup_gettext

    values = [item if hasattr(item, "__html__") else str(item) for item in items]
    if any(hasattr(item, "__html__") for item in values):  # (as Jinja's join: Markup stays as it is)
        text = Markup("\n").join(values)
    else:
        text = escape("\n".join(values))
    return Markup(
        _LIST_EDITOR.format(
            name=escape(name),
            rows=escape(rows),
            maxlength=Markup('maxlength="%s"') % (maxlength,) if maxlength else "",
            invalid=invalid(errors, name),
            text=text,
            up=markup_gettext("Move up"),
            down=markup_gettext("Move down"),
            remove=markup_gettext("Remove"),
            placeholder=markup_gettext("Add %(item)s…", item=item_label),
            add=markup_gettext("Add"),
        )
    )
