"""core/markup.py replaced the hottest Jinja macros of _macros.html: it must write their HTML,
character for character, escaping whatever it is given. The old macros are kept here as the
reference."""

from __future__ import annotations

from pathlib import Path

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


OLD_CHART = """{% macro svg_chart(key, label, c, span=none) -%}
<svg class="chart" viewBox="0 0 {{ c.width }} {{ c.height }}" role="img" aria-labelledby="chart-{{ key }}-t" id="chart-{{ key }}">
  <title id="chart-{{ key }}-t">{{ _("%(label)s, %(span)s (largest %(max)s)", label=label, span=span or _("last 12 months"), max=c.max|number) }}</title>
  <line class="axis" x1="0" x2="{{ c.width }}" y1="{{ c.baseline }}" y2="{{ c.baseline }}"></line>
  {% for b in c.bars %}
  <rect class="bar" x="{{ b.x }}" y="{{ b.y }}" width="{{ b.w }}" height="{{ b.h }}"><title>{{ b.period|month }}: {{ b.value|number }}</title></rect>
  <text x="{{ b.tx }}" y="{{ c.height - 4 }}" text-anchor="middle">{{ b.label }}</text>
  {% endfor %}
</svg>
{%- endmacro %}"""


def test_svg_chart_writes_the_old_macros_html(app):
    """The usage and operator charts (once a macro in _charts.html): same SVG in both languages,
    for real geometry, an empty chart, a hostile key, label and span, and large decimal values."""
    from datetime import date

    from glyphoxa_htmx.services.usage import Month, chart

    months = [Month(period=date(2026, m, 1), values={"v": v}) for m, v in enumerate([0, 3, 1234567.5, 7, 0.25], 1)]
    calls = "{{ svg_chart(key, label, c) }}|{{ svg_chart(key, label, c, span) }}"
    for lang in ("en", "de"):
        with app.test_request_context("/", headers={"Accept-Language": lang}):
            for key, label, c, span in [
                ("session_hours", "Session hours", chart(months, "v"), None),
                ('x"><script>', "<b>Label</b> & 'q'", chart(months[:1], "v", width=100, height=40), "<i>span</i>"),
                ("zeros", Markup("<em>safe</em>"), chart([Month(date(2026, 1, 1), {"v": 0})], "v"), "x"),
            ]:
                values = dict(key=key, label=label, c=c, span=span)
                old = render_template_string(OLD_CHART + calls, **values)
                new = render_template_string('{% from "_charts.html" import svg_chart %}' + calls, **values)
                assert new == old, (lang, key)
                assert "<script>" not in new and "<b>Label" not in new and "<i>span" not in new


def test_template_context_calls_like_jinjas_own(app):
    """app.TemplateContext.call takes a short path for plain functions, functools.cache wrappers
    and builtins: every kind of callable must get what Jinja's own Context.call gives it (the
    context, eval context or environment passed in where asked for, loop variables seen by a
    pass_context function, a StopIteration turned into undefined)."""
    import functools

    from jinja2 import Environment, pass_context, pass_environment, pass_eval_context

    from glyphoxa_htmx.app import TemplateContext

    def plain(a, b="-"):
        return f"plain {a} {b}"

    @pass_context
    def ctx_fn(context, a):
        return f"ctx {a} {context.get('x')} {context.get('item')}"

    @pass_eval_context
    def eval_fn(eval_ctx, a):
        return f"eval {a} {eval_ctx.autoescape}"

    @pass_environment
    def env_fn(environment, a):
        return f"env {a} {type(environment).__name__}"

    @functools.cache
    def cached(a):
        return f"cached {a}"

    cached_ctx = functools.cache(ctx_fn)  # update_wrapper copies jinja_pass_arg into the wrapper

    class Callable:
        @pass_context
        def __call__(self, context, a):
            return f"class {a} {context.get('x')}"

    def stops():
        raise StopIteration

    source = (
        "{% macro m(a) %}macro {{ a }}{% endmacro %}"
        "{{ plain(1) }}|{{ plain(1, b=2) }}|{{ ctx_fn(1) }}|{{ eval_fn(1) }}|{{ env_fn(1) }}|"
        "{{ cached(1) }}|{{ cached_ctx(1) }}|{{ callable(1) }}|{{ m(1) }}|{{ d.get('k') }}|"
        "{{ stops() is undefined }}|{% for item in [7] %}{{ ctx_fn(2) }}{{ plain(item) }}{% endfor %}|"
        "{{ ''.join(['a', 'b']) }}|{{ 'x'.upper() }}"
    )
    names = dict(
        plain=plain,
        ctx_fn=ctx_fn,
        eval_fn=eval_fn,
        env_fn=env_fn,
        cached=cached,
        cached_ctx=cached_ctx,
        callable=Callable(),
        stops=stops,
        d={"k": "v"},
        x="X",
    )
    ours = Environment(autoescape=True)
    ours.context_class = TemplateContext
    jinjas = Environment(autoescape=True)
    got = ours.from_string(source).render(**names)
    assert got == jinjas.from_string(source).render(**names)
    assert "ctx 2 X" in got and "class 1 X" in got and "eval 1 True" in got and "|True|" in got
    assert app.jinja_env.context_class is TemplateContext


