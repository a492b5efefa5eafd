"""A DM's game night in a real browser, end to end against the gateway simulator over gRPC:
connect Discord, create a campaign and an NPC, start a session, watch lines stream over the
WebSocket, mute an NPC, make it speak typed text, stop the session, find the line by search,
and open the knowledge graph. (The done-when of the campaign and session issues.)"""

from __future__ import annotations

import re
from datetime import UTC

from playwright.sync_api import expect

SHOTS = "/tmp/glyphoxa-shots"
GUILD = "444444444444444444"
CHANNEL = "555555555555555555"


def test_game_night(signed_in_page, live_server, page, app):
    page.on("dialog", lambda dialog: dialog.accept())  # hx-confirm on destructive actions
    signed_in_page("Night DM")
    _signed_in_with_discord_managing(app, "Night DM", GUILD)

    page.goto(live_server + "/settings")
    page.fill("#guild-ids", GUILD)
    page.get_by_role("button", name="Save Discord connection").click()
    expect(page.locator("#toasts .toast")).to_contain_text("Discord connection saved")

    page.goto(live_server + "/campaigns/new")
    page.fill("#name", "Curse of the Tide")
    page.get_by_role("button", name="Create campaign").click()
    page.wait_for_url(re.compile(r"/campaigns/cmp_[0-9a-f]+$"))
    page.get_by_role("link", name="Add NPC").first.click()
    page.fill("#name", "Mother Brine")
    page.fill("#personality", "An old sea witch who trades in secrets and never forgets a debt.")
    page.get_by_role("button", name="Add to the cast").click()
    expect(page.locator("body")).to_contain_text("Mother Brine")

    page.goto(live_server + "/sessions/new")
    page.select_option("#campaign_id", label="Curse of the Tide")
    page.fill("#channel_id", CHANNEL)
    page.get_by_role("button", name="Start session").click()
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]+/live$"))
    transcript = page.locator("#transcript")
    expect(transcript).to_contain_text("Mother Brine", timeout=20_000)  # streamed over the WebSocket
    page.screenshot(path=f"{SHOTS}-live.png", full_page=True)

    row = page.locator(".npc-row", has_text="Mother Brine")
    row.get_by_role("button", name=re.compile("^Mute")).click()
    expect(page.locator(".npc-row", has_text="Mother Brine").locator(".badge")).to_have_text("Muted")

    page.select_option("#speak-npc", label="Mother Brine")
    page.fill("#speak-text", "The tide remembers every oath, little captain.")
    page.get_by_role("button", name="Speak").click()
    expect(transcript).to_contain_text("The tide remembers every oath", timeout=20_000)

    page.get_by_role("link", name="Details").click()
    page.get_by_role("button", name="Stop session").click()
    expect(page.locator("body")).to_contain_text(re.compile("Ended|ended"), timeout=20_000)

    page.goto(live_server + "/sessions/search?q=" + "tide remembers every oath")
    expect(page.locator("main")).to_contain_text("Mother Brine")
    expect(page.locator("main mark").first).to_be_visible()

    page.goto(live_server + "/knowledge")
    page.get_by_role("link", name=re.compile("Curse of the Tide")).first.click()
    expect(page.locator("h1")).to_contain_text("Curse of the Tide")
    page.screenshot(path=f"{SHOTS}-knowledge.png", full_page=True)


def _signed_in_with_discord_managing(app, name: str, guild_id: str) -> None:
    """What a Discord sign-in a moment ago would have stored: this person manages ``guild_id``
    (adding a server to a table requires it)."""
    from datetime import datetime

    from sqlalchemy import select

    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import User

    with app.app_context():
        user = db.session.execute(select(User).where(User.name == name)).scalar_one()
        user.discord_guilds = [{"id": guild_id, "name": "Night table", "owner": True, "manage": True}]
        user.discord_guilds_at = datetime.now(UTC)
        db.session.commit()
