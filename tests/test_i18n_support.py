"""Support tickets in German (issue 17): labels, field errors, toasts and statuses follow the
language; the stored status stays the English key the Freshdesk sync and filters use."""

from __future__ import annotations

import psycopg

from tests.conftest import soup

DE = {"Accept-Language": "de-DE,de;q=0.9"}


def test_support_pages_speak_german(app, database_url, as_role):
    dm = as_role("dm")
    page = soup(dm.get("/support", headers=DE))
    assert page.select_one("html")["lang"] == "de"
    assert page.select_one("h1").get_text() == "Support"
    assert page.select_one("#new-h").get_text() == "Hilfe anfragen"
    assert "Noch keine Tickets." in page.select_one("#ticket-list").get_text()
    assert "Eine Frage" in page.select_one("#t-category").get_text()

    bad = dm.post("/support", {"subject": "", "body": "x", "category": "bug"}, htmx=True, headers=DE)
    assert bad.status_code == 422
    assert "Gib dem Ticket einen Betreff." in soup(bad).get_text()  # at the field, in German

    sent = dm.post(
        "/support",
        {"subject": "Greta schweigt", "body": "Seit Dienstag.", "category": "session"},
        htmx=True,
        headers=DE,
    )
    # The toast travels as a flash across the htmx redirect, translated when it was queued.
    shown_after = dm.get(sent.headers["HX-Redirect"], headers=DE).get_data(as_text=True)
    assert "Dein Ticket wurde gesendet. Wir antworten hier." in shown_after
    with psycopg.connect(database_url) as conn:
        ticket_id, status = conn.execute(
            "SELECT id, status FROM web.support_tickets WHERE tenant_id = %s", (dm.user.tenant_id,)
        ).fetchone()
    assert status == "open"  # data, not a translation
    shown = soup(dm.get(f"/support/{ticket_id}", headers=DE))
    assert shown.select_one("#ticket-status").get_text() == "offen"
    assert "Probleme in einer Sprachsitzung" in shown.get_text()
    # Without a German browser the same page is English.
    assert soup(dm.get(f"/support/{ticket_id}")).select_one("#ticket-status").get_text() == "open"