def test_escape_gives_markupsafes_value_for_every_kind_of_value(app):
    """core/markup.escape is markupsafe.escape without its Python-level Markup construction: the
    same text and type for text with and without special characters, Markup and its subclasses,
    objects with __html__, numbers, None, Jinja's undefined; and compiled templates (our
    environment's, so every page) escape with it, a macro's output passing through unchanged."""
    from jinja2 import ChainableUndefined, Undefined
    from markupsafe import escape as markupsafe_escape

    from glyphoxa_htmx.core import markup

    class Sub(Markup):
        pass

    class Html:
        def __html__(self):
            return "<b>as is</b>"

    class Plain:
        def __str__(self):
            return "<i>'&\"</i>"

    values = [
        "",
        "Hollowmere",
        "<script>alert('x') & \"y\"</script>",
        "Ämber ☃ \u2028",
        Markup("<b>safe</b> &amp;"),
        Sub("<u>sub</u>"),
        Html(),
        Plain(),
        42,
        -1.5,
        True,
        None,
        Undefined(),
        ChainableUndefined(),
    ]
    for value in values:
        ours, theirs = markup.escape(value), markupsafe_escape(value)
        assert ours == theirs and type(ours) is type(theirs) is Markup, repr(value)

    template = app.jinja_env.from_string("{% macro m(a) %}<p>{{ a }}</p>{% endmacro %}{{ m(x) }}{{ x }}{{ y }}")
    assert template.root_render_func.__globals__["escape"] is markup.escape
    rendered = template.render(x="<a href='#'>&</a>", y=Markup("<br>"))
    assert rendered == "<p>&lt;a href=&#39;#&#39;&gt;&amp;&lt;/a&gt;</p>&lt;a href=&#39;#&#39;&gt;&amp;&lt;/a&gt;<br>"
    with app.test_request_context():
        page = app.jinja_env.get_template("base.html")
    assert page.root_render_func.__globals__["escape"] is markup.escape


def test_a_template_context_has_the_globals_jinjas_chainmap_gives(app):
    """AppTemplate.new_context hands Jinja the template's globals flattened at that moment: a global
    the environment gains after the template was loaded is seen, the template's own globals win
    over the environment's, render variables over both, and an imported macro module sees them."""
    env = app.jinja_env
    source = (
        "{% from '_macros.html' import field_error %}"
        "{{ late }}|{{ mine }}|{{ shadowed }}|{{ field_error({'a': late}, 'a') }}|{{ passed }}"
    )
    with app.test_request_context("/"):
        template = env.from_string(source, globals={"mine": "own", "shadowed": "template's"})
        env.globals["late"], env.globals["shadowed"] = "added later", "environment's"
        try:
            got = template.render(passed="<var>")
            assert template.render(passed="<var>", mine="var").split("|")[1] == "var"
        finally:
            del env.globals["late"], env.globals["shadowed"]
        assert "late" not in template.new_context().parent  # (flattened anew for each context)
    assert got == 'added later|own|template&#39;s|<p class="error" id="a-error">added later</p>|&lt;var&gt;'


