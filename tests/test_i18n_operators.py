"""The operators' pages in German (issue 17): dashboard (health, revenue, provider panel with
localised numbers and a Prometheus failure worded per reader, although the answer is cached),
the tenant drill-down with its actions, field errors and toasts."""

from __future__ import annotations

import socket

import pytest

from tests.conftest import soup
from tests.support.fake_prometheus import FakePrometheus, provider_answers

DE = {"Accept-Language": "de-DE,de;q=0.9"}


@pytest.fixture
def prom(app, monkeypatch):
    from glyphoxa_htmx.services import platform

    fake = FakePrometheus(provider_answers()).start()
    monkeypatch.setattr(platform, "_prom_cache", {})
    monkeypatch.setattr(app.extensions["glyphoxa.settings"], "prometheus_url", fake.url)
    yield fake
    fake.stop()


def test_dashboard_in_german(app, as_role, prom, monkeypatch):
    admin = as_role("super_admin")
    doc = soup(admin.get("/admin/", headers=DE))
    assert doc.select_one("html")["lang"] == "de"
    assert doc.select_one("h1").get_text() == "Plattform-Verwaltung"
    checks = {r.th.get_text(strip=True): r.get_text(" ", strip=True) for r in doc.select("#health-checks tbody tr")}
    assert "erreichbar" in checks["Voice-Gateway"] and "OK" in checks["Voice-Gateway"]
    rows = {r.th.get_text(strip=True): r for r in doc.select("#provider-health tbody tr")}
    tts = rows["Sprachausgabe (erster Ton)"]
    assert tts.select_one("td[data-label=p99]").get_text() == "2.200 ms"  # German separators
    assert tts.select_one("td[data-label=Fehler]").get_text() == "2,5 %"
    assert "Die Abrechnung ist ausgeschaltet" in doc.select_one("#revenue-note").get_text()
    # The same cached answer, in English for an English reader.
    doc = soup(admin.get("/admin/"))
    assert "Text-to-speech (first audio)" in doc.select_one("#provider-health").get_text()
    assert len(prom.requests) == 3

    # A failure, cached too, worded in each reader's language.
    from glyphoxa_htmx.services import platform

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    monkeypatch.setattr(platform, "_prom_cache", {})
    monkeypatch.setattr(app.extensions["glyphoxa.settings"], "prometheus_url", f"http://127.0.0.1:{dead}")
    note = soup(admin.get("/admin/", headers=DE)).select_one("#providers-note").get_text(" ", strip=True)
    assert note.startswith("Prometheus nicht erreichbar: Verbindung fehlgeschlagen")
    note = soup(admin.get("/admin/")).select_one("#providers-note").get_text(" ", strip=True)
    assert note.startswith("Prometheus unreachable: connection failed")


def test_drilldown_and_its_actions_in_german(app, as_role, make_tenant, make_user):
    from glyphoxa_htmx.core.deps import gateway

    tid = make_tenant(name="Deutsche Runde")
    with app.app_context():
        gateway().create_tenant(tid, license_tier="shared")
    admin = as_role("super_admin")
    doc = soup(admin.get(f"/admin/tenants/{tid}", headers=DE))
    assert doc.select_one("#tier-h").get_text() == "Stufe"
    assert doc.select_one("#tier-form button").get_text() == "Stufe ändern"
    assert doc.select_one("#member-list thead").get_text(" ", strip=True).startswith("Name E-Mail Rolle")
    assert "Noch nichts aufgezeichnet." in doc.select_one("#recent-audit").get_text()

    bad = admin.post(
        f"/admin/tenants/{tid}/tier",
        {"license_tier": "dedicated", "hours": "abc"},
        htmx=True,
        headers={**DE, "HX-Target": "tier"},
    )
    assert bad.status_code == 422
    assert "höchstens zwei Nachkommastellen" in soup(bad).select_one("#hours-error").get_text()

    ok = admin.post(f"/admin/tenants/{tid}/tier", {"license_tier": "dedicated", "hours": "7.5"}, headers=DE)
    assert ok.status_code == 303
    shown = admin.get(f"/admin/tenants/{tid}", headers=DE).get_data(as_text=True)
    assert f"{tid} ist jetzt dedicated, 7,5 Stunden im Monat." in shown

    make_user("dm", tenant_id=tid)
    ask = soup(admin.post(f"/admin/tenants/{tid}/revoke-sign-ins", headers=DE))
    assert ask.h1.get_text() == "Alle bei Deutsche Runde abmelden?"
    done = admin.post(f"/admin/tenants/{tid}/revoke-sign-ins", {"confirmed": "1"}, headers=DE)
    assert "0 Anmeldungen bei Deutsche Runde beendet." in admin.get(done.headers["Location"], headers=DE).get_data(
        as_text=True
    )
