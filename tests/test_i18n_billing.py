"""Billing, the team page, usage and the voice library in German (issue 17): rendered with
``Accept-Language: de`` against the real database, the Stripe double, the gateway simulator and the
SMTP test server; German at the places that matter (headings, field errors, toasts, empty states,
prices, month names, the failed-payment e-mail) and none of the pages' key English sentences left.
English stays the default (the other test modules assert it)."""

from __future__ import annotations

import email
import email.policy
import io
import json
import shutil
from datetime import date

import pytest
from babel.dates import format_date
from sqlalchemy import select

from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import VoiceSample
from tests import test_billing, test_mail
from tests.conftest import Browser, soup
from tests.support.fake_stripe import FakeStripe
from tests.support.ws_server import gateway_tenant, sql

DE = {"Accept-Language": "de-DE,de;q=0.9,en;q=0.5"}

# The SMTP server with STARTTLS and its certificate (tests/test_mail.py), and the Stripe double.
certificate = test_mail.certificate
smtp_server = test_mail.smtp_server
stripe_api = test_billing.stripe_api


def german(browser: Browser, url: str):
    """The page's main content (the shell around it is another area's), in German."""
    resp = browser.get(url, headers=DE)
    assert resp.status_code == 200, resp.get_data(as_text=True)[:500]
    assert '<html lang="de">' in resp.get_data(as_text=True)
    return soup(resp).select_one("#main")


def no_english(text: str, sentences: list[str]) -> None:
    left = [s for s in sentences if s in text]
    assert not left, left


def toast(resp) -> str:
    return json.loads(resp.headers["HX-Trigger"])["toast"]["message"]


# ---- billing ---------------------------------------------------------------------------------------


@pytest.fixture
def billing_app(app, database_url, simulator, stripe_api, smtp_server, certificate):
    """GLYPHOXA_BILLING=stripe against the double, mail over STARTTLS to the test SMTP server."""
    controller, inbox = smtp_server
    application = test_billing.make_billing_app(
        database_url,
        simulator,
        stripe_api,
        smtp_url=f"smtp://127.0.0.1:{controller.port}",
        smtp_ca_file=str(certificate[0]),
        mail_from="Glyphoxa <billing@glyphoxa.test>",
    )
    application.inbox = inbox
    yield application
    test_billing.dispose(application)


def _owner(billing_app, make_user, database_url, *, tenant_id=None, locale=None):
    user = make_user("tenant_owner", tenant_id=tenant_id)
    sql(
        database_url,
        "UPDATE web.users SET email = %s, locale = %s WHERE id = %s",
        (f"{user.id}@example.test", locale, user.id),
    )
    b = Browser(billing_app).login(user)
    b.user = user
    return b


def _mails(inbox) -> dict[str, email.message.EmailMessage]:
    out = {}
    for m in inbox.messages:
        msg = email.message_from_bytes(m["data"].encode(), policy=email.policy.default)
        out[m["to"][0]] = msg
    return out


def test_billing_page_plans_prices_and_invoices_in_german(billing_app, stripe_api, make_user, database_url):
    owner = _owner(billing_app, make_user, database_url)
    gateway_tenant(billing_app, owner.user.tenant_id)
    page = german(owner, "/billing")
    assert page.select_one("h1").text == "Abrechnung"
    assert page.select_one("#plan-h").text.startswith("Dein Tarif:")
    assert page.select_one("#current-tier").text == "Lehrling"
    assert "8 Sprachsitzungsstunden im Monat, 2 NPCs" in page.text
    plans = page.select_one("#plans-h").find_parent("section")
    assert [th.text for th in plans.select("thead th")][:3] == ["Tarif", "Preis", "Sitzungsstunden / Monat"]
    names = [th.contents[0].strip() for th in plans.select("tbody th")]
    assert names == ["Lehrling", "Abenteurer", "Spielleitung", "Gilde"]
    # Prices in the German currency layout, per month and per year; free and unlimited in words.
    buttons = [b.text.replace("\xa0", " ") for b in plans.select("button")]
    assert "9 $/Monat" in buttons and "90 $/Jahr" in buttons and "290 $/Jahr" in buttons
    assert "Kostenlos" in plans.text and "Unbegrenzt" in plans.text and "(5 Plätze)" in plans.text
    assert "Premium + eigenes Training" in plans.text
    assert "Noch keine Rechnungen." in page.text
    no_english(page.text, ["Billing", "Your plan", "Plans", "Free", "Unlimited", "/mo", "/yr", "No invoices yet."])

    # A failed payment: the banner, the status, the invoice (amount, state) in German.
    sub_id = test_billing.subscribe(billing_app, stripe_api, owner, "dungeon_master")
    stripe_api.update_subscription(sub_id, status="past_due")
    invoice = stripe_api.invoice(sub_id, "open", amount=123456)
    event = FakeStripe.event("invoice.payment_failed", invoice)
    assert test_billing.deliver(billing_app, event).status_code == 200
    page = german(owner, "/billing")
    banner = page.select_one("#past-due-banner").text
    assert "Deine letzte Zahlung ist fehlgeschlagen." in banner
    assert "Dein Tarif „Spielleitung“ bleibt noch 7 Tage der 7-tägigen Schonfrist aktiv" in banner
    assert page.select_one("#current-tier").text == "Spielleitung"
    assert page.select_one("#sub-status").text == "überfällig"
    row = page.select_one("#invoices tbody tr").text
    assert "1.234,56 USD" in row and "offen" in row and "Rechnung ansehen" in row
    no_english(page.text, ["Your last payment failed", "grace period", "past due", "View invoice", "monthly"])


