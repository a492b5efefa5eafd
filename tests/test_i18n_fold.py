"""Translations compiled into templates (``i18n.fold_gettext``, issue 18): every page a signed-in
owner, an operator and a visitor can GET reads exactly the same, in English and in German,
whether its constant strings were translated while the template compiled or at render time."""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from glyphoxa_htmx.core.i18n import fold_gettext
from tests.conftest import Browser
from tests.test_isolation import _operator_without_a_table, _url, demo  # noqa: F401 (the fixture)

# Per-request values that differ between any two renders of a page, folded or not.
VOLATILE = [
    re.compile(r'(nonce=)"[^"]*"'),
    re.compile(r'(csrf[-_]token"? (?:value|content)=|"X-CSRFToken": )"[^"]*"', re.I),
    re.compile(r"\b(sig|signature|exp|expires|token)=[A-Za-z0-9_\-.%]+"),
]


def _normal(html: str) -> str:
    for rx in VOLATILE:
        html = rx.sub(r"\1…", html)
    return html


def _both_ways(app, browser: Browser, url: str, lang: str, htmx: bool = False) -> tuple[int, str, str]:
    env = app.jinja_env
    pages = []
    for fold in (True, False):
        env.fold_translations = fold
        env.cache.clear()
        resp = browser.get(url, htmx=htmx, headers={"Accept-Language": lang})
        body = resp.get_data()  # read whole (a streamed download closes in its own context)
        html = body.decode() if resp.mimetype == "text/html" else ""
        pages.append((resp.status_code, _normal(html)))
    env.fold_translations = True
    env.cache.clear()
    assert pages[0][0] == pages[1][0], url
    return pages[0][0], pages[0][1], pages[1][1]


def _get_urls(app, ids) -> list[str]:
    urls = []
    for rule in app.url_map.iter_rules():
        if "GET" not in (rule.methods or ()) or rule.websocket or rule.endpoint == "static":
            continue
        if rule.endpoint.startswith("auth.") or rule.endpoint in {"ops.metrics"}:
            continue  # sign-in flows redirect out; /metrics is not a template
        try:
            urls.append(_url(rule, ids))
        except AssertionError:
            continue  # a parameter this walk can't fill
    return sorted(set(urls))


def test_every_page_reads_the_same_folded_or_not(app, demo):  # noqa: F811 (the fixture)
    owner = demo["owner_browser"]
    owner.get("/dashboard")  # shows (and so clears) the flash messages the fixture's posts left
    compared, differing = 0, []
    for lang in ("en", "de"):
        for url in _get_urls(app, demo):
            for htmx in (False, True):  # the full page, and the block an htmx request gets
                status, folded, plain = _both_ways(app, owner, url, lang, htmx)
                if "<" in folded:  # any HTML answer: pages, fragments, error pages
                    compared += 1
                    if folded != plain:
                        differing.append(f"{lang} {url}{' (htmx)' if htmx else ''} {status}")
                        diff = difflib.unified_diff(plain.splitlines(), folded.splitlines(), lineterm="", n=0)
                        differing += list(diff)[2:8]
        for url in ("/admin", "/admin/tenants", "/admin/users"):
            status, folded, plain = _both_ways(app, _operator_without_a_table(app), url, lang)
            compared += status == 200
            if folded != plain:
                differing.append(f"{lang} operator {url}")
        for url in ("/", "/auth/signin", "/pricing"):
            status, folded, plain = _both_ways(app, Browser(app), url, lang)
            compared += status == 200
            if folded != plain:
                differing.append(f"{lang} visitor {url}")
    assert not differing, differing
    assert compared > 120


def test_each_language_gets_its_own_compiled_copy(app, as_role):
    """One template, asked in turn in English, German and English again (and German under
    force_locale inside an English request, as e-mails are): each gets its own language, and the
    cache holds one compiled copy per catalogue."""
    from flask_babel import force_locale

    dm = as_role("dm")
    pages = [
        dm.get("/campaigns", headers={"Accept-Language": lang}).get_data(as_text=True) for lang in ("en", "de", "en")
    ]
    assert "New campaign" in pages[0] and "New campaign" in pages[2]
    assert "Neue Kampagne" in pages[1] and "New campaign" not in pages[1]
    env = app.jinja_env
    with app.test_request_context(headers={"Accept-Language": "en"}):
        english = env.get_template("_macros.html")
        with force_locale("de"):
            german = env.get_template("_macros.html")
        assert english is not german
        assert env.get_template("_macros.html") is english
    copies = [key for key in env.cache if key[1] == "_macros.html"]
    assert len(copies) >= 2


def test_a_template_that_binds_the_name_itself_is_left_as_written(app):
    """``_`` set, looped over, taken as a macro argument or imported in a template is that
    template's own: nothing of it is folded, and the global is still called elsewhere."""
    from jinja2 import nodes

    env = app.jinja_env
    with app.test_request_context(headers={"Accept-Language": "de"}):
        from glyphoxa_htmx.core.i18n import translations

        catalogue = translations()
        for source in (
            "{% set _ = x %}{{ _('Language') }}",
            "{% for _ in [1] %}{% endfor %}{{ _('Language') }}",
            "{% macro m(_) %}{{ _('Language') }}{% endmacro %}",
            "{% from 'x.html' import y as _ %}{{ _('Language') }}",
            "{% import 'x.html' as gettext %}{{ _('Language') }}",
        ):
            tree = fold_gettext(env.parse(source), catalogue, env.globals)
            assert list(tree.find_all(nodes.Call)), source
        folded = fold_gettext(env.parse("{{ _('Language') }}|{{ pgettext('verb', 'Link') }}"), catalogue, env.globals)
        assert not list(folded.find_all(nodes.Call))
        # Another function under the name (an app that replaced it): called at render time.
        other = dict(env.globals, _=lambda s: s)
        assert list(fold_gettext(env.parse("{{ _('Language') }}"), catalogue, other).find_all(nodes.Call))


