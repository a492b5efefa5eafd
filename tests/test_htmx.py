"""Every htmx URL is also a page; blocks for htmx, full pages otherwise; errors as toasts."""

from __future__ import annotations

import json
import re

from tests.conftest import soup


def test_full_page_vs_block_and_vary(app, as_role):
    b = as_role("tenant_owner")
    full = b.get("/team")
    block = b.get("/team", htmx=True)
    assert full.status_code == block.status_code == 200
    assert "HX-Request" in full.headers["Vary"] and "HX-Request" in block.headers["Vary"]
    assert soup(full).select_one("nav#nav") is not None
    assert "<html" not in block.get_data(as_text=True)
    assert soup(block).select_one("table") is not None
    boosted = b.get("/team", htmx=True, headers={"HX-Boosted": "true"})
    assert "<html" in boosted.get_data(as_text=True)


def test_404_full_page_and_htmx_toast(app, as_role):
    b = as_role("dm")
    page = b.get("/no/such/page")
    assert page.status_code == 404 and soup(page).select_one("h1").text == "Not found"
    frag = b.get("/no/such/page", htmx=True)
    assert frag.status_code == 404 and frag.get_data(as_text=True) == ""
    assert json.loads(frag.headers["HX-Trigger"])["toast"]["level"] == "error"
    assert frag.headers["HX-Reswap"] == "none"


def test_403_full_page(app, as_role):
    page = as_role("viewer").get("/admin/")
    assert page.status_code == 403 and "can't do that" in soup(page).select_one("h1").text


def test_success_toast_via_hx_trigger(app, as_role, make_user):
    b = as_role("tenant_owner")
    target = make_user(role="viewer", tenant_id=b.user.tenant_id, name="Toasty")
    resp = b.post(f"/team/{target.id}/role", {"role": "dm"}, htmx=True)
    assert resp.status_code == 200
    assert "Toasty is now a Dungeon Master" in json.loads(resp.headers["HX-Trigger"])["toast"]["message"]


def test_no_js_form_gets_303_and_flash(app, as_role, make_user):
    b = as_role("tenant_owner")
    target = make_user(role="viewer", tenant_id=b.user.tenant_id, name="Flashy")
    resp = b.post(f"/team/{target.id}/role", {"role": "dm"})
    assert resp.status_code == 303
    page = b.get(resp.headers["Location"])
    assert "Flashy is now a Dungeon Master" in soup(page).select_one(".notice").text


def test_security_headers(app, client):
    resp = client.get("/")
    assert "default-src 'self'" in resp.headers["Content-Security-Policy"]
    assert resp.headers["X-Frame-Options"] == "DENY"
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    # A request without its own id gets 128 random bits as 32 hex digits, a new one each time.
    ids = {resp.headers["X-Request-ID"], client.get("/").headers["X-Request-ID"]}
    assert len(ids) == 2 and all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids)


def test_pages_load_no_third_party_scripts(app, as_role):
    page = soup(as_role("tenant_owner").get("/dashboard"))
    for tag in page.select("script[src], link[href]"):
        src = tag.get("src") or tag.get("href")
        assert src.startswith("/"), src
    assert not page.select("script:not([src])")  # no inline scripts (strict CSP)


def test_no_inline_styles_on_any_page(app, as_role, visitor):
    """The CSP has no 'unsafe-inline': a style attribute would be silently ignored."""
    owner = as_role("super_admin")
    pages = [visitor.get("/"), visitor.get("/auth/signin")] + [
        owner.get(url)
        for url in (
            "/dashboard",
            "/team",
            "/settings",
            "/account/sessions",
            "/admin/",
            "/admin/tenants",
            "/admin/users",
            "/nope",
        )
    ]
    for resp in pages:
        assert not soup(resp).select("[style]"), resp.request.path