def test_payment_failed_mail_is_in_each_owners_language(billing_app, stripe_api, make_user, database_url):
    german_owner = _owner(billing_app, make_user, database_url, locale="de")
    tenant = german_owner.user.tenant_id
    english_owner = _owner(billing_app, make_user, database_url, tenant_id=tenant)  # no choice: English
    gateway_tenant(billing_app, tenant)
    sub_id = test_billing.subscribe(billing_app, stripe_api, german_owner, "adventurer")
    stripe_api.update_subscription(sub_id, status="past_due")
    invoice = stripe_api.invoice(sub_id, "open", amount=1900)
    # Stripe sends no Accept-Language; a browser header would not matter either.
    event = FakeStripe.event("invoice.payment_failed", invoice)
    assert test_billing.deliver(billing_app, event).status_code == 200

    mails = _mails(billing_app.inbox)
    de = mails[f"{german_owner.user.id}@example.test"]
    assert de["Subject"] == "Deine Glyphoxa-Zahlung ist fehlgeschlagen"
    body = de.get_content().replace("\r\n", "\n")
    assert body.startswith("Hallo,\n\ndie Zahlung von 19,00 USD für deine Glyphoxa-Runde ist fehlgeschlagen.")
    assert "Dein Tarif bleibt 7 Tage aktiv" in body and invoice["hosted_invoice_url"] in body
    assert "kostenlosen Tarif „Lehrling“" in body
    no_english(body, ["Hello", "payment of", "Apprentice", "plan stays active"])

    en = mails[f"{english_owner.user.id}@example.test"]
    assert en["Subject"] == "Your Glyphoxa payment failed"
    body = en.get_content().replace("\r\n", "\n")
    assert "the payment of 19.00 USD for your Glyphoxa table failed" in body
    assert "free Apprentice plan" in body and "Hallo" not in body


# ---- the team page ---------------------------------------------------------------------------------


def test_team_page_invite_error_and_toasts_in_german(app, as_role):
    owner = as_role("tenant_owner")
    page = german(owner, "/team")
    assert page.select_one("h1").text == "Deine Runde"
    assert page.select_one("#invite h2").text == "Jemanden einladen"
    assert "Keine offenen Einladungen." in page.select_one("#pending").text
    assert [th.text for th in page.select("#members thead th")][:4] == [
        "Name",
        "Rolle",
        "Letzte Anmeldung",
        "Dabei seit",
    ]
    no_english(page.text, ["Your table", "Invite someone", "No pending invitations", "Pending invitations"])

    bad = owner.post("/team/invitations", {"kind": "discord", "discord_id": "12ab", "role": "viewer"}, headers=DE)
    assert bad.status_code == 422
    error = soup(bad).select_one("#discord_id-error").text
    assert "Eine Discord-Benutzer-ID hat 17–20 Ziffern" in error and "Developer Mode" not in error

    created = owner.post("/team/invitations", {"kind": "link", "role": "viewer"}, htmx=True, headers=DE)
    assert created.status_code == 200
    assert toast(created) == "Einladungslink erstellt: Kopiere ihn jetzt, er wird nur einmal angezeigt."
    notice = soup(created).select_one("#invite .notice").text
    assert "Teile diesen Link (wird nur einmal angezeigt; für eine Person, bis" in notice
    row = soup(created).select_one("#pending tbody tr")
    assert row.select_one("[data-label='Für']").text == "Link"
    revoke = row.select_one("form[action$='/revoke']")["action"]
    assert toast(owner.post(revoke, htmx=True, headers=DE)) == "Einladung zurückgezogen."


# ---- usage -----------------------------------------------------------------------------------------


def test_usage_page_months_and_export_error_in_german(app, as_role):
    owner = as_role("tenant_owner")
    page = german(owner, "/usage")
    today = date.today()
    assert page.select_one("h1").text == "Nutzung"
    assert page.select_one("#month-h").text == f"Dieser Monat ({format_date(today, 'MMMM y', locale='de')})"
    assert "unbegrenzt" in page.select_one("#meter-hours").text
    assert "In diesem Monat noch keine Sitzungen." in page.text
    # The charts' month labels, titles and the history table's headings.
    labels = [t.text for t in page.select("#chart-session_hours text")]
    first = date(today.year - (today.month <= 11), (today.month % 12) + 1, 1)  # eleven months back
    assert labels[0] == format_date(first, "LLL", locale="de") and labels[-1] == format_date(today, "LLL", locale="de")
    assert "Sitzungsstunden, letzte 12 Monate (Höchstwert 1)" in page.select_one("#chart-session_hours title").text
    bar = page.select_one("#chart-session_hours rect.bar title").text
    assert bar.startswith(format_date(first, "MMMM y", locale="de"))
    assert [th.text for th in page.select("#history thead th")] == [
        "Monat",
        "Sitzungsstunden",
        "LLM-Tokens",
        "Sekunden Spracherkennung",
        "Zeichen Sprachausgabe",
    ]
    no_english(page.text, ["This month", "Session hours", "No sessions this month", "The last 12 months"])

    bad = owner.get("/usage/export?from=2026-05&to=2026-01", headers=DE)
    assert bad.status_code == 422
    assert soup(bad).select_one("#from-error").text.strip() == "Der Startmonat darf nicht nach dem Endmonat liegen."


