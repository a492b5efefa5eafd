"""The shell a DM sees first: sign-in, dashboard, navigation on a phone, toasts from htmx."""

from __future__ import annotations

import re

from playwright.sync_api import expect

SHOTS = "/tmp/glyphoxa-shots"


def test_dev_sign_in_reaches_dashboard(signed_in_page, live_server):
    page = signed_in_page("Ada Lovecraft")
    expect(page.locator(".page-head h1")).to_have_text("Ada Lovecraft's table")
    expect(page.locator(".topbar .badge")).to_have_text("Owner")
    expect(page.get_by_role("heading", name="Next steps")).to_be_visible()
    page.screenshot(path=f"{SHOTS}-dashboard.png", full_page=True)


def test_phone_navigation_opens_and_closes(signed_in_page, live_server, page):
    page.set_viewport_size({"width": 390, "height": 844})
    signed_in_page("Phone DM")
    nav = page.locator("nav#nav")
    expect(nav).to_be_hidden()
    page.get_by_label("Open navigation").click()
    expect(nav).to_be_visible()
    page.screenshot(path=f"{SHOTS}-phone-nav.png")
    nav.get_by_role("link", name=re.compile("Settings")).click()
    expect(page).to_have_url(re.compile(r"/settings$"))
    expect(nav).to_be_hidden()


def test_htmx_role_change_shows_toast_without_reload(signed_in_page, live_server, page, app, make_user):
    signed_in_page("Toast DM")
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import User

    with app.app_context():
        owner = db.session.query(User).filter_by(name="Toast DM").one()
        tenant_id = owner.tenant_id
    make_user(role="viewer", tenant_id=tenant_id, name="Player Pat")
    page.goto(live_server + "/team")
    page.evaluate("window.__marker = 'still here'")
    row = page.locator("tr", has_text="Player Pat")
    row.locator("select").select_option("dm")
    row.get_by_role("button", name="Save").click()
    expect(page.locator("#toasts .toast")).to_contain_text("Player Pat is now a Dungeon Master")
    assert page.evaluate("window.__marker") == "still here"  # swapped in place, no reload
    expect(page.locator("tr", has_text="Player Pat").locator(".badge")).to_have_text("Dungeon Master")


def test_signed_out_htmx_request_redirects_to_sign_in(signed_in_page, live_server, page, context):
    signed_in_page("Expiring DM")
    page.goto(live_server + "/team")
    context.clear_cookies(name="gx_session")
    page.locator("tr", has_text="Expiring DM").get_by_role("button", name="Save").click()
    page.wait_for_url(re.compile(r"/auth/signin\?"))
    expect(page.get_by_text("Your session ended")).to_be_visible()


def test_an_open_tab_follows_a_rename_and_its_cached_header_still_signs_out(signed_in_page, live_server, page):
    """The signed-in header is rendered once per sign-in and kept (app.py topbar()); flashed
    messages come from Python (core/markup.py flashes). A tab opened before a rename shows the new
    name on its next load, and the header's sign-out form (its CSRF token is part of the cached
    HTML) still works."""
    signed_in_page("Header DM")
    other = page.context.new_page()  # the tab left open on the dashboard
    other.goto(live_server + "/dashboard")
    expect(other.locator(".topbar .avatar")).to_have_text("H")
    page.goto(live_server + "/me")
    page.fill("#name", "Renamed DM")
    page.get_by_role("button", name="Save").first.click()
    expect(page.locator("main .notice[role=status]")).to_contain_text("Renamed DM")  # the flash, no JS needed
    page.screenshot(path=f"{SHOTS}-flash.png")
    other.reload()
    expect(other.locator(".topbar .avatar")).to_have_text("R")
    expect(other.locator(".topbar .visually-hidden")).to_have_text("Renamed DM")
    other.locator(".topbar summary").click()
    other.get_by_role("button", name="Sign out").click()
    expect(other).to_have_url(live_server + "/")
    expect(other.locator(".topbar")).to_contain_text("Sign in")
