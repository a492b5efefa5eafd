"""Campaigns, the NPC editor and the knowledge graph in German (issue 17): headings, empty states,
field errors, toasts, engine labels and the editor's script strings follow the language, numbers are
written the German way, and what is stored (engine ids, names) stays data, not a translation."""

from __future__ import annotations

import json

import psycopg

from tests.conftest import soup
from tests.test_campaigns import new_campaign, new_npc

DE = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}


def _english_left(page_text: str, phrases: list[str]) -> list[str]:
    text = " ".join(page_text.split())
    return [p for p in phrases if p in text]


def _toast(resp) -> str:
    detail = json.loads(resp.headers["HX-Trigger"])["toast"]
    return detail["message"]


def test_campaign_list_and_its_empty_state_in_german(app, as_role):
    dm = as_role("dm")
    page = soup(dm.get("/campaigns", headers=DE))
    assert page.select_one("html")["lang"] == "de"
    assert page.select_one("h1").get_text() == "Kampagnen"
    empty = page.select_one(".empty")
    assert empty.select_one("h2").get_text() == "Starte deine erste Kampagne"
    assert "füge ein paar NPCs hinzu" in empty.get_text()
    assert "Kampagne erstellen" in empty.select_one("a.btn").get_text()
    assert page.select_one("#campaign-q")["placeholder"] == "Nach Name oder Spielsystem suchen …"
    english = ["Start your first campaign", "New campaign", "Create a campaign", "Search campaigns", "Archived"]
    assert _english_left(page.get_text(), english) == []

    new_campaign(app, dm.user, "Die Salzstraße", game_system="Das Schwarze Auge")
    page = soup(dm.get("/campaigns", headers=DE))
    card = page.select_one(".campaign-card")
    assert card.select_one("h2").get_text() == "Die Salzstraße"  # a name is data: as typed
    assert "Letzte Sitzung" in card.get_text() and "Last session" not in card.get_text()
    tabs = page.select_one("nav.tabs")
    assert tabs["aria-label"] == "Welche Kampagnen" and "Aktuell" in tabs.get_text()

    missing = soup(dm.get("/campaigns?q=zzz", headers=DE, htmx=True))
    assert missing.select_one("h2").get_text() == "Keine Kampagne passt zu „zzz“"
    assert "zeig alle Kampagnen" in missing.get_text()

    archived = soup(dm.get("/campaigns?archived=1", headers=DE))
    assert archived.select_one(".empty h2").get_text() == "Nichts archiviert"

    # Without a German browser the same page stays English.
    assert soup(dm.get("/campaigns")).select_one("h1").get_text() == "Campaigns"


def test_campaign_form_errors_at_the_field_in_german(app, as_role, database_url):
    dm = as_role("dm")
    form = soup(dm.get("/campaigns/new", headers=DE))
    assert form.select_one("h1").get_text() == "Neue Kampagne"
    assert form.select_one("label[for=game_system]").get_text() == "Spielsystem"
    assert "Bis zu 10.000 Zeichen" in form.get_text()  # the limit, written the German way

    bad = dm.post("/campaigns", {"name": "  ", "description": "x" * 10_001}, htmx=True, headers=DE)
    assert bad.status_code == 422
    page = soup(bad)
    assert page.select_one("#name-error").get_text() == "Gib der Kampagne einen Namen."
    assert page.select_one("#name")["aria-invalid"] == "true"
    assert (
        page.select_one("#description-error").get_text()
        == "Die Beschreibung darf höchstens 10.000 Zeichen lang sein (sie hat 10.001)."
    )
    with psycopg.connect(database_url) as conn:
        assert (
            conn.execute("SELECT count(*) FROM web.campaigns WHERE tenant_id = %s", (dm.user.tenant_id,)).fetchone()[0]
            == 0
        )

    cid = new_campaign(app, dm.user, "Die Salzstraße")
    wrong = dm.post(f"/campaigns/{cid}/delete", {"confirm_name": "x"}, htmx=True, headers=DE)
    assert wrong.status_code == 422
    assert "Nur archivierte Kampagnen können gelöscht werden." in soup(wrong).get_text()


def test_toasts_and_confirmations_in_german(app, as_role, database_url):
    dm = as_role("dm")
    cid = new_campaign(app, dm.user, "Die Salzstraße")
    a = new_npc(app, dm.user, cid, "Mutter Brack")
    b = new_npc(app, dm.user, cid, "Kapitän Fenn")

    moved = dm.post(f"/campaigns/{cid}/npcs/order", {"ids": f"{b},{a}"}, htmx=True, headers=DE)
    assert moved.status_code == 200
    assert _toast(moved) == "Neue Reihenfolge gespeichert."

    page = soup(dm.get(f"/campaigns/{cid}", headers=DE))
    archive = page.select_one(f"form[action='/campaigns/{cid}/archive']")
    assert archive["hx-confirm"] == "„Die Salzstraße“ archivieren?"
    archived = dm.post(f"/campaigns/{cid}/archive", htmx=True, headers=DE)
    assert _toast(archived) == "„Die Salzstraße“ ist archiviert. Ihre NPCs bleiben erhalten."

    confirm = soup(dm.get(f"/campaigns/{cid}/delete", headers=DE))
    assert confirm.select_one("h1").get_text() == "„Die Salzstraße“ löschen?"
    assert "ihre 2 NPCs" in confirm.select_one(".danger-zone").get_text()
    assert "Gib zur Bestätigung Die Salzstraße ein" in confirm.select_one("label[for=confirm_name]").get_text()

    # A full-page delete: the toast travels as a flash to the next page, translated when queued.
    gone = dm.post(f"/campaigns/{cid}/delete", {"confirm_name": "Die Salzstraße"}, headers=DE)
    assert gone.status_code == 303
    shown = dm.get(gone.headers["Location"], headers=DE).get_data(as_text=True)
    assert "„Die Salzstraße“ und ihre 2 NPCs wurden gelöscht." in shown


