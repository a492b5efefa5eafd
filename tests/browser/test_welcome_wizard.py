"""The onboarding wizard end to end in Chromium on a phone viewport (issue 12): name → campaign →
Discord (skipped: no server listed) → first NPC → the dashboard, and nothing overflows 360 px."""

from __future__ import annotations

from playwright.sync_api import expect

OVERFLOW = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"


def test_wizard_on_a_phone(signed_in_page, live_server, page):
    page.set_viewport_size({"width": 360, "height": 740})
    signed_in_page("Phone DM")
    page.goto(live_server + "/welcome")
    page.wait_for_url(live_server + "/welcome/name")
    assert page.evaluate(OVERFLOW) <= 0
    page.fill("#name", "Phone Table")
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_url(live_server + "/welcome/campaign")
    expect(page.locator("#progress-name")).to_contain_text("done")
    page.fill("#name", "Pocket Campaign")
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_url(live_server + "/welcome/discord")
    assert page.evaluate(OVERFLOW) <= 0
    page.get_by_role("button", name="Skip this step").click()
    page.wait_for_url(live_server + "/welcome/npc")
    page.fill("#name", "Barkeep Mo")
    page.fill("#personality", "Gruff but kind.")
    page.get_by_role("button", name="Save and continue").click()
    page.wait_for_url(live_server + "/dashboard")
    assert "Phone Table" in page.content()
