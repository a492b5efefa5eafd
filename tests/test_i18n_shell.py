"""The app shell and account areas in German (issue 17): sign-in, landing, navigation, dashboard,
error pages (404, 429), profile, sign-in sessions and settings follow the language; English stays
the default, and what is stored (names, roles) is never a translation."""

from __future__ import annotations

import json
import re

import psycopg

from tests.conftest import Browser, soup

DE = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}


def text_of(page) -> str:
    return " ".join(page.get_text(" ").split())


def assert_no_english(page_text: str, sentences: list[str]) -> None:
    left = [s for s in sentences if s in page_text]
    assert not left, f"English left on a German page: {left}"


def test_sign_in_and_landing_pages_speak_german(app):
    visitor = Browser(app)
    page = soup(visitor.get("/auth/signin", headers=DE))
    assert page.select_one("html")["lang"] == "de"
    assert page.select_one("h1").get_text() == "Bei Glyphoxa anmelden"
    assert page.select_one("title").get_text().startswith("Anmelden ·")
    body = text_of(page)
    assert "Neu hier? Mit der Anmeldung legst du deine Runde an" in body
    assert page.select_one(".skip-link").get_text() == "Zum Inhalt springen"
    assert_no_english(body, ["Sign in to Glyphoxa", "New here?", "Skip to content", "Continue with"])

    landing = soup(visitor.get("/", headers=DE))
    assert landing.select_one("h1").get_text() == "Deine NPCs sprechen mit am Tisch."
    assert [h.get_text() for h in landing.select(".grid h2")] == [
        "Stell deine Figuren zusammen",
        "Leite die Sitzung",
        "Vergiss nichts",
    ]
    assert landing.select_one(".topbar .btn").get_text() == "Anmelden"
    assert "Weiter mit Discord" in text_of(landing)
    assert_no_english(
        text_of(landing), ["Your NPCs, speaking", "Build your cast", "Run the session", "Continue with Discord"]
    )
    # Without a German browser the same page is English.
    assert soup(visitor.get("/")).select_one("h1").get_text() == "Your NPCs, speaking at your table."


def test_navigation_account_menu_and_dashboard_in_german(app, as_role):
    owner = as_role("tenant_owner")
    resp = owner.get("/dashboard", headers=DE)
    page = soup(resp)
    nav = [" ".join(a.get_text(" ").split()) for a in page.select("#nav li")]
    for label in ("Übersicht", "Kampagnen", "Sitzungen", "Wissen", "Nutzung", "Team", "Einstellungen", "Audit-Log"):
        assert any(item.startswith(label) for item in nav), (label, nav)
    assert page.select_one("#nav")["aria-label"] == "Hauptnavigation"
    assert page.select_one(".nav-toggle")["aria-label"] == "Navigation öffnen"
    menu = page.select_one("details.menu")
    assert menu.select_one("summary")["aria-label"] == "Kontomenü"
    assert "Angemeldet als" in text_of(menu) and owner.user.name in text_of(menu)
    assert [a.get_text() for a in menu.select("a")] == ["Dein Profil", "Deine Anmeldungen", "Einstellungen"]
    assert menu.select_one("button").get_text() == "Abmelden"
    assert page.select_one(".topbar .badge").get_text() == "Besitzer"  # the role badge
    assert 'aria-label="Schließen"' in resp.get_data(as_text=True)  # the toasts' close button (a <template>)

    assert page.select_one("#w-live").get_text() == "Jetzt live"
    assert page.select_one("#w-last").get_text() == "Letzte Sitzung"
    body = text_of(page)
    assert "Es läuft keine Sitzung." in body and "Noch keine beendeten Sitzungen." in body  # empty states
    assert page.select_one("#next-steps").get_text() == "Nächste Schritte"
    assert "Lege deine erste Kampagne an" in body
    assert_no_english(
        body,
        ["Live now", "No session is running.", "No finished sessions yet.", "Next steps", "Your profile", "Sign out"],
    )
    # Scripts get their strings in German too.
    messages = json.loads(page.select_one("body")["data-js-messages"])
    assert (
        messages["Can't reach Glyphoxa. Check your connection."]
        == "Glyphoxa ist nicht erreichbar. Prüfe deine Verbindung."
    )

    english = soup(owner.get("/dashboard"))
    assert english.select_one("#w-live").get_text() == "Live now"
    assert any(a.get_text(" ").strip().startswith("Dashboard") for a in english.select("#nav li"))


def test_error_pages_in_german(app, as_role):
    visitor = Browser(app)
    missing = visitor.get("/no-such-page", headers=DE)
    assert missing.status_code == 404
    page = soup(missing)
    assert page.select_one("main h1").get_text() == "Nicht gefunden"
    assert page.select_one("main .badge").get_text() == "Fehler 404"
    assert page.select_one("main .btn-primary").get_text() == "Zur Startseite"
    assert "gehört nicht zu deiner Runde" in text_of(page.select_one("main"))
    assert page.select_one("title").get_text() == "Nicht gefunden · Glyphoxa"

    owner = as_role("tenant_owner")
    signed_in = soup(owner.get("/no-such-page", headers=DE))
    assert signed_in.select_one("main .btn-primary").get_text() == "Zu deiner Übersicht"
    # htmx: no page, a German toast in HX-Trigger.
    hx = owner.get("/no-such-page", htmx=True, headers=DE)
    assert hx.status_code == 404
    toast = json.loads(hx.headers["HX-Trigger"])["toast"]
    assert toast == {
        "message": "Diese Seite oder dieser Eintrag existiert nicht oder gehört nicht zu deiner Runde.",
        "level": "error",
    }

    # 429: the sign-in routes allow 10 a minute per address; a fresh address for this test.
    crowd = app.test_client()
    env = {"REMOTE_ADDR": "198.51.100.77"}
    codes = [crowd.get("/auth/signin", headers=DE, environ_base=env).status_code for _ in range(11)]
    assert codes == [200] * 10 + [429]
    slow = crowd.get("/auth/signin", headers=DE, environ_base=env)
    assert slow.status_code == 429
    page = soup(slow)
    assert page.select_one("main h1").get_text() == "Nicht so schnell"
    assert "Das hast du in kurzer Zeit sehr oft gemacht." in text_of(page.select_one("main"))
    assert_no_english(text_of(page), ["Slow down a little", "You've done that a lot"])


