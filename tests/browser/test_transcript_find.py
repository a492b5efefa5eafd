"""Find within one transcript: every hit highlighted, Enter jumps to the next, the count says where."""

from __future__ import annotations

import re

from playwright.sync_api import expect

SHOTS = "/tmp/glyphoxa-shots"


def test_find_highlights_and_jumps_between_hits(open_transcript, page):
    open_transcript("Finder DM", "Finders")
    expect(page.locator("#find-bar")).to_be_visible()
    first_speaker = page.locator(".transcript-archive .speaker").first.inner_text()
    page.fill("#tx-find", first_speaker)
    hits = page.locator("mark.find-hit")
    expect(hits.first).to_be_visible()
    total = hits.count()
    assert total >= 2
    count = page.locator("#tx-find-count")
    expect(count).to_have_text(f"1 of {total} on this page")
    url = page.url
    page.press("#tx-find", "Enter")
    expect(count).to_have_text(f"2 of {total} on this page")
    expect(page.locator("mark.find-hit.is-current")).to_have_count(1)
    assert page.url == url  # Enter finds; it never submits a form
    page.press("#tx-find", "Shift+Enter")
    expect(count).to_have_text(f"1 of {total} on this page")
    page.screenshot(path=f"{SHOTS}-transcript-find.png", full_page=False)
    page.fill("#tx-find", "zzzz-no-such-words")
    expect(count).to_have_text(re.compile("No matches"))
    expect(hits).to_have_count(0)
