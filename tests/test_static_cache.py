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
