"""The Alpine islands in a real browser: the voice preview (Web Audio; the sliders retune what is
playing without a new request), the NPC editor's list and attribute fields, the voice search
(Enter searches, never submits the NPC — with or without JavaScript), and toasts (they expire, and
a new one replaces an older one of the same kind)."""

from __future__ import annotations

import re
import shutil

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

SHOTS = "/tmp/glyphoxa-shots"
LONG_LINE = (
    "Well met, traveller. The tide is turning and the bells of the drowned chapel ring beneath "
    "the waves; sit, drink, and listen while I tell you of the smuggler's debt and the sea witch."
)


def _owner(app, name):
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import User

    with app.app_context():
        return db.session.execute(select(User).where(User.name == name)).scalar_one()


def _npc(app, user, **voice):
    from glyphoxa_htmx.core.authz import Actor, Role
    from glyphoxa_htmx.services import campaigns, npcs

    actor = Actor(user_id=user.id, tenant_id=user.tenant_id, role=Role(user.role))
    with app.app_context():
        campaign = campaigns.create(actor, {"name": "Saltmere"})
        npc = npcs.create(
            actor,
            campaign.id,
            {
                "name": "Mother Brine",
                "knowledge_scope": ["tides", "debts", "the drowned chapel"],
                "attributes": {"race": "human"},
                "voice": voice,
            },
        )
        return campaign.id, npc.id


def _npc_count(app, tenant_id):
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import NpcDefinition

    with app.app_context():
        return db.session.execute(
            select(func.count()).select_from(NpcDefinition).where(NpcDefinition.tenant_id == tenant_id)
        ).scalar_one()


def _npc_row(app, npc_id):
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import NpcDefinition

    with app.app_context():
        db.session.expire_all()
        return db.session.get(NpcDefinition, npc_id)


@pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="espeak-ng is not installed")
def test_voice_preview_sliders_retune_the_playing_sound_without_a_new_request(
    signed_in_page, live_server, page, app, monkeypatch, tmp_path
):
    monkeypatch.setenv("TTS_CACHE_DIR", str(tmp_path))
    signed_in_page("Preview DM")
    _, npc_id = _npc(
        app, _owner(app, "Preview DM"), provider="espeak", voice_id="en-gb", pitch_shift=-2, speed_factor=0.9
    )
    previews = []
    page.on("request", lambda r: previews.append(r.url) if r.url.endswith("/voice-preview") else None)
    page.goto(f"{live_server}/npcs/{npc_id}")

    pitch_slider = page.get_by_label("Pitch shift slider")
    speed_slider = page.get_by_label("Speed slider")
    expect(pitch_slider).to_be_visible()  # sliders exist only with JavaScript
    expect(pitch_slider).to_have_value("-2")

    page.fill("#preview_text", LONG_LINE)
    page.get_by_role("button", name="▶ Play").click()
    status = page.locator(".voice-preview [role=status]")
    expect(status).to_contain_text("Playing", timeout=20_000)
    stop = page.get_by_role("button", name="■ Stop")
    expect(stop).to_be_visible()

    def params():
        return page.evaluate("Alpine.$data(document.querySelector('[x-data=voicePreview]')).playbackParams()")

    assert params() == {"detune": -200, "rate": pytest.approx(0.9)}
    pitch_slider.fill("6")
    speed_slider.fill("1.5")
    assert params() == {"detune": 600, "rate": 1.5}  # the playing source, retuned live
    expect(page.locator("#pitch_shift")).to_have_value("6")  # the form field follows the slider
    expect(page.locator("#speed_factor")).to_have_value("1.5")
    page.fill("#pitch_shift", "-4")  # and the slider follows the field, retuning too
    expect(pitch_slider).to_have_value("-4")
    assert params()["detune"] == -400
    assert len(previews) == 1, previews  # no new synthesis for any of it
    page.screenshot(path=f"{SHOTS}-voice-preview.png", full_page=True)

    stop.click()
    expect(stop).to_be_hidden()
    expect(status).to_have_text("Stopped.")
    assert params() is None