@pytest.mark.parametrize(
    "lang,expected", [("en", "Language|&lt;b&gt;!|100%|Link"), ("de", "Sprache|&lt;b&gt;!|100%|Verknüpfen")]
)
def test_folded_strings_keep_gettexts_semantics(app, tmp_path, lang, expected):
    """Placeholders escaped, "%%" a percent sign, pgettext's context: as the render-time call does
    (test_i18n), now compiled into a loaded template."""
    from flask import render_template

    (tmp_path / "fold_probe.html").write_text(
        "{{ _('Language') }}|{{ _('%(x)s!', x='<b>') }}|{{ _('100%%') }}|{{ pgettext('verb', 'Link') }}"
    )
    loader = app.jinja_env.loader
    from jinja2 import ChoiceLoader, FileSystemLoader

    app.jinja_env.loader = ChoiceLoader([FileSystemLoader(str(tmp_path)), loader])
    try:
        with app.test_request_context(headers={"Accept-Language": lang}):
            assert render_template("fold_probe.html") == expected
            key = next(k for k in app.jinja_env.cache if k[1] == "fold_probe.html")
            assert len(key) == 3  # compiled for this catalogue (folded), not the plain copy
    finally:
        app.jinja_env.loader = loader
        app.jinja_env.cache.clear()


def test_folding_keeps_markup_where_jinja_would_evaluate_it_at_compile_time(app, tmp_path):
    """A folded string joined with ``~`` (Jinja's compile-time join drops Markup) or given to a
    filter or test (run once, at compile time) keeps its call: the same HTML as unfolded, and a
    filter that reads the request still runs per render."""
    from flask import render_template
    from jinja2 import ChoiceLoader, FileSystemLoader

    (tmp_path / "fold_edges.html").write_text(
        "{{ _('Type <strong>delete</strong> to confirm') ~ ':' }}|{{ 'x' ~ _(\"Don't\") }}|"
        "{% set t = _('a & b') ~ '!' %}{{ t }}|{{ _('Language')|upper }}|{{ _('Language')|probe }}|"
        "{{ 'yes' if _('Language') is string else 'no' }}|{{ (_('Language') ~ '')|length }}"
    )
    seen = []

    def probe(value):  # a filter that reads the request
        from flask import request

        seen.append(request.path)
        return f"{value}@{request.path}"

    loader = app.jinja_env.loader
    app.jinja_env.loader = ChoiceLoader([FileSystemLoader(str(tmp_path)), loader])
    app.jinja_env.filters["probe"] = probe
    try:
        outputs = []
        for fold in (True, False):
            app.jinja_env.fold_translations = fold
            app.jinja_env.cache.clear()
            for path in ("/one", "/two"):
                with app.test_request_context(path, headers={"Accept-Language": "de"}):
                    outputs.append(render_template("fold_edges.html"))
        assert outputs[0] == outputs[2] and outputs[1] == outputs[3]
        assert "<strong>delete</strong>" in outputs[0] and "&lt;strong" not in outputs[0]
        assert "Sprache@/one" in outputs[0] and "Sprache@/two" in outputs[1]
    finally:
        app.jinja_env.loader = loader
        del app.jinja_env.filters["probe"]
        app.jinja_env.fold_translations = True
        app.jinja_env.cache.clear()


def test_a_render_cant_bring_its_own_gettext(app):
    """The compiled text would ignore a ``_`` given to one render (an argument or a context
    processor): refused loudly, not shown in the wrong words."""
    from flask import render_template

    with app.test_request_context("/"):
        with pytest.raises(TypeError, match="can't be given its own '_'"):
            render_template("errors/error.html", _=lambda s: s.upper(), status=404, message="x", title="x")


def test_no_template_binds_the_folded_names():
    """Folding checks the template it compiles; a ``_`` set in a template that others extend or
    include would reach them at render time, past that check. So no template binds one."""
    from jinja2 import Environment, FileSystemLoader

    from glyphoxa_htmx.core.i18n import folded_names_bound

    root = Path(__file__).resolve().parent.parent / "templates"
    env = Environment(loader=FileSystemLoader(str(root)), extensions=["jinja2.ext.i18n"])
    bound = {}
    for name in env.list_templates(extensions=["html"]):
        found = folded_names_bound(env.parse(env.loader.get_source(env, name)[0]))
        if found:
            bound[name] = found
    assert not bound, bound
    # The finder sees each kind of binding (else the scan above could pass by seeing nothing).
    for source, names in (
        ("{% set _ = 1 %}{% for gettext in x %}{% endfor %}", ["_", "gettext"]),
        (
            "{% macro m(pgettext) %}{% endmacro %}{% import 'a' as _ %}{% from 'b' import c as gettext %}",
            ["_", "gettext", "pgettext"],
        ),
    ):
        assert sorted(folded_names_bound(env.parse(source))) == names, source
