"""The platform dashboard in Chromium: screenshots on a desktop and a 360 px phone (no horizontal
overflow), and the 15 s refresh paused while the tab is hidden, resumed at once when it's back."""

from __future__ import annotations

SHOTS = "/tmp/glyphoxa-shots"

MEASURE = "() => ({vw: document.documentElement.clientWidth, wide: document.documentElement.scrollWidth})"


def _as_admin(signed_in_page, app, name):
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import User

    page = signed_in_page(name)
    with app.app_context():
        user = db.session.query(User).filter_by(name=name).one()
        user.role = "super_admin"
        db.session.commit()
    return page


def test_dashboard_desktop_and_phone(signed_in_page, live_server, app, page):
    _as_admin(signed_in_page, app, "Dashboard Operator")
    for label, size in (("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 360, "height": 780})):
        page.set_viewport_size(size)
        page.goto(live_server + "/admin/")
        assert page.locator("#health-checks").is_visible()
        assert page.locator("svg#chart-platform-session_hours").is_visible()
        m = page.evaluate(MEASURE)
        page.screenshot(path=f"{SHOTS}-admin-dashboard-{label}.png", full_page=True)
        assert m["wide"] <= m["vw"] + 1, f"{label}: {m['wide']} px wide at {m['vw']} px"


def test_refresh_pauses_while_hidden(signed_in_page, live_server, app, page):
    _as_admin(signed_in_page, app, "Refresh Operator")
    page.goto(live_server + "/admin/")
    polls = []
    page.on("request", lambda r: polls.append(r.url) if r.headers.get("hx-request") and "/admin/" in r.url else None)
    # Hidden tab: the refresh (the same event the 15 s timer raises) sends nothing.
    page.evaluate("""() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => true});
                            htmx.trigger(document.getElementById('platform-live'), 'refresh'); }""")
    page.wait_for_timeout(700)
    assert polls == []
    stamp = page.locator("#platform-live time").get_attribute("datetime")
    # Visible again: one refresh at once, and the block is swapped in place.
    with page.expect_response(lambda r: "/admin/" in r.url and r.request.headers.get("hx-request")):
        page.evaluate("""() => { Object.defineProperty(document, 'hidden', {configurable: true, get: () => false});
                                document.dispatchEvent(new Event('visibilitychange')); }""")
    page.wait_for_function(
        f"() => document.querySelector('#platform-live time').getAttribute('datetime') !== '{stamp}'"
    )
    assert len(polls) == 1
    assert page.locator("#platform-live #health-checks").count() == 1  # swapped inside, not nested