def test_warm_templates_compiles_every_template_before_requests(app, tmp_path):
    """wsgi.py compiles every template as a worker boots (not during its first users' requests);
    a template that doesn't compile stops the boot with the template's name."""
    import pytest
    from flask import Flask
    from jinja2 import TemplateSyntaxError

    from glyphoxa_htmx.app import warm_templates

    names = [n for n in app.jinja_env.list_templates() if n.endswith(".html")]
    assert type(app.jinja_env.cache) is dict  # kept without eviction (TemplateEnvironment.__init__)
    app.jinja_env.cache.clear()
    assert warm_templates(app) == len(names) > 40
    # Jinja's cache keys are (loader ref, name); ours add the catalogue each language compiles for.
    for lang in ("en", "de"):
        with app.test_request_context(headers={"Accept-Language": lang}):
            from glyphoxa_htmx.core.i18n import translations

            cached = {key[1] for key in app.jinja_env.cache if key[2:] == (translations(),)}
        assert set(names) <= cached, lang

    (tmp_path / "fine.html").write_text("{{ 1 + 1 }}")
    (tmp_path / "broken.html").write_text("{% if %}")
    with pytest.raises(TemplateSyntaxError, match="broken.html|Expected an expression"):
        warm_templates(Flask("probe", template_folder=str(tmp_path)))
    wsgi = (Path(__file__).resolve().parent.parent / "wsgi.py").read_text()
    assert "warm_templates(app)" in wsgi


OLD_SESSION_ROWS = """{% from "_macros.html" import when %}
{% set detail_url = id_url('sessions.detail', 'session_id') %}
{% set l_campaign, l_started, l_duration, l_state, l_error = _("Campaign"), _("Started"), _("Duration"), _("State"), _("Error") %}
  {% for s in result.rows %}
  <tr>
    <td data-label="{{ l_campaign }}"><a href="{{ detail_url(s.id) }}">{{ result.campaign_names.get(s.campaign_id) or s.campaign_id or _("Default campaign") }}</a></td>
    <td data-label="Discord" class="small wrap-anywhere">{{ guild_names.get(s.guild_id) or s.guild_id }}<br><span class="mono muted">#{{ s.channel_id }}</span></td>
    <td data-label="{{ l_started }}">{{ when(s.started_at) }}</td>
    <td data-label="{{ l_duration }}">{{ duration(s)|duration }}</td>
    <td data-label="{{ l_state }}">{{ session_state_badge(s.state) }}</td>
    <td data-label="{{ l_error if s.error else '' }}" class="small">{% if s.error %}<span class="error-text">{{ s.error }}</span>{% endif %}</td>
  </tr>
  {% endfor %}
"""


def test_session_rows_write_the_old_loops_html(app):
    """The sessions table's rows (once a loop in sessions/index.html): the same HTML in both
    languages for rows as the gateway shapes them: ids we didn't mint, a campaign without a name
    or without an id, a guild we don't know, an unknown state, hostile text in every field."""
    from collections import namedtuple
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from glyphoxa_htmx.services import sessions as svc

    Row = namedtuple("Row", "id campaign_id guild_id channel_id started_at ended_at state error")
    start = datetime(2026, 11, 3, 19, 30, tzinfo=UTC)
    rows = [
        Row("s-1", "c1", "g1", "123", start, start + timedelta(hours=3, minutes=5), "ended", None),
        Row('s"<2>&', 'c"<x>', "g-unknown", "<ch>", start, start + timedelta(seconds=42), "weird<b>", "boom <i>&"),
        Row("3", None, None, None, start - timedelta(days=400), start, "ended", ""),
        Row("sess 4/é", "c-no-name", "g2", "9", start, start + timedelta(minutes=7), "pending", "x"),
    ]
    context = dict(
        result=SimpleNamespace(rows=rows, campaign_names={"c1": "Salt <Road>", 'c"<x>': ""}),
        guild_names={"g1": "Guild & <Co>", "g2": "Two"},
        duration=svc.duration,
    )
    call = """{{ session_rows(result.rows, result.campaign_names, guild_names, id_url('sessions.detail', 'session_id')) }}"""
    from glyphoxa_htmx.web import sessions as web_sessions

    web_sessions._ended_rows.clear()
    for lang in ("en", "de", "en"):  # (the second English rendering is from the kept rows)
        with app.test_request_context("/", headers={"Accept-Language": lang}):
            old = render_template_string(OLD_SESSION_ROWS, **context)
            new = render_template_string(call, **context)
            again = render_template_string(call, **context)
        assert new == old == again, lang
        assert new.count("<tr>") == 4 and ("Kampagne" in new) == (lang == "de")
        assert "<i>" not in new and "<b>" not in new and "<Road>" not in new and "<ch>" not in new
    assert len(web_sessions._ended_rows) == 8  # four ended rows in two languages
    # What else a row shows is in its key: a renamed campaign, another URL prefix, a running session.
    running = Row("s-5", "c1", "g1", "5", start, None, "active", None)
    context["result"] = SimpleNamespace(rows=[*rows, running], campaign_names={"c1": "Renamed <R>", 'c"<x>': ""})
    for base in ("", "/prefix"):
        with app.test_request_context("/", base_url=f"http://localhost{base}"):
            old = render_template_string(OLD_SESSION_ROWS, **context)
            new = render_template_string(call, **context)
        assert new == old and new.count("Renamed &lt;R&gt;") == 2 and new.count(f'href="{base}/sessions/') == 5
    # the renamed campaign's row anew, all four under the prefix; the running session's never
    assert len(web_sessions._ended_rows) == 8 + 1 + 4


