"""A transcript tab left open while the table's transcript store is removed (the gateway's tooling
drops the tenant's memory tables): the next filter says to try again and leaves the lines shown as
they were; reloading shows the empty state, never a crash page."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.support.ws_server import sql

SHOTS = "/tmp/glyphoxa-shots"


def test_an_open_transcript_survives_its_store_being_removed(open_transcript, page, database_url):
    tenant, _session_id = open_transcript("Store DM", "Vanishing")
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
