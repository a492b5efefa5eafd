"""The platform dashboard in Chromium: screenshots on a desktop and a 360 px phone (no horizontal
overflow) with every panel filled (provider latency from a local Prometheus, MRR and churn with
billing on), the tenant drill-down on both, and the 15 s refresh paused while the tab is hidden,
resumed at once when it's back."""

from __future__ import annotations

import uuid

import psycopg
import pytest

from tests.support.fake_prometheus import FakePrometheus, provider_answers

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


@pytest.fixture
def filled_panels(app, database_url, monkeypatch):
    """Provider figures from a local Prometheus and billing on with a few subscriptions."""
    from glyphoxa_htmx.services import platform

    prom = FakePrometheus(provider_answers()).start()
    monkeypatch.setattr(platform, "_prom_cache", {})
    monkeypatch.setattr(app.extensions["glyphoxa.settings"], "prometheus_url", prom.url)
    monkeypatch.setattr(app.extensions["glyphoxa.settings"], "billing", "stripe")
    with psycopg.connect(database_url, autocommit=True) as conn:
        for tier, status in (("adventurer", "active"), ("guild", "active"), ("dungeon_master", "canceled")):
            tid = "shot_" + uuid.uuid4().hex[:8]
            conn.execute("INSERT INTO web.tenants (id, name) VALUES (%s, %s)", (tid, tid))
            conn.execute(
                "INSERT INTO web.subscriptions (id, tenant_id, stripe_customer_id, tier, status, created_at,"
                " canceled_at) VALUES (%s, %s, 'cus_x', %s, %s, now() - interval '60 days',"
                " CASE WHEN %s = 'canceled' THEN now() - interval '3 days' END)",
                (str(uuid.uuid4()), tid, tier, status, status),
            )
    yield prom
    prom.stop()


def test_dashboard_desktop_and_phone(signed_in_page, live_server, app, page, filled_panels):
    _as_admin(signed_in_page, app, "Dashboard Operator")
    for label, size in (("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 360, "height": 780})):
        page.set_viewport_size(size)
        page.goto(live_server + "/admin/")
        assert page.locator("#health-checks").is_visible()
        assert page.locator("svg#chart-platform-session_hours").is_visible()
        assert page.locator("#provider-health").is_visible()
        assert "123 ms" in page.locator("#provider-health").inner_text()
        assert page.locator("#mrr").inner_text() == "$38.00"
        assert page.locator("#churn").inner_text() == "33.3 %"
        m = page.evaluate(MEASURE)
        page.screenshot(path=f"{SHOTS}-admin-dashboard-{label}.png", full_page=True)
        assert m["wide"] <= m["vw"] + 1, f"{label}: {m['wide']} px wide at {m['vw']} px"


def test_tenant_drilldown_desktop_and_phone(signed_in_page, live_server, app, page):
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import User

    _as_admin(signed_in_page, app, "Drill Operator")
    with app.app_context():
        tid = db.session.query(User).filter_by(name="Drill Operator").one().tenant_id
    for label, size in (("desktop", {"width": 1280, "height": 900}), ("phone", {"width": 360, "height": 780})):
        page.set_viewport_size(size)
        page.goto(f"{live_server}/admin/tenants/{tid}")
        for sel in ("#member-list", "#campaign-list", "#session-history", "#recent-audit", "#tier"):
            assert page.locator(sel).is_visible(), sel
        m = page.evaluate(MEASURE)
        page.screenshot(path=f"{SHOTS}-admin-tenant-{label}.png", full_page=True)
        assert m["wide"] <= m["vw"] + 1, f"{label}: {m['wide']} px wide at {m['vw']} px"
    # A list search swaps only its list (htmx).
    page.fill("#audit-q", "nothing-like-this")
    page.wait_for_function("() => document.querySelector('#recent-audit').innerText.includes('No entries match.')")
    assert page.locator("#member-list").is_visible()


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