OLD_CAST_ROWS = (
    """{% from "_macros.html" import csrf_field, icon %}
{% set edit_url, move_url, duplicate_url, delete_url = id_url('npcs.edit', 'npc_id'), id_url('npcs.move', 'npc_id'), id_url('npcs.duplicate', 'npc_id'), id_url('npcs.confirm_delete', 'npc_id') %}
{% set t_drag, t_gm, t_addressed_title, t_addressed, t_engine, t_tier, t_voice, t_duplicate = _('Drag to reorder'), _("GM helper"), _('Speaks only when addressed by name'), _("Addressed only"), _('Engine'), _('Budget tier'), _('Voice'), _("Duplicate") %}
{% set size = cast.size|number %}
"""
    + """  {% for m in cast.items %}
  {% set npc = m.npc %}
  <li class="cast-item" id="npc-{{ npc.id }}" data-id="{{ npc.id }}">
    {% if manage %}<span class="drag-handle" title="{{ t_drag }}" aria-hidden="true">⠿</span>{% endif %}
    <span class="pos" title="{{ _('Position %(pos)s of %(size)s', pos=m.position|number, size=size) }}">{{ m.position|number }}</span>
    <div class="who">
      <h3><a href="{{ edit_url(npc.id) }}">{{ npc.name }}</a></h3>
      {% if npc.personality %}<p class="muted small personality">{{ npc.personality|truncate(160) }}</p>{% endif %}
      <p class="badges">
        {% if npc.gm_helper %}<span class="badge badge-accent">{{ t_gm }}</span>{% endif %}
        {% if npc.address_only %}<span class="badge" title="{{ t_addressed_title }}">{{ t_addressed }}</span>{% endif %}
        <span class="badge" title="{{ t_engine }}">{{ npc.engine|engine_label }}</span>
        <span class="badge" title="{{ t_tier }}">{{ _("%(tier)s tier", tier=npc.budget_tier|tier_label) }}</span>
        {% if npc.voice and npc.voice.get('voice_id') %}<span class="badge" title="{{ t_voice }}">{{ mic }}{{ npc.voice.get('voice_id') }}</span>{% endif %}
      </p>
    </div>
    {% if manage %}
    <div class="item-actions">
      <form method="post" action="{{ move_url(npc.id) }}" hx-post="{{ move_url(npc.id) }}" hx-target="#cast" class="move">
        {{ csrf }}{{ kept }}
        <button class="btn btn-small icon-btn" type="submit" name="direction" value="up" data-move="up" aria-label="{{ _('Move %(name)s up', name=npc.name) }}" {% if m.position == 1 %}disabled{% endif %}><span aria-hidden="true">↑</span></button>
        <button class="btn btn-small icon-btn" type="submit" name="direction" value="down" data-move="down" aria-label="{{ _('Move %(name)s down', name=npc.name) }}" {% if m.position == cast.size %}disabled{% endif %}><span aria-hidden="true">↓</span></button>
      </form>
      <form method="post" action="{{ duplicate_url(npc.id) }}">
        {{ csrf }}<button class="btn btn-small" type="submit">{{ t_duplicate }}</button>
      </form>
      <a class="btn btn-small btn-danger" href="{{ delete_url(npc.id) }}">{{ _('Delete<span class="visually-hidden"> %(name)s</span>', name=npc.name) }}</a>
    </div>
    {% endif %}
  </li>
  {% endfor %}
"""
)