def test_npc_editor_in_german(app, as_role, database_url):
    dm = as_role("dm")
    cid = new_campaign(app, dm.user, "Die Salzstraße")
    npc = new_npc(app, dm.user, cid, "Mutter Brack", engine="sentence_cascade", budget_tier="deep")

    cast = soup(dm.get(f"/campaigns/{cid}", headers=DE))
    badges = cast.select_one(f"#npc-{npc} .badges").get_text()
    assert "Satzkaskade" in badges and "Stufe Gründlich" in badges

    resp = dm.get(f"/npcs/{npc}", headers=DE)
    page = soup(resp)
    assert page.select_one("h1").get_text() == "Mutter Brack bearbeiten"
    legends = [lg.get_text(" ", strip=True) for lg in page.select("#npc-form legend")]
    assert legends[:3] == ["Wer sie sind", "Wie sie denken und sprechen", "Stimme"]
    assert page.select_one("label[for=name] .reach").get_text() == "An den NPC gesendet"
    assert page.select_one("label[for=tools] .reach").get_text() == "Nur gespeichert"
    engine = page.select_one("#engine option[selected]")
    assert engine["value"] == "sentence_cascade" and engine.get_text() == "Satzkaskade: spricht früher los"
    assert "Bis zu 8.000 Zeichen" in page.select_one("label[for=personality]").parent.get_text()
    assert page.select_one("#knowledge_scope").find_parent(class_="field")["data-item-label"] == "Wissensgebiet"
    assert page.select_one("#attr-key-1")["placeholder"] == "Schlüssel"
    # The editor's scripts get their strings in German (npc-editor.js, voice-preview.js).
    messages = json.loads(page.select_one("body")["data-js-messages"])
    assert (
        messages["Voice set to %(name)s. Save to keep it."]
        == "Stimme auf %(name)s gesetzt. Speichere, um sie zu behalten."
    )
    assert messages["Stopped."] == "Angehalten."
    english = [
        "Who they are",
        "Sent to the NPC",
        "Stored only",
        "Browse voices",
        "Hear a preview",
        "Add attribute",
        "Save changes",
        "Back to the cast",
        "One per line",
        "Speaks only when addressed by name",
    ]
    assert _english_left(page.get_text(), english) == []

    bad = dm.post(
        f"/npcs/{npc}",
        {"name": "Mutter Brack", "updated_at": page.select_one("input[name=updated_at]")["value"], "pitch_shift": "11"},
        htmx=True,
        headers=DE,
    )
    assert bad.status_code == 422
    assert soup(bad).select_one("#pitch_shift-error").get_text() == "Die Tonhöhe muss eine Zahl von −10 bis 10 sein."

    # Saving in German stores the engine id, never its label.
    form = soup(dm.get(f"/npcs/{npc}", headers=DE))
    data = {
        "name": "Mutter Brack",
        "engine": "s2s",
        "budget_tier": "deep",
        "updated_at": form.select_one("input[name=updated_at]")["value"],
    }
    saved = dm.post(f"/npcs/{npc}", data, htmx=True, headers=DE)
    assert saved.status_code == 200
    assert _toast(saved) == "Mutter Brack gespeichert."
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT engine FROM public.npc_definitions WHERE id = %s", (npc,)).fetchone()[0] == "s2s"


def test_knowledge_pages_in_german(app, as_role):
    dm = as_role("dm")
    page = soup(dm.get("/knowledge", headers=DE))
    assert page.select_one("h1").get_text() == "Wissensgraph"
    assert page.select_one(".empty h2").get_text() == "Noch keine Kampagnen"

    cid = new_campaign(app, dm.user, "Die Salzstraße")
    page = soup(dm.get("/knowledge", headers=DE))
    card = page.select_one(".session-cards li")
    assert "Noch nichts erfahren" in card.get_text()
    assert "Deine Runde hat noch keine Sitzung gespielt" in page.get_text()

    entities = soup(dm.get(f"/knowledge/{cid}", headers=DE))
    assert entities.select_one("title").get_text().startswith("Die Salzstraße · Wissen")
    assert entities.select_one("label[for=k-type]").get_text() == "Typ"
    assert entities.select_one("#k-type option").get_text() == "Alle Typen"
    assert entities.select_one("#entities .empty h2").get_text() == "Noch kein Wissen"
    nav = entities.select_one("nav.tabs")
    assert [a.get_text() for a in nav.select("a")] == ["Einträge", "Graph", "Alle Kampagnen"]

    long = dm.get(f"/knowledge/{cid}?q=" + "x" * 101, headers=DE)
    assert long.status_code == 422
    assert soup(long).select_one("#q-error").get_text() == "Die Suche darf höchstens 100 Zeichen lang sein."

    graph = soup(dm.get(f"/knowledge/{cid}/graph", headers=DE))
    assert graph.select_one(".empty h2").get_text() == "Noch nichts zu zeichnen"
    english = ["Nothing to draw yet", "All campaigns", "Knowledge graph", "Run a session of this campaign"]
    assert _english_left(graph.get_text(), english) == []
