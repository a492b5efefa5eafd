"""A stop whose answer never came, in a real browser (issue 19): the session page that was already
open says "Stopping — checking with the voice service" and updates itself, without a reload, once
the gateway has really ended the session."""

from __future__ import annotations

import re

from playwright.sync_api import expect

from glyphoxa_htmx.adapters.gateway.client import GatewayClient
from tests.conftest import GATEWAY_SECRET
from tests.support.faultproxy import FaultProxy
from tests.support.ws_server import make_campaign, snowflake, sql


def test_open_session_page_follows_a_stop_that_timed_out(
    signed_in_page, live_server, page, app, simulator, database_url
):
    page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm
    signed_in_page("Slow Stop DM")
    ((tenant,),) = sql(database_url, "SELECT tenant_id FROM web.users WHERE name = 'Slow Stop DM'")
    guild = snowflake()
    app.extensions["glyphoxa.gateway"].update_tenant(tenant, guild_ids=[guild])  # sign-in registered the table
    campaign = make_campaign(app, tenant, "The Long Night")
    sid = app.extensions["glyphoxa.gateway"].start_web_session(tenant, guild, snowflake(), campaign)

    original = app.extensions["glyphoxa.gateway"]
    proxy = FaultProxy.for_url(simulator.address).start()
    client = GatewayClient(proxy.address, GATEWAY_SECRET, timeout=1.0, breaker_threshold=0)
    client.list_tenants()  # connected while the proxy still forwards
    app.extensions["glyphoxa.gateway"] = client
    try:
        page.goto(f"{live_server}/sessions/{sid}")
        page.evaluate("window.__openedBeforeTheStop = true")
        proxy.delay(2.5)  # every gateway packet now arrives after the 1 s deadline
        page.get_by_role("button", name="Stop session").click()
        status = page.locator("#stop-status")
        expect(status).to_contain_text("Stopping — checking with the voice service", timeout=15_000)
        expect(status.locator('[data-stop-outcome="stopped"]')).to_have_text("Session stopped.", timeout=30_000)
        expect(page.locator(".page-head")).to_contain_text(re.compile("Ended|ended"))
        expect(page.get_by_role("button", name="Stop session")).to_have_count(0)
        assert page.evaluate("window.__openedBeforeTheStop === true")  # the same page, never reloaded
        assert page.url == f"{live_server}/sessions/{sid}"
    finally:
        app.extensions["glyphoxa.gateway"] = original
        proxy.forward()
        client.close()
        proxy.close()
    assert sql(database_url, "SELECT state FROM public.sessions WHERE id = %s", (sid,))[0][0] == "ended"
    assert sql(
        database_url, "SELECT action, details->>'note' FROM web.audit_log WHERE resource_id = %s ORDER BY id", (sid,)
    ) == [("session.stop_unconfirmed", None), ("session.stop", "after_timeout")]