def test_cast_rows_write_the_old_loops_html(app):
    """A campaign's cast rows (once a loop in npcs/_cast.html): the same HTML in both languages,
    for the owner (move, duplicate, delete forms) and a viewer, with NPC rows as the gateway's
    tools write them: an id we didn't mint, an unknown engine and tier, no personality, a long one,
    a number as voice id, hostile text in every field; on a filtered second page."""
    from collections import namedtuple
    from types import SimpleNamespace

    from glyphoxa_htmx.services.npcs import CastMember

    Npc = namedtuple("Npc", "id name personality gm_helper address_only engine budget_tier voice")
    members = [
        CastMember(
            Npc("n1", "Mara", "A <sly> innkeeper & more", True, False, "cascaded", "fast", {"voice_id": "v1"}), 1
        ),
        CastMember(Npc('n"<2>', "<b>Bad</b>", "x" * 400, False, True, "warp_drive", "ultra_deep", {"voice_id": 7}), 2),
        CastMember(Npc("gw 3/é", "Öl & Salz", "", False, False, "s2s", "deep", None), 3),
        CastMember(Npc("n4", "Last", None, True, True, "", None, {"other": 1}), 1234),
    ]
    calls = "{{ cast_rows(cast, manage, csrf, kept, mic) }}"
    setup = '{% from "_macros.html" import csrf_field, icon %}{% set csrf, kept, mic = csrf_field(), Markup(kept), icon("mic") %}'
    for manage in (True, False):
        for lang in ("en", "de"):
            with app.test_request_context("/", headers={"Accept-Language": lang}):
                cast = SimpleNamespace(items=members, size=1234, q="<q>", page=2)
                values = dict(
                    cast=cast, manage=manage, kept='<input type="hidden" name="q" value="&lt;q&gt;">', Markup=Markup
                )
                old = render_template_string(
                    OLD_CAST_ROWS.replace("{{ csrf }}", "{{ csrf_field() }}")
                    .replace("{{ kept }}", "{{ kept|safe }}")
                    .replace("{{ mic }}", '{{ icon("mic") }}'),
                    **values,
                )
                new = render_template_string(setup + calls, **values)
                assert new == old, (manage, lang)
                assert "<b>Bad" not in new and "<sly>" not in new and "<2>" not in new
                assert new.count("<li") == 4 and new.count("data-move=") == (8 if manage else 0)
                assert ("Gründlich" in new) == (lang == "de")


OLD_SEARCH_GROUPS = """{% from "_macros.html" import when %}
{% set detail_url, transcript_url = id_url('sessions.detail', 'session_id'), id_url('sessions.transcript', 'session_id') %}
{% for group in result.groups %}
{% set day = group.session.started_at|date if group.session else none %}
{% set href = detail_url(group.session_id) if group.session else none %}
<section class="card search-group" aria-label="{{ _("Session %(label)s", label=day if group.session else group.session_id) }}">
  <h2 class="h3">
    {% if group.session %}<a href="{{ href }}">{{ campaign_names.get(group.session.campaign_id) or group.session.campaign_id or _("Default campaign") }} · {{ day }}</a>
    {% else %}{{ _('Session <span class="mono">%(id)s</span>', id=group.session_id[:8]) }}{% endif %}
  </h2>
  <ol class="hits">
  {% for hit in group.hits %}
    <li class="hit{% if hit.line.is_npc %} is-npc{% endif %} spk-{{ hit.line.colour }}">
      <a href="{{ url_for('sessions.transcript', session_id=group.session_id, around=hit.line.id, _anchor='line-%d' % hit.line.id) }}">
        <span class="speaker">{{ hit.line.speaker }}</span>{% if hit.line.is_npc %} <span class="badge badge-accent">NPC</span>{% endif %}
        <span class="small muted">{% if group.session %}{{ hit.line.timestamp|elapsed(group.session.started_at) }}{% else %}{{ when(hit.line.timestamp) }}{% endif %}</span>
      </a>
      <p class="hit-text">{{ hit.highlight }}</p>
    </li>
  {% endfor %}
  </ol>
</section>
{% endfor %}
"""


