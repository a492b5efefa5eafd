"""The sessions area in German (issue 17): the list and its empty state, a session's page, the start
form's "start anyway?", the live page and its WebSocket fragments (each viewer in their own
language), the transcript and search, toasts and field errors. English stays the default."""

from __future__ import annotations

import json
import re

from tests.conftest import soup
from tests.support.ws_server import (
    Reader,
    seed,
    snowflake,
    wait_for,
)

DE = {"Accept-Language": "de-DE,de;q=0.9"}

# English sentences of these pages that must not survive in German.
ENGLISH = (
    "Search transcripts",
    "Start session",
    "No sessions yet",
    "Past sessions, newest first",
    "Stop this session for everyone at the table?",
    "Read the transcript",
    "No usage recorded",
    "NPCs of this campaign",
    "Watch live",
    "Full transcript",
    "Waiting for the first words",
    "Jump to latest",
    "Live transcript, newest at the bottom",
    "This session has ended",
    "Find in this transcript",
    "Show raw speech-to-text",
    "Hours:minutes into the session",
    "Try fewer or different words",
    "Default campaign",
)


def english_left(html: str) -> list[str]:
    """The key sentences still in English on the page (text and attributes; not the English keys
    of the scripts' catalogue on <body>, whose values are the German)."""
    page = soup_of(html)
    if page.body is not None:
        page.body.attrs.pop("data-js-messages", None)
    rendered = str(page)
    return [s for s in ENGLISH if s in rendered]


def toast(resp) -> str:
    return json.loads(resp.headers["HX-Trigger"])["toast"]["message"]


def test_list_and_its_empty_state_in_german(app, table, database_url):
    html = table.dm.get("/sessions", headers=DE).get_data(as_text=True)
    page = soup_of(html)
    assert page.select_one("html")["lang"] == "de"
    assert page.select_one("h1").text == "Sitzungen"
    assert page.select_one(".empty h2").text.strip() == "Noch keine Sitzungen"
    assert "Starte eine Sprachsitzung" in page.select_one(".empty").text
    assert page.select_one(".badge-ok").text == "Bot verbunden"
    assert page.select_one(".badge-ok")["title"] == "Der Discord-Bot ist auf 1 Server online"
    assert [o.text for o in page.select("#f-state option")] == ["Alle", "Ausstehend", "Aktiv", "Beendet"]
    assert not english_left(html), english_left(html)

    # A bad filter: the message at the field, in German.
    bad = table.dm.get("/sessions?date_from=soon", headers=DE, htmx=True)
    assert bad.status_code == 422 and "Gib ein Datum wie 2026-03-14 ein." in bad.get_data(as_text=True)

    seed(database_url, table.tenant, table.campaign, sessions=2)
    html = table.dm.get("/sessions", headers=DE).get_data(as_text=True)
    page = soup_of(html)
    assert page.select_one("caption").text == "Vergangene Sitzungen, neueste zuerst"
    row = page.select_one(".sessions-table tbody tr")
    assert row.select_one("td")["data-label"] == "Kampagne"
    assert row.select_one(".badge").text == "Beendet"
    assert re.search(r"\d+ (Std\. \d\d )?Min\.$", row.select("td")[3].text.strip())  # the duration
    assert not english_left(html), english_left(html)

    # No Accept-Language: English, as before.
    assert soup(table.dm.get("/sessions")).select_one("h1").text == "Sessions"


