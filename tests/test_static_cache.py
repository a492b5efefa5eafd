"""Caching of static files and pages: a static URL carrying the file's current content hash
(`?v=`, made by the `asset()` template helper) is cached forever (`immutable`); a static URL
without it, or with a stale hash, must be revalidated; pages are never cached without asking."""

from __future__ import annotations

import re

from tests.conftest import soup


def _asset_urls(page) -> list[str]:
    doc = soup(page)
    urls = [t["href"] for t in doc.select("link[href^='/static/']")]
    urls += [t["src"] for t in doc.select("script[src^='/static/']")]
    return urls


def test_hashed_static_urls_are_immutable(client):
    page = client.get("/auth/signin")
    assert page.status_code == 200
    urls = _asset_urls(page)
    assert urls and all(re.search(r"[?&]v=[0-9a-f]{10}\b", u) for u in urls), urls
    for url in urls:
        resp = client.get(url)
        assert resp.status_code == 200, url
        cc = resp.headers["Cache-Control"]
        assert "immutable" in cc and "max-age=31536000" in cc and "public" in cc, (url, cc)
        assert "no-cache" not in cc, (url, cc)


def test_static_without_or_with_stale_hash_revalidates(client):
    page = client.get("/auth/signin")
    url = next(u for u in _asset_urls(page) if "app.css" in u)
    bare = url.split("?")[0]
    for candidate in (bare, bare + "?v=0000000000", bare + "?v="):
        resp = client.get(candidate)
        assert resp.status_code == 200, candidate
        cc = resp.headers["Cache-Control"]
        assert "immutable" not in cc and "max-age=31536000" not in cc, (candidate, cc)
        assert "no-cache" in cc, (candidate, cc)
        # revalidation is cheap: the file answers a conditional request with 304
        etag = resp.headers["ETag"]
        again = client.get(candidate, headers={"If-None-Match": etag})
        assert again.status_code == 304, candidate


def test_pages_are_not_cached_without_revalidation(client, as_role):
    anon = client.get("/auth/signin")
    assert anon.headers["Cache-Control"] == "no-cache"
    # signed-in pages carry private data: not even stored
    owner = as_role("tenant_owner")
    page = owner.get("/", follow_redirects=True)
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "no-store"


def test_remembered_urls_follow_the_script_root(app, as_role):
    """The nav, menu and asset URLs are built once per process (issue 18) but per mount point: an
    app served under a prefix (SCRIPT_NAME) links under it, the same process without one doesn't."""
    dm = as_role("dm")
    for _round in range(2):
        plain = soup(dm.get("/dashboard"))
        prefixed = soup(dm.client.get("/dashboard", base_url="http://localhost/gx"))
        assert plain.select_one("nav a[href='/campaigns']") is not None
        assert prefixed.select_one("nav a[href='/gx/campaigns']") is not None
        assert prefixed.select_one("a.brand")["href"] == "/gx/dashboard"
        assert plain.select_one("a.brand")["href"] == "/dashboard"
        prefixed_assets = [t.get("href") or t.get("src") for t in prefixed.select("link[rel=stylesheet], script[src]")]
        assert prefixed_assets and all(u.startswith("/gx/static/") for u in prefixed_assets), prefixed_assets
        assert all(t["src"].startswith("/static/") for t in plain.select("script[src]"))
    with app.app_context():  # outside a request the helpers behave like Flask's url_for
        tpl = app.jinja_env.from_string("{{ url_for('pages.dashboard') }}")
        try:
            out = tpl.render()
        except RuntimeError:
            out = "refused"
        assert out in ("/dashboard", "refused")