def test_search_groups_write_the_old_loops_html(app):
    """The search results' sections (once a loop in sessions/search.html): the same HTML in both
    languages for a session of the table (with and without a campaign name), one whose row is gone
    (labelled by id, hits dated), NPC and player lines, hostile text everywhere."""
    from datetime import UTC, datetime, timedelta
    from types import SimpleNamespace

    from glyphoxa_htmx.core.fulltext import from_headline as highlight
    from glyphoxa_htmx.services.transcripts import Line, SearchGroup, SearchHit, SearchSession

    start = datetime(2026, 11, 3, 19, 30, tzinfo=UTC)

    def hit(i, speaker, npc="", text="a \ue000<b>salt</b>\ue001 road", at=None):
        line = Line(i, "s", speaker, speaker, npc, text, at or start + timedelta(minutes=i))
        return SearchHit(line=line, highlight=highlight(text))

    odd_times = [  # the time since the start: a second short of an hour, before the start, days later
        hit(9, "Bob", at=start + timedelta(seconds=3599, microseconds=999_999)),
        hit(10, "Bob", at=start - timedelta(microseconds=1)),
        hit(11, "Bob", at=start + timedelta(days=2, seconds=7, microseconds=1)),
    ]

    groups = [
        SearchGroup(
            "s-1",
            SearchSession("s-1", "c1", start, None),
            "c1",
            [hit(1, "Bob"), hit(2, "<Mara>", npc="n1"), hit(7, "Bob"), hit(8, "<Mara>", npc="n1"), *odd_times],
        ),
        SearchGroup('s"<2>&', SearchSession('s"<2>&', 'c"<x>', start - timedelta(days=3)), 'c"<x>', [hit(3, "")]),
        SearchGroup('<gone>&"-session-id', None, "c9", [hit(4, "Öl & <i>", npc="n<2>"), hit(5, "x")]),
        SearchGroup("s-4", SearchSession("s-4", None, start), "", [hit(6, "y")]),
    ]
    names = {"c1": "Salt <Road>", 'c"<x>': ""}
    for lang in ("en", "de"):
        with app.test_request_context("/", headers={"Accept-Language": lang}):
            old = render_template_string(OLD_SEARCH_GROUPS, result=SimpleNamespace(groups=groups), campaign_names=names)
            new = render_template_string(
                "{{ search_groups(groups, campaign_names) }}", groups=groups, campaign_names=names
            )
        assert new == old, lang
        assert new.count("<section") == 4 and new.count("<li") == 11 and ("Sitzung" in new) == (lang == "de")
        assert all(f">{at}</span>" in new for at in ("0:59:59", "0:00:00", "48:00:07"))
        assert "<b>salt" not in new and "<Mara>" not in new and "<i>" not in new and "<Road>" not in new
        assert "<gone>" not in new