def test_session_page_transcript_and_search_in_german(app, table, database_url):
    sid = seed(database_url, table.tenant, table.campaign, sessions=1)[0]
    html = table.dm.get(f"/sessions/{sid}", headers=DE).get_data(as_text=True)
    page = soup_of(html)
    assert page.select_one("#meta-h").text == "Sitzung" and page.select_one("#tx-h").text == "Transkript"
    assert re.fullmatch(r"\d{2}\.\d{2}\.\d{4}", page.select_one("h1 .muted").text)  # the date, German style
    meta = {dt.text: dt.find_next("dd").text for dt in page.select(".meta dt")}
    assert "Gestartet" in meta and "Dauer" in meta and meta["Grund für das Ende"] == "Normal beendet"
    stats = page.select_one("#tx-h").parent.text
    assert re.search(r"\d+ Zeilen · \d+ von NPCs, \d+ von Spieler:innen · \d+ Sprecher:innen", stats)
    assert not english_left(html), english_left(html)

    html = table.dm.get(f"/sessions/{sid}/transcript", headers=DE).get_data(as_text=True)
    page = soup_of(html)
    assert page.select_one("h1").contents[0].strip() == "Transkript"
    assert page.select_one("#tx-find")["placeholder"] == "In diesem Transkript suchen"
    assert [lbl.text.strip() for lbl in page.select(".segmented label")] == ["Alle", "NPCs", "Spieler:innen"]
    assert re.fullmatch(r"\d+ Zeilen\.", page.select_one("#lines > p.small").text)
    assert not english_left(html), english_left(html)

    # A bad "jump to" time: the field says so in German (and the transcript shows the problem too).
    bad = table.dm.get(f"/sessions/{sid}/transcript?at=soon", headers=DE)
    assert bad.status_code == 422
    assert soup(bad).select_one("#at-error").text.strip() == "Gib Stunden:Minuten ein, z. B. 1:15."

    # Search: nothing found, in German; the English page is unchanged.
    html = table.dm.get("/sessions/search?q=xyzzyplugh", headers=DE).get_data(as_text=True)
    page = soup_of(html)
    assert page.select_one(".empty h2").text == "Keine Zeilen zu „xyzzyplugh“"
    assert page.select_one(".empty p").text == "Versuch es mit weniger oder anderen Wörtern."
    assert not english_left(html), english_left(html)
    assert "No lines match “xyzzyplugh”" in table.dm.get("/sessions/search?q=xyzzyplugh").get_data(as_text=True)

    # The download's headings too (the lines are what was said, untouched).
    txt = table.dm.get(f"/sessions/{sid}/transcript.txt", headers=DE).get_data(as_text=True)
    assert txt.startswith("Transkript: The Salt Road\nSitzung ") and ", gestartet " in txt.splitlines()[1]


def test_start_confirm_live_page_and_toasts_in_german(app, table, database_url, simulator):
    # The start form asks first when the campaign has no NPCs.
    ask = table.dm.post(
        "/sessions/new",
        {"campaign_id": table.campaign, "guild_id": table.guild, "channel_id": snowflake()},
        headers=DE,
        htmx=True,
    )
    assert ask.status_code == 422
    box = soup(ask).select_one("#empty-cast")
    assert box.select_one("strong").text == "Diese Kampagne hat keine NPCs – trotzdem starten?"
    assert box.select_one("button[name=empty_cast_ok]").text == "Trotzdem starten"
    bad = table.dm.post(
        "/sessions/new",
        {"campaign_id": table.campaign, "guild_id": table.guild, "channel_id": "12ab", "empty_cast_ok": "1"},
        headers=DE,
        htmx=True,
    )
    assert "Füge die ID des Sprachkanals ein" in soup(bad).select_one("#channel_id-error").text

    started = table.dm.post(
        "/sessions/new",
        {"campaign_id": table.campaign, "guild_id": table.guild, "channel_id": snowflake(), "empty_cast_ok": "1"},
        headers=DE,
        htmx=True,
    )
    live_url = started.headers["HX-Redirect"]
    sid = live_url.split("/")[2]
    wait_for(lambda: simulator._runtime(sid) is not None and simulator._runtime(sid).state == "active", what="active")

    html = table.dm.get(live_url, headers=DE).get_data(as_text=True)
    page = soup_of(html)
    assert page.select_one("#transcript-scroll")["aria-label"] == "Live-Transkript, Neuestes unten"
    assert page.select_one("#live-actions form")["hx-confirm"] == "Diese Sitzung für alle in der Runde beenden?"
    assert page.select_one("#npc-controls-h").text == "NPCs in dieser Sitzung"
    assert page.select_one("#jump-latest").text == "Zum Neuesten springen"
    # What live.js shows comes along in German.
    scripts = json.loads(page.select_one("body")["data-js-messages"])
    assert scripts["Jump to latest (%(n)s new)"] == "Zum Neuesten springen (%(n)s neu)"
    assert scripts["Live updates every %(n)s seconds."] == "Live-Aktualisierung alle %(n)s Sekunden."
    assert not english_left(html), english_left(html)

    muted = table.dm.post(f"/sessions/{sid}/npcs/mute", {"npc": "Sister Vey"}, headers=DE, htmx=True)
    assert muted.status_code == 200 and toast(muted) == "Sister Vey ist stummgeschaltet."
    assert "Stummschaltung aufheben" in soup(muted).select_one(".npc-row.is-muted button").text
    empty = table.dm.post(f"/sessions/{sid}/npcs/speak", {"npc": "Sister Vey", "speech": " "}, headers=DE, htmx=True)
    assert soup(empty).select_one("#speech-error").text.strip() == "Schreib, was der NPC sagen soll."

    stopped = table.dm.post(f"/sessions/{sid}/stop", headers=DE, htmx=True)
    assert stopped.status_code == 204
    after = table.dm.get(stopped.headers["HX-Redirect"], headers=DE).get_data(as_text=True)
    assert "Sitzung beendet." in after or "Beenden angefordert. Die Sitzung wird beendet." in after  # the flash
    again = table.dm.post(f"/sessions/{sid}/stop", headers=DE, htmx=True)
    assert again.status_code == 409 and toast(again) == "Diese Sitzung ist bereits beendet."
    assert "already ended" in table.dm.post(f"/sessions/{sid}/stop", htmx=True).headers["HX-Trigger"]


