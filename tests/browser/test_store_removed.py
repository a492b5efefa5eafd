"""A transcript tab left open while the table's transcript store is removed (the gateway's tooling
drops the tenant's memory tables): the next filter says to try again and leaves the lines shown as
they were; reloading shows the empty state, never a crash page."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.conftest import tenant_of
from tests.support.ws_server import make_campaign, seed, sql

SHOTS = "/tmp/glyphoxa-shots"


def test_an_open_transcript_survives_its_store_being_removed(signed_in_page, live_server, page, app, database_url):
    signed_in_page("Store DM")
    tenant = tenant_of(app, "Store DM")
    campaign = make_campaign(app, tenant, "Vanishing")
    (session_id,) = seed(database_url, tenant, campaign, sessions=1)
    page.goto(f"{live_server}/sessions/{session_id}/transcript")
    lines = page.locator("#lines .line")
    expect(lines.first).to_be_visible()
    shown = lines.count()
    sql(database_url, f'DROP TABLE "tenant_{tenant}".session_entries CASCADE')
    page.click("form.filters button[type=submit]")
    expect(page.locator("#toasts .toast")).to_contain_text("Try again in a moment")
    expect(lines).to_have_count(shown)  # nothing swapped, nothing half-shown
    page.screenshot(path=f"{SHOTS}-store-removed-toast.png", full_page=False)
    page.reload()
    expect(page.locator("main")).to_contain_text("No transcripts yet")
    page.screenshot(path=f"{SHOTS}-store-removed-reload.png", full_page=False)
