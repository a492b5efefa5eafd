"""The live page on game night (issue 11): Stop and a running timer where the DM is looking, a
tab left open across the end of the session, a campaign without NPCs, and no silent 4xx."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.conftest import tenant_of
from tests.support.ws_server import snowflake

SHOTS = "/tmp/glyphoxa-shots"


@pytest.fixture
def table(app, page, live_server, signed_in_page, database_url):
    """A signed-in owner whose table has a Discord server and a campaign; ``start()`` starts a
    session from the UI and lands on its live page."""
    from tests.support.ws_server import make_campaign, stop_live_sessions

    created = {}

    def _make(name: str, npcs: tuple[str, ...] = ("Mother Brine",)):
        signed_in_page(name)
        tenant = tenant_of(app, name)
        app.extensions["glyphoxa.gateway"].update_tenant(tenant, guild_ids=[snowflake()])
        campaign = make_campaign(app, tenant, f"{name}'s campaign")
        for npc in npcs:
            page.goto(f"{live_server}/campaigns/{campaign}/npcs/new")
            page.fill("#name", npc)
            page.fill("#personality", "An old sea witch who trades in secrets.")
            page.get_by_role("button", name="Add to the cast").click()
            expect(page.locator("body")).to_contain_text(npc)
        created.update(tenant=tenant, campaign=campaign)
        return created

    yield _make
    if created:
        stop_live_sessions(app, database_url, created["tenant"])


def start_from_ui(page, live_server, campaign_label: str, *, accept_empty: bool = False):
    page.goto(live_server + "/sessions/new")
    page.select_option("#campaign_id", label=campaign_label)
    page.fill("#channel_id", snowflake())
    page.get_by_role("button", name="Start session").click()
    if accept_empty:
        page.get_by_role("button", name="Start anyway").click()
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]+/live$"))
    return page.url.rsplit("/", 2)[-2]


def test_stop_and_timer_on_the_live_page(table, page, live_server):
    page.on("dialog", lambda dialog: dialog.accept())
    table("Stopper DM")
    start_from_ui(page, live_server, "Stopper DM's campaign")
    expect(page.locator("#live-status")).to_contain_text("Live", timeout=20_000)
    timer = page.locator("#live-timer")
    expect(timer).to_be_visible()
    first = timer.inner_text()
    assert re.fullmatch(r"\d+:\d\d(:\d\d)?", first.strip()), first
    expect(timer).not_to_have_text(first, timeout=5_000)  # it runs
    page.screenshot(path=f"{SHOTS}-live-stop.png", full_page=True)
    page.get_by_role("button", name="Stop session").click()
    expect(page.locator("body")).to_contain_text(re.compile("Session stopped|has ended|ending"), timeout=20_000)
    expect(page.get_by_role("button", name="Stop session")).to_have_count(0, timeout=20_000)


def test_tab_left_open_ends_quietly_without_a_reconnect_storm(table, page, live_server, app):
    created = table("Storm DM")
    session_id = start_from_ui(page, live_server, "Storm DM's campaign")
    expect(page.locator("#transcript")).to_contain_text("Mother Brine", timeout=20_000)
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws))
    app.extensions["glyphoxa.gateway"].stop_web_session(session_id)  # stopped elsewhere (another tab, Discord)
    expect(page.locator("#live-ended")).to_contain_text("This session has ended", timeout=20_000)
    expect(page.locator("#live-status")).to_contain_text("Ended")
    expect(page.get_by_role("button", name="Stop session")).to_have_count(0)
    expect(page.locator("#live-conn")).to_contain_text("Session ended")
    page.wait_for_timeout(6_000)
    assert sockets == [], f"{len(sockets)} reconnects after the session ended"
    assert created["tenant"]


def test_abnormal_closes_back_off(table, page, live_server, monkeypatch):
    """A socket that opens and is then dropped (a proxy restart, a crashed worker) reconnects with
    growing, jittered delays — not every half second forever."""
    from glyphoxa_htmx.web import sessions as web_sessions

    table("Flaky DM")
    sockets = []
    page.on("websocket", lambda ws: sockets.append(ws))

    def drop(ws, sub, info):
        ws.close(reason=1011, message="server error")

    monkeypatch.setattr(web_sessions, "_pump", drop)
    start_from_ui(page, live_server, "Flaky DM's campaign")
    page.wait_for_timeout(9_000)
    assert 1 <= len(sockets) <= 5, f"{len(sockets)} connections in 9 s"


def test_campaign_without_npcs_warns_before_starting(table, page, live_server):
    table("Empty DM", npcs=())
    page.goto(live_server + "/sessions/new")
    page.select_option("#campaign_id", label="Empty DM's campaign")
    page.fill("#channel_id", snowflake())
    page.get_by_role("button", name="Start session").click()
    warning = page.locator("#start-form [role=alert], #start-form .notice-warn")
    expect(warning.first).to_contain_text("no NPCs", timeout=10_000)
    assert "/live" not in page.url  # nothing started yet
    page.screenshot(path=f"{SHOTS}-start-empty.png", full_page=True)
    page.get_by_role("button", name="Start anyway").click()
    page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]+/live$"))
    panel = page.locator("#npc-controls")
    expect(panel).to_contain_text("reported by the voice service", timeout=20_000)
    # The voice service may bring NPCs of its own: they are marked as not part of the campaign.
    rows = panel.locator(".npc-row")
    if rows.count():
        expect(rows.first).to_contain_text("Not in this campaign")


def test_muted_speak_empty_speak_and_bad_jump_all_say_something(table, page, live_server):
    page.on("dialog", lambda dialog: dialog.accept())
    table("Talky DM")
    session_id = start_from_ui(page, live_server, "Talky DM's campaign")
    row = page.locator(".npc-row", has_text="Mother Brine")
    expect(row).to_be_visible(timeout=20_000)
    row.get_by_role("button", name=re.compile("^Mute")).click()
    badge = page.locator(".npc-row", has_text="Mother Brine").locator(".badge").first
    expect(badge).to_have_text("Muted")

    # Speaking as a muted NPC: the toast and the badge tell the same story.
    page.select_option("#speak-npc", label="Mother Brine")
    page.fill("#speak-text", "Even muted, I keep my bargains.")
    page.get_by_role("button", name="Speak").click()
    toast = page.locator("#toasts .toast").last
    expect(toast).to_contain_text("overrides mute")
    expect(page.locator(".npc-row", has_text="Mother Brine").locator(".badge").first).to_have_text("Muted")
    expect(page.locator("#npc-controls")).to_contain_text("A line you send with Speak is spoken even when muted")

    # An empty Speak: the message is next to the field, and the field has focus.
    page.fill("#speak-text", "")
    page.get_by_role("button", name="Speak").click()
    expect(page.locator("#speech-error")).to_be_visible()
    expect(page.locator("#speech-error")).to_contain_text("Type what the NPC should say")
    expect(page.locator("#speak-text")).to_be_focused()

    # A bad "Jump to" on the transcript page: the message shows where the results are.
    page.goto(f"{live_server}/sessions/{session_id}/transcript")
    page.fill("#t-at", "soon")
    page.get_by_role("button", name="Apply").click()
    expect(page.locator("#lines [role=alert]")).to_contain_text("hours:minutes")
    expect(page.locator("#t-at")).to_have_attribute("aria-invalid", "true")
    page.screenshot(path=f"{SHOTS}-jump-error.png", full_page=True)


def test_any_htmx_4xx_shows_a_message(table, page, live_server, app):
    """A 4xx whose response neither swaps a message in nor sends a toast still tells the user."""
    table("Quiet DM")
    page.goto(live_server + "/campaigns")
    page.evaluate("""() => htmx.ajax('GET', '/campaigns/cmp_doesnotexist', {target: 'main', swap: 'none'})""")
    expect(page.locator("#toasts .toast")).to_be_visible()