def test_npc_editor_list_and_attribute_fields(signed_in_page, live_server, page, app):
    signed_in_page("Editor DM")
    _, npc_id = _npc(app, _owner(app, "Editor DM"), provider="espeak", voice_id="en")
    page.goto(f"{live_server}/npcs/{npc_id}")

    expect(page.locator("textarea#knowledge_scope")).to_be_hidden()  # the form field, kept in step
    items = page.get_by_role("textbox", name=re.compile(r"^knowledge scope \d+$"))
    expect(items).to_have_count(3)
    expect(items.nth(0)).to_have_value("tides")

    adder = page.locator("#knowledge_scope-new")
    page.get_by_text("Knowledge scope", exact=False).first.click()  # the label now names the adder
    expect(adder).to_be_focused()
    adder.fill("old oaths")
    adder.press("Enter")  # adds the item; never submits the editor
    expect(items).to_have_count(4)
    expect(adder).to_be_focused()

    row = page.locator(".list-item", has=page.locator("input[aria-label='knowledge scope 4']"))
    row.get_by_role("button", name="Move up").click()  # "old oaths" above "the drowned chapel"
    expect(items.nth(2)).to_have_value("old oaths")
    page.locator(".list-item").filter(has=page.locator("input[aria-label='knowledge scope 1']")).get_by_role(
        "button", name="Remove"
    ).click()  # "tides" goes
    expect(items).to_have_count(3)
    items.nth(0).fill("debts and favours")
    page.locator("#behavior_rules-new").fill("never lies about the tide")  # typed, not added: still saved

    # Attributes: remove the saved pair, add a new one.
    page.locator(".kv-row", has=page.locator("input[value=race]")).get_by_role(
        "button", name="Remove attribute"
    ).click()
    page.get_by_role("button", name="Add attribute").click()
    new_key = page.locator(".kv-row:not([hidden]) input[name=attr_key]").last
    expect(new_key).to_be_focused()
    new_key.fill("home")
    page.locator(".kv-row:not([hidden]) input[name=attr_value]").last.fill("the drowned chapel")

    page.get_by_role("button", name="Save changes").click()
    expect(page.locator("#toasts .toast")).to_contain_text("Saved")
    npc = _npc_row(app, npc_id)
    assert npc.knowledge_scope == ["debts and favours", "old oaths", "the drowned chapel"]
    assert npc.behavior_rules == ["never lies about the tide"]
    assert npc.attributes == {"home": "the drowned chapel"}
    # The swapped-in editor is an island again.
    expect(page.get_by_role("textbox", name=re.compile(r"^knowledge scope \d+$"))).to_have_count(3)
    page.screenshot(path=f"{SHOTS}-npc-editor.png", full_page=True)


def test_enter_in_voice_search_searches_and_never_submits_the_npc(signed_in_page, live_server, page, app):
    signed_in_page("Search DM")
    owner = _owner(app, "Search DM")
    campaign_id, _ = _npc(app, owner, provider="espeak", voice_id="en")
    page.goto(f"{live_server}/campaigns/{campaign_id}/npcs/new")
    page.fill("#name", "Harbourmaster Quill")
    page.select_option("#voice_provider", "espeak")
    page.get_by_text("Browse voices").click()
    search = page.locator("#voice-q")
    search.fill("en-gb")
    search.press("Enter")
    expect(page.locator("#voice-results .voice-option").first).to_be_visible(timeout=10_000)
    expect(page).to_have_url(f"{live_server}/campaigns/{campaign_id}/npcs/new")
    assert _npc_count(app, owner.tenant_id) == 1  # only the first NPC; nothing was created
    page.locator("#voice-results .voice-option").first.click()
    expect(page.locator("#voice_id")).not_to_have_value("")
    expect(page.locator("#toasts .toast")).to_contain_text("Voice set to")


def test_voice_search_without_javascript_creates_nothing(browser, live_server, app):
    context = browser.new_context(java_script_enabled=False)
    page = context.new_page()
    try:
        page.goto(live_server + "/auth/signin")
        page.get_by_text("Create a new dev user").click()
        page.fill("#dev-name", "No-JS DM")
        page.get_by_role("button", name="Create and enter").click()
        page.wait_for_url(live_server + "/dashboard")
        owner = _owner(app, "No-JS DM")
        campaign_id, _ = _npc(app, owner, provider="espeak", voice_id="en")
        page.goto(f"{live_server}/campaigns/{campaign_id}/npcs/new")
        expect(page.get_by_label("Pitch shift slider")).to_be_hidden()  # no island without JS
        expect(page.locator("textarea#knowledge_scope")).to_be_visible()
        page.fill("#name", "Harbourmaster Quill")
        page.get_by_text("Browse voices").click()
        with context.expect_page() as opened:
            page.locator("#voice-q").fill("en")
            page.locator("#voice-q").press("Enter")
        voices = opened.value
        voices.wait_for_load_state()
        assert re.search(r"/voices\?", voices.url) and "q=en" in voices.url
        expect(voices.locator("h1")).to_have_text("Voices")
        expect(page).to_have_url(f"{live_server}/campaigns/{campaign_id}/npcs/new")
        assert _npc_count(app, owner.tenant_id) == 1
    finally:
        context.close()


def test_toasts_expire_and_a_new_one_replaces_the_old_one_of_its_kind(
    signed_in_page, live_server, page, app, make_user
):
    signed_in_page("Toast Owner")
    owner = _owner(app, "Toast Owner")
    make_user(role="viewer", tenant_id=owner.tenant_id, name="Player Pia")
    page.goto(live_server + "/team")
    row = page.locator("tr", has_text="Player Pia")
    toasts = page.locator("#toasts .toast")

    row.locator("select").select_option("dm")
    row.get_by_role("button", name="Save").click()
    expect(toasts).to_have_count(1)
    expect(toasts).to_contain_text("Player Pia is now a Dungeon Master")
    row.locator("select").select_option("viewer")
    row.get_by_role("button", name="Save").click()
    expect(toasts).to_have_text(re.compile("Player Pia is now a Viewer"))  # replaced, not stacked
    expect(toasts).to_have_count(1)

    page.evaluate("window.glyphoxa.toast('The gateway is unreachable.', 'error')")  # another kind: both show
    expect(toasts).to_have_count(2)
    expect(page.locator("#toasts .toast-error[role=alert]")).to_have_text(re.compile("unreachable"))
    expect(toasts.filter(has_text="Player Pia")).to_have_count(0, timeout=7_000)  # success: 5 s
    expect(toasts).to_have_count(0, timeout=7_000)  # error: 8 s
