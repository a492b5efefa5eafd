"""The UI is fully German under Accept-Language: de (issue 17): the dashboard, the NPC editor and the
live page of a running session on a phone viewport, in Chromium with a German locale. "Fully" is
checked against the catalogue: no English UI sentence that has a German translation is on screen."""

from __future__ import annotations

import re

import pytest
from babel.messages.mofile import read_mo

from glyphoxa_htmx import i18n_catalog
from tests.support.ws_server import make_campaign, snowflake, stop_live_sessions

SHOTS = "/tmp/glyphoxa-shots"
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "locale": "de-DE", "viewport": PHONE}


def _english_phrases() -> list[str]:
    """Fragments of every English UI string whose German differs: the text between placeholders,
    kept when it has at least two words (a single word can be German too, e.g. "Name")."""
    with i18n_catalog.mo_path("de").open("rb") as fh:
        catalog = read_mo(fh)
    phrases = set()
    for message in catalog:
        if not message.id or not message.string:
            continue
        english = message.id if isinstance(message.id, str) else message.id[0]
        german = message.string if isinstance(message.string, str) else message.string[0]
        if english == german:
            continue
        for fragment in re.split(r"%\(\w+\)[sd]|%[sd]|\{\w*\}", english):
            fragment = fragment.strip(" .,:;·()“”\"'")
            if len(fragment.split()) >= 2 and not re.search(re.escape(fragment), german):
                phrases.add(fragment)
    return sorted(phrases, key=len, reverse=True)


def _sign_in(page, live_server, name: str) -> None:
    page.goto(live_server + "/auth/signin")
    page.locator("details:has(#dev-name) > summary").click()
    page.fill("#dev-name", name)
    page.locator("form:has(#dev-name) button[type=submit]").click()
    page.wait_for_url(live_server + "/dashboard")


# What the table said (transcript lines) is their data, in whatever language they spoke: not UI.
SPOKEN = ".line-text, .line-raw"


def _english_on(page, phrases: list[str]) -> list[str]:
    text = page.evaluate(
        """(spoken) => { const b = document.body.cloneNode(true);
             b.querySelectorAll(spoken).forEach(n => n.remove()); return b.innerText; }""",
        SPOKEN,
    )
    text = " ".join(text.split())
    return [p for p in phrases if p in text]


def test_dashboard_npc_editor_and_live_page_in_german_on_a_phone(page, live_server, app, database_url):
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import User

    phrases = _english_phrases()
    assert len(phrases) > 200, "the German catalogue looks empty"
    name = "Spielleiterin Ilse"
    _sign_in(page, live_server, name)
    with app.app_context():
        tenant = db.session.query(User).filter_by(name=name).one().tenant_id
    app.extensions["glyphoxa.gateway"].update_tenant(tenant, guild_ids=[snowflake()])
    campaign = make_campaign(app, tenant, "Die Salzstraße")
    problems: dict[str, list[str]] = {}
    try:
        page.goto(f"{live_server}/dashboard")
        assert page.locator("html").get_attribute("lang") == "de"
        # The table is named in the language its owner signed up in (theirs to rename).
        assert page.locator(".topbar .tenant").inner_text() == f"Runde von {name}"
        page.screenshot(path=f"{SHOTS}-de-dashboard.png", full_page=True)
        problems["dashboard"] = _english_on(page, phrases)

        page.goto(f"{live_server}/campaigns/{campaign}/npcs/new")
        page.fill("#name", "Mutter Brack")
        page.fill("#personality", "Eine alte Seehexe, die mit Geheimnissen handelt.")
        page.locator("form button.btn-primary[type=submit]").last.click()
        page.wait_for_url(re.compile(r"/campaigns/[^/]+(#.*)?$"))
        page.locator("a[href^='/npcs/']").filter(has_text="Mutter Brack").first.click()
        page.wait_for_url(re.compile(r"/npcs/[^/]+$"))
        assert page.locator("html").get_attribute("lang") == "de"
        page.screenshot(path=f"{SHOTS}-de-npc-editor.png", full_page=True)
        problems["NPC editor"] = _english_on(page, phrases)

        page.goto(live_server + "/sessions/new")
        page.select_option("#campaign_id", value=campaign)
        page.fill("#channel_id", snowflake())
        page.locator("form button.btn-primary[type=submit]").last.click()
        page.wait_for_url(re.compile(r"/sessions/[0-9a-f-]+/live$"))
        page.wait_for_timeout(1500)  # the first pushed lines and the timer
        assert page.locator("html").get_attribute("lang") == "de"
        page.screenshot(path=f"{SHOTS}-de-live.png", full_page=True)
        problems["live page"] = _english_on(page, phrases)
    finally:
        stop_live_sessions(app, database_url, tenant)
    left = {where: found for where, found in problems.items() if found}
    assert not left, f"English left on German pages: {left}"