def test_layout_navigation_and_role_badge(app, as_role):
    page = soup(as_role("dm").get("/dashboard"))
    labels = [a.get_text(" ", strip=True) for a in page.select("nav#nav li")]
    assert [label.split()[0] for label in labels] == [
        "Dashboard",
        "Campaigns",
        "Sessions",
        "Knowledge",
        "Voice",
        "Usage",
        "Billing",
        "Team",
        "Settings",
        "Support",
    ]
    assert page.select_one(".topbar .badge").text == "Dungeon Master"
    owner_nav = soup(as_role("tenant_owner").get("/dashboard")).select_one("nav#nav").get_text(" ", strip=True)
    assert "Audit log" in owner_nav  # the table's audit log is the owner's
    admin_page = soup(as_role("super_admin").get("/dashboard"))
    assert "Admin" in admin_page.select_one("nav#nav").text


def test_500_is_a_friendly_page_and_a_toast(app, database_url):
    from glyphoxa_htmx.app import create_app
    from tests.conftest import make_settings

    broken = create_app(make_settings(database_url))

    @broken.get("/__boom")
    def _boom():
        raise RuntimeError("kaboom with token=abc")

    client = broken.test_client()
    page = client.get("/__boom")
    assert page.status_code == 500
    assert "Something went wrong on our side" in soup(page).select_one("h1").text
    assert "kaboom" not in page.get_data(as_text=True)
    frag = client.get("/__boom", headers={"HX-Request": "true"})
    assert frag.status_code == 500 and json.loads(frag.headers["HX-Trigger"])["toast"]["level"] == "error"


def test_next_steps_follow_progress(app, as_role, make_user):
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import Campaign

    b = as_role("tenant_owner")
    steps = soup(b.get("/dashboard")).select("#next-steps + ol li")
    assert len(steps) == 4 and not soup(b.get("/dashboard")).select("#next-steps + ol li.done")
    with app.app_context():
        db.session.add(Campaign(id="cmp_steps", tenant_id=b.user.tenant_id, name="Steps"))
        db.session.commit()
    make_user(role="viewer", tenant_id=b.user.tenant_id)
    done = [li.select_one("strong").text for li in soup(b.get("/dashboard")).select("#next-steps + ol li.done")]
    assert done == ["Create your first campaign", "Invite your table"]
    # Viewers have no steps to take.
    viewer = as_role("viewer", tenant_id=b.user.tenant_id)
    assert not soup(viewer.get("/dashboard")).select("#next-steps")


def test_the_header_follows_the_user_across_a_rename_and_a_language(app, as_role):
    """The signed-in header is rendered once per sign-in and kept (app.py topbar()): a page that was
    already open and is reloaded after a rename or a language switch shows the new one."""
    browser = as_role("dm")
    header = soup(browser.get("/dashboard")).select_one(".topbar")
    assert header.select_one(".badge").text == "Dungeon Master"
    assert browser.post("/me/name", data={"name": "Renamed Ranger"}).status_code in (200, 204, 303)
    header = soup(browser.get("/dashboard")).select_one(".topbar")
    assert header.select_one(".visually-hidden").text == "Renamed Ranger"
    assert header.select_one(".avatar").text == "R"
    german = soup(browser.get("/dashboard", headers={"Accept-Language": "de"})).select_one(".topbar")
    assert german.select_one("summary")["aria-label"] == "Kontomenü"
    assert soup(browser.get("/dashboard")).select_one(".topbar summary")["aria-label"] == "Account menu"


def test_one_access_log_line_per_request_without_the_query_string(app, as_role, caplog):
    import logging

    b = as_role("dm")
    with caplog.at_level(logging.INFO, logger="glyphoxa_htmx.app"):
        resp = b.get("/campaigns?q=secret-code", headers={"X-Request-ID": "req-1"})
    assert resp.status_code == 200 and resp.headers["X-Request-ID"] == "req-1"
    lines = [r for r in caplog.records if r.name == "glyphoxa_htmx.app" and r.getMessage() == "request"]
    assert len(lines) == 1
    line = lines[0]
    assert (line.method, line.path, line.route, line.status) == ("GET", "/campaigns", "/campaigns", 200)
    assert line.ms >= 0 and "secret-code" not in str(line.__dict__)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="glyphoxa_htmx.app"):
        b.get("/campaigns")
    assert not [r for r in caplog.records if r.getMessage() == "request"]  # below the level: none
