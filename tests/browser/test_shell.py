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