def test_profile_rename_and_sessions_in_german(app, as_role, database_url):
    dm = as_role("dm")
    page = soup(dm.get("/me", headers=DE))
    assert page.select_one("h1").get_text() == "Dein Profil"
    assert page.select_one("label[for=name]").get_text() == "Anzeigename"
    assert page.select_one("#del-h").get_text() == "Mein Konto löschen"

    bad = dm.post("/me/name", {"name": "  "}, htmx=True, headers=DE)
    assert bad.status_code == 422
    assert soup(bad).select_one("#name-error").get_text() == "Gib dir einen Namen, den deine Runde wiedererkennt."

    renamed = dm.post("/me/name", {"name": "Schwester Agathe"}, htmx=True, headers=DE)
    assert renamed.status_code == 204 and renamed.headers["HX-Redirect"] == "/me"
    # The toast crosses the htmx redirect as a flash, translated when it was queued.
    shown = soup(dm.get("/me", headers=DE))
    assert "Du heißt jetzt Schwester Agathe." in text_of(shown.select_one("main"))
    with psycopg.connect(database_url) as conn:
        stored = conn.execute("SELECT name, role FROM web.users WHERE id = %s", (dm.user.id,)).fetchone()
    assert stored == ("Schwester Agathe", "dm")  # data, not a translation

    # Sign-in sessions: headings, localised dates, device names and the toast in HX-Trigger.
    other = Browser(app).login(dm.user)  # a second browser to sign out from the first
    sessions = soup(dm.get("/account/sessions", headers=DE))
    assert sessions.select_one("h1").get_text() == "Deine Anmeldungen"
    assert [th.get_text() for th in sessions.select("thead th")][:4] == ["Gerät", "IP", "Angemeldet", "Zuletzt aktiv"]
    assert "Unbekannter Browser" in text_of(sessions)  # the test client's User-Agent isn't a browser
    stamp = sessions.select_one("td[data-label='Angemeldet'] time")
    # German day-month order and month name, 24-hour time ("02. Dez., 17:10"; English "Dec 02, 17:10")
    assert re.fullmatch(
        r"\d{2}\. (Jan|Feb|März|Apr|Mai|Juni|Juli|Aug|Sept|Okt|Nov|Dez)\.?, \d{2}:\d{2}", stamp.get_text()
    ), stamp.get_text()
    assert "UTC" in stamp["title"] and stamp["datetime"]
    form = next(f for f in sessions.select("form[hx-post]") if f.find_parent("tr").select_one(".badge-ok") is None)
    assert form["hx-confirm"] == "Diese Sitzung abmelden?"
    revoked = dm.post(form["hx-post"], htmx=True, headers=DE)
    assert revoked.status_code == 200
    assert json.loads(revoked.headers["HX-Trigger"])["toast"]["message"] == "Sitzung abgemeldet."
    assert other.get("/dashboard").status_code in (302, 303)


def test_settings_pages_in_german(app, as_role):
    owner = as_role("tenant_owner")
    page = soup(owner.get("/settings", headers=DE))
    assert page.select_one("h1").get_text() == "Einstellungen"
    assert page.select_one("#name-h").get_text() == "Deine Runde"
    assert page.select_one("#discord-h").get_text() == "Discord-Verbindung"
    assert page.select_one("#danger-h").get_text() == "Gefahrenzone"
    assert (
        page.select_one("label[for=confirm_name]").get_text().startswith("Gib zur Bestätigung den Namen der Runde ein")
    )
    assert_no_english(text_of(page), ["Your table", "Danger zone", "Delete this table", "Save name"])

    bad = owner.post("/settings/name", {"name": "  "}, htmx=True, headers=DE)
    assert bad.status_code == 422
    assert soup(bad).select_one("#name-error").get_text() == "Gib deiner Runde einen Namen."

    refused = owner.post("/settings/delete", {"confirm_name": "nope"}, htmx=True, headers=DE)
    assert refused.status_code == 422
    assert "Gib zur Bestätigung den Namen der Runde genau so ein" in text_of(soup(refused))

    providers = soup(owner.get("/settings/providers", headers=DE))
    assert providers.select_one("h1").get_text() == "Sprach- & KI-Anbieter"
    assert providers.select_one("#slot-llm-h").get_text() == "Sprachmodell"
    assert providers.select_one("#slot-tts-h").get_text() == "Sprachausgabe"
    assert "Nicht eingerichtet: Hörproben nutzen die lokale Engine." in text_of(providers)
    assert_no_english(text_of(providers), ["Language model", "Not configured", "Bring your own keys"])
    bad_key = owner.post(
        "/settings/providers",
        {"slot": "llm", "provider": "openai", "api_key": "has spaces in it"},
        htmx=True,
        headers=DE,
    )
    assert bad_key.status_code == 422
    assert "Das sieht nicht nach einem API-Schlüssel aus" in text_of(soup(bad_key))