def test_a_month_with_usage_has_german_numbers(app, as_role, database_url):
    owner = as_role("tenant_owner")
    tenant = owner.user.tenant_id
    gateway_tenant(app, tenant)
    this = date.today().replace(day=1)
    sql(
        database_url,
        "INSERT INTO public.usage_records (tenant_id, period, session_hours, llm_tokens, stt_seconds, tts_chars)"
        " VALUES (%s, %s, 3.5, 12000, 90, 4000)",
        (tenant, this),
    )
    page = german(owner, "/usage")
    assert "3,50" in page.select_one("#meter-hours").text
    assert "12.000" in page.select_one("#meter-llm").text
    assert "4.000 Zeichen" in page.select_one("#meter-tts").text
    assert "90 Sekunden" in page.select_one("#meter-stt").text
    row = page.select_one("#history tbody tr")
    assert row.th.text == f"{this:%Y-%m}" and row.select("td")[0].text == "3,5" and row.select("td")[1].text == "12000"


# ---- the voice library -----------------------------------------------------------------------------


@pytest.fixture
def local_store(monkeypatch, tmp_path):
    monkeypatch.delenv("S3_BUCKET", raising=False)
    monkeypatch.setenv("VOICE_SAMPLES_DIR", str(tmp_path / "samples"))


def test_voice_library_in_german(app, as_role, local_store):
    dm = as_role("dm")
    page = german(dm, "/voice-library")
    assert page.select_one("h1").text == "Stimmbibliothek"
    assert page.select_one("#upload-h").text == "Aufnahme hochladen"
    assert page.select_one("#sample-name")["placeholder"] == "z. B. Rauer Wirt"
    assert "Noch keine Sprachaufnahmen." in page.text
    no_english(page.text, ["Voice library", "Upload a sample", "No voice samples yet", "We check the audio"])

    empty = dm.post(
        "/voice-library",
        {"name": "Leer", "file": (io.BytesIO(b""), "empty.wav")},
        content_type="multipart/form-data",
        headers=DE,
    )
    assert empty.status_code == 422
    assert soup(empty).select_one("#file-error").text.strip() == "Die Datei ist leer."


@pytest.mark.skipif(not (shutil.which("sox") and shutil.which("ffprobe")), reason="sox and ffmpeg are needed")
def test_clone_failure_is_stored_in_english_and_shown_in_german(app, as_role, local_store, tmp_path, monkeypatch):
    from tests.test_voice_samples import make_audio

    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    monkeypatch.setattr(app.extensions["glyphoxa.settings"], "allow_platform_keys", False)
    dm = as_role("dm")
    added = dm.post(
        "/voice-library",
        {"name": "Wirt", "file": (io.BytesIO(make_audio(tmp_path, "wirt.wav")), "wirt.wav")},
        content_type="multipart/form-data",
        htmx=True,
        headers=DE,
    )
    assert added.status_code == 200 and toast(added) == "„Wirt“ ist jetzt in der Stimmbibliothek."
    with app.app_context():
        sample_id = db.session.execute(
            select(VoiceSample.id).where(VoiceSample.tenant_id == dm.user.tenant_id)
        ).scalar_one()

    resp = dm.post(f"/voice-library/{sample_id}/clone", htmx=True, headers=DE)
    assert toast(resp).startswith(
        "Klonen fehlgeschlagen: Für deine Runde ist kein ElevenLabs-API-Schlüssel gespeichert."
    )
    with app.app_context():
        stored = db.session.execute(select(VoiceSample.error).where(VoiceSample.id == sample_id)).scalar_one()
    assert stored.startswith("No ElevenLabs API key is saved for your table.")  # the database stays English
    card = german(dm, "/voice-library").select_one(f"#sample-{sample_id}")
    assert "Klonen fehlgeschlagen" in card.text and "Erneut klonen" in card.text
    assert "Für deine Runde ist kein ElevenLabs-API-Schlüssel gespeichert." in card.select_one(".sample-error").text
    no_english(card.text, ["cloning failed", "Try cloning again", "No ElevenLabs API key", "Open the recording"])
    # The same row in English for someone who reads English.
    card = soup(dm.get("/voice-library", headers={"Accept-Language": "en"})).select_one(f"#sample-{sample_id}")
    assert "No ElevenLabs API key is saved for your table." in card.text and "Try cloning again" in card.text
