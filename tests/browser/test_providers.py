"""Voice & AI providers in Chromium: save a key through htmx (the page swaps in place and shows
only ••••1234), press Test against a local OpenAI-compatible fake, remove the key."""

from __future__ import annotations

from playwright.sync_api import expect

from tests.support.fake_openai import FakeOpenAI

SHOTS = "/tmp/glyphoxa-shots"


def test_owner_saves_tests_and_removes_a_key(signed_in_page, live_server, page):
    fake = FakeOpenAI().start()
    try:
        signed_in_page("Keys DM")
        page.goto(live_server + "/settings/providers")
        page.evaluate("window.__marker = 'still here'")
        slot = page.locator("#slot-llm")
        slot.locator("select[name=provider]").select_option("openai")
        slot.locator("input[name=base_url]").fill(fake.base)
        slot.locator("input[name=api_key]").fill(fake.api_key)
        slot.get_by_role("button", name="Save").click()
        expect(page.locator("#toasts .toast")).to_contain_text("Language model saved")
        slot = page.locator("#slot-llm")
        expect(slot.locator(".provider-key")).to_have_text("••••" + fake.api_key[-4:])
        expect(slot.locator("input[name=api_key]")).to_have_value("")
        assert fake.api_key not in page.content()
        slot.get_by_role("button", name="Test").click()
        expect(page.locator("#slot-llm .provider-test .badge")).to_have_text("OK")
        assert fake.requests[-1]["headers"]["Authorization"] == f"Bearer {fake.api_key}"
        page.screenshot(path=f"{SHOTS}-providers.png", full_page=True)
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#slot-llm").get_by_role("button", name="Remove key").click()
        expect(page.locator("#slot-llm .badge-warn")).to_have_text("no key")
        assert page.evaluate("window.__marker") == "still here"  # every step swapped in place
    finally:
        fake.stop()