def test_live_fragments_reach_each_viewer_in_their_language(app, server, table, as_role, database_url):
    """The hub hands out data, not HTML: each delivery is rendered once per language and shared
    by that language's viewers (a German profile here, an English one beside it, one shared poll):
    neither gets the other's fragment."""
    german = as_role("viewer", tenant_id=table.tenant)
    assert german.post("/me/locale", {"locale": "de"}).status_code in (200, 303)
    english = as_role("viewer", tenant_id=table.tenant)
    sid = app.extensions["glyphoxa.gateway"].start_web_session(table.tenant, table.guild, snowflake(), table.campaign)

    de = Reader(server.connect(f"/sessions/{sid}/ws?after=0", german.token))
    en = Reader(server.connect(f"/sessions/{sid}/ws?after=0", english.token))
    de.read_until(lambda r: r.line_ids(), what="a first line (German viewer)")
    en.read_until(lambda r: r.line_ids(), what="a first line (English viewer)")
    assert table.dm.post(f"/sessions/{sid}/stop", {"confirmed": "1"}).status_code == 303
    de.read_to_close()
    en.read_to_close()

    final_de, final_en = de.frames[-1], en.frames[-1]
    assert "Diese Sitzung ist beendet." in final_de and ">Ganzes Transkript lesen</a>" in final_de
    assert ">Sitzung beendet.</span>" in final_de and ">Beendet</span>" in final_de
    assert "This session has ended" not in final_de
    assert "This session has ended." in final_en and ">Session ended.</span>" in final_en
    assert any('title="Link zu dieser Zeile"' in f for f in de.frames)
    assert any('title="Link to this line"' in f for f in en.frames)

    # The polling fallback speaks the requester's language too.
    polled = german.get(f"/sessions/{sid}/lines?after=0", htmx=True).get_data(as_text=True)
    assert "Diese Sitzung ist beendet." in polled


def test_voice_service_errors_are_shown_in_the_readers_language(app):
    """A gateway error is made where it happens and shown wherever it is read: its message is
    translated when read."""
    from glyphoxa_htmx.adapters.gateway import errors as gw

    err = gw.GatewayUnavailable()
    with app.test_request_context(headers=DE):
        assert err.message == "Der Sprachdienst ist nicht erreichbar. Versuch es gleich noch einmal."
    with app.test_request_context(headers={"Accept-Language": "en"}):
        assert err.message == "The voice service is unavailable. Please try again in a moment."
    assert gw.NotFound("Custom text.").message == "Custom text."  # a given message is kept as it is


def soup_of(html: str):
    from bs4 import BeautifulSoup

    return BeautifulSoup(html, "html.parser")