OLD_LIST_EDITOR = """{% macro list_editor(name, item_label, items, errors, rows=4, maxlength=None) -%}
<textarea id="{{ name }}" name="{{ name }}" rows="{{ rows }}" {% if maxlength %}maxlength="{{ maxlength }}"{% endif %} x-ref="source" x-bind:hidden="enhanced" {{ invalid(errors, name) }}>{{ items|join("\\n") }}</textarea>
<div class="list-editor" hidden x-bind:hidden="plain">
  <ul role="list">
    <template x-for="(item, index) in items" x-bind:key="item.id">
      <li class="row list-item" x-bind:data-item="item.id">
        <input type="text" class="grow" autocomplete="off" x-bind:value="item.value" x-bind:aria-label="itemLabel" x-on:input="edit" x-on:keydown.enter.prevent="noop">
        <button type="button" class="btn btn-small icon-btn" aria-label="{{ _('Move up') }}" data-up x-bind:disabled="isFirst" x-on:click="up">↑</button>
        <button type="button" class="btn btn-small icon-btn" aria-label="{{ _('Move down') }}" data-down x-bind:disabled="isLast" x-on:click="down">↓</button>
        <button type="button" class="btn btn-small icon-btn btn-danger" aria-label="{{ _('Remove') }}" x-on:click="remove">×</button>
      </li>
    </template>
  </ul>
  <div class="row list-add">
    <input type="text" id="{{ name }}-new" placeholder="{{ _('Add %(item)s…', item=item_label) }}" class="grow" autocomplete="off" x-ref="adder" x-bind:value="pending" x-on:input="typePending" x-on:keydown.enter.prevent="add" {{ invalid(errors, name) }}>
    <button type="button" class="btn btn-small" x-on:click="add">{{ _("Add") }}</button>
  </div>
</div>
{%- endmacro %}
"""

# npcs/form.html's macros before web/npcs.py npc_editor_fields (list_editor as above).
OLD_NPC_FIELDS = """{% macro reach(field) -%}
{% if field in forwarded %}<span class="reach reach-yes">{{ _("Sent to the NPC") }}</span>{% else %}<span class="reach reach-no" title="{{ _("Saved, but the voice gateway doesn't send this to the running NPC yet") }}">{{ _("Stored only") }}</span>{% endif %}
{%- endmacro %}
{% macro list_field(name, label, item, hint, rows=4) -%}
<div class="field" x-data="listEditor" data-item-label="{{ item }}">
  <label for="{{ name }}" x-bind:for="labelFor">{{ label }} {{ reach(name) }}</label>
  {{ list_editor(name, item, data[name], errors, rows) }}
  <p class="hint">{{ hint }}</p>
  {{ field_error(errors, name) }}
</div>
{%- endmacro %}
"""


def test_list_editor_and_the_npc_fields_write_the_old_macros_html(app):
    """The list editor (core/markup.py) and the NPC editor's reach/list_field (web/npcs.py), once
    macros: the same HTML in both languages, with items as others store them (numbers, a string
    where a list belongs, hostile text), with and without errors and maxlength."""
    calls = (
        "[{{ list_editor(name, label, items, errors) }}]"
        "[{{ list_editor(name, label, items, errors, 3, maxlength) }}]"
        "[{{ list_field(name, _('Knowledge scope'), _('knowledge scope'), hint) }}]"
        "[{{ list_field(name, label, label, hint, 3) }}][{{ reach(name) }}][{{ reach('name') }}][{{ reach('x') }}]"
    )
    cases = [
        ("knowledge_scope", "knowledge scope", ["the docks", "<b>smugglers</b> & 'co'"], {}, 500),
        ("tools", 'x"><script>', [7, 2.5, None, True], {"tools": "Too <many> tools"}, None),
        ('n"<1>', Markup("<em>ok</em>"), "a<b", {'n"<1>': Markup("<i>safe</i>")}, 0),
        ("behavior_rules", "Grüße", [], None, "12"),
    ]
    forwarded = {"name", "knowledge_scope"}
    for name, label, items, errors, maxlength in cases:
        values = dict(
            name=name,
            label=label,
            items=items,
            errors=errors,
            maxlength=maxlength,
            hint='One per line, e.g. "<x>"',
            data={name: items},
            forwarded=forwarded,
        )
        for lang in ("en", "de"):
            with app.test_request_context("/", headers={"Accept-Language": lang}):
                old = render_template_string(
                    '{% from "_macros.html" import invalid, field_error %}' + OLD_LIST_EDITOR + OLD_NPC_FIELDS + calls,
                    **values,
                )
                new = render_template_string(
                    '{% from "_macros.html" import list_editor %}'
                    "{% set reach, list_field = npc_editor_fields(forwarded, data, errors) %}" + calls,
                    **values,
                )
                assert new == old, (name, lang)
                assert "<script>" not in new and "<b>smugglers" not in new and "<many>" not in new
                assert ("Nur gespeichert" in new) == (lang == "de")
