"""The platform dashboard's provider panel (Prometheus's query API, against a local Prometheus
double over real HTTP: its success and error shapes, a dead port, a server that never answers)
and its revenue figures (MRR and churn from web.subscriptions rows, billing on and off)."""

from __future__ import annotations

import socket
import time
import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.conftest import soup
from tests.support.fake_prometheus import FakePrometheus, provider_answers


@pytest.fixture
def prom():
    fake = FakePrometheus(provider_answers()).start()
    yield fake
    fake.stop()


@pytest.fixture
def prom_url(app, monkeypatch):
    """Point PROMETHEUS_URL somewhere for one test (and start with an empty answer cache)."""
    from glyphoxa_htmx.services import platform

    monkeypatch.setattr(platform, "_prom_cache", {})

    def _set(url: str) -> None:
        monkeypatch.setattr(app.extensions["glyphoxa.settings"], "prometheus_url", url)

    return _set


def _provider_rows(doc) -> dict:
    return {
        (r.th.get_text(strip=True), r.select_one("td[data-label=Provider]").get_text(strip=True)): {
            k: r.select_one(f"td[data-label={k}]").get_text(strip=True) for k in ("p50", "p99", "Errors")
        }
        for r in doc.select("#provider-health tbody tr")
        if r.th
    }


def test_provider_latency_and_errors_from_prometheus(app, as_role, prom, prom_url):
    from glyphoxa_htmx.services import platform

    prom_url(prom.url + "/")  # a trailing slash is fine
    admin = as_role("super_admin")
    page = admin.get("/admin/")
    assert page.status_code == 200
    rows = _provider_rows(soup(page))
    assert rows[("Language model", "openai")] == {"p50": "123 ms", "p99": "850 ms", "Errors": "0.0 %"}
    assert rows[("Text-to-speech (first audio)", "elevenlabs")] == {
        "p50": "400 ms",
        "p99": "2,200 ms",
        "Errors": "2.5 %",
    }
    assert rows[("Speech-to-text", "deepgram")] == {"p50": "—", "p99": "—", "Errors": "—"}  # NaN: no data

    # Exactly the three instant queries, on the query API's path.
    assert [(m, p) for m, p, _ in prom.requests] == [("GET", "/api/v1/query")] * 3
    sent = [q for _, _, q in prom.requests]
    assert sent == [platform.latency_query(0.5), platform.latency_query(0.99), platform.error_rate_query()]
    assert (
        "histogram_quantile(0.5, sum by (le, provider) (rate(glyphoxa_voice_llm_round_seconds_bucket[5m])))" in sent[0]
    )
    assert (
        "histogram_quantile(0.99, sum by (le, provider) (rate(glyphoxa_voice_stt_request_seconds_bucket[5m])))"
        in (sent[1])
    )
    assert sent[2] == (
        "sum by (stage, provider) (rate(glyphoxa_voice_provider_errors_total[5m]))"
        " / sum by (stage, provider) (rate(glyphoxa_voice_provider_calls_total[5m]))"
    )

    # The 15 s refresh within the cache window asks Prometheus nothing new.
    refresh = admin.get("/admin/", htmx=True)
    assert "<html" not in refresh.get_data(as_text=True) and _provider_rows(soup(refresh)) == rows
    assert len(prom.requests) == 3


def test_prometheus_error_answer_is_a_note_not_a_500(app, as_role, prom, prom_url):
    prom.error = (400, "bad_data", "1:1: parse error: unexpected character")
    prom_url(prom.url)
    page = as_role("super_admin").get("/admin/")
    assert page.status_code == 200
    doc = soup(page)
    note = doc.select_one("#providers-note").get_text(" ", strip=True)
    assert "Prometheus answered with an error: bad_data: 1:1: parse error" in note
    assert doc.select_one("#provider-health") is None
    assert len(prom.requests) == 1  # gave up after the first failure


def test_prometheus_unreachable_and_slow(app, as_role, prom, prom_url, monkeypatch):
    from glyphoxa_htmx.services import platform

    admin = as_role("super_admin")
    ready_before = app.test_client().get("/readyz").status_code

    # A port nobody listens on.
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    dead = s.getsockname()[1]
    s.close()
    prom_url(f"http://127.0.0.1:{dead}")
    page = admin.get("/admin/")
    assert page.status_code == 200
    note = soup(page).select_one("#providers-note").get_text(" ", strip=True)
    assert note.startswith("Prometheus unreachable: connection failed")
    assert str(dead) not in note  # never the URL (it may carry credentials)
    assert app.test_client().get("/readyz").status_code == ready_before  # /readyz never asks it

    # A server that accepts and never answers in time: bounded by the budget.
    monkeypatch.setattr(platform, "_prom_cache", {})
    monkeypatch.setattr(platform, "PROMETHEUS_BUDGET", 0.6)
    prom.delay = 3.0
    prom_url(prom.url)
    started = time.monotonic()
    page = admin.get("/admin/")
    took = time.monotonic() - started
    assert page.status_code == 200 and took < 2.5, took
    assert "Prometheus unreachable: no answer within" in soup(page).select_one("#providers-note").get_text()
    seen = len(prom.requests)
    assert app.test_client().get("/readyz").status_code == ready_before
    assert len(prom.requests) == seen


def test_provider_panel_hidden_without_prometheus_url(app, as_role, prom_url):
    prom_url("")
    doc = soup(as_role("super_admin").get("/admin/"))
    assert "Set PROMETHEUS_URL" in doc.select_one("#providers-note").get_text(" ", strip=True)
    assert doc.select_one("#provider-health") is None


# ---- MRR and churn -------------------------------------------------------------------------


def _subscription(database_url, tenant_id, tier, interval, status, created_days_ago, canceled_days_ago=None):
    now = datetime.now(UTC)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO web.subscriptions (id, tenant_id, stripe_subscription_id, stripe_customer_id, tier, interval,"
            " status, created_at, canceled_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                str(uuid.uuid4()),
                tenant_id,
                "sub_" + uuid.uuid4().hex[:12],
                "cus_" + uuid.uuid4().hex[:12],
                tier,
                interval,
                status,
                now - timedelta(days=created_days_ago),
                None if canceled_days_ago is None else now - timedelta(days=canceled_days_ago),
            ),
        )


def test_mrr_and_churn_with_billing_enabled(app, as_role, make_tenant, database_url, monkeypatch):
    admin = as_role("super_admin")
    doc = soup(admin.get("/admin/"))  # billing disabled: hidden, with the reason
    assert doc.select_one("#mrr") is None and doc.select_one("#churn") is None
    assert "no subscriptions, MRR or churn" in doc.select_one("#revenue-note").get_text()

    monkeypatch.setattr(app.extensions["glyphoxa.settings"], "billing", "stripe")
    rows = [
        ("adventurer", "month", "active", 60, None),  # $9.00
        ("dungeon_master", "year", "active", 60, None),  # $190 / 12 = $15.83
        ("guild", "month", "past_due", 60, None),  # $29.00, still billed
        ("adventurer", "month", "trialing", 5, None),  # a trial pays nothing yet
        ("adventurer", "month", "canceled", 90, 10),  # churned in the window, active at its start
        ("guild", "month", "canceled", 100, 45),  # ended before the window: neither
        ("dungeon_master", "month", "incomplete", 40, None),  # never started: neither
    ]
    for tier, interval, status, created, canceled in rows:
        _subscription(database_url, make_tenant(), tier, interval, status, created, canceled)
    doc = soup(admin.get("/admin/"))
    assert doc.select_one("#mrr").get_text(strip=True) == "$53.83"
    assert doc.select_one("#churn").get_text(strip=True) == "25.0 %"  # 1 of 4
    assert "1 paid subscription canceled of 4 active 30 days ago" in doc.select_one("#churn-detail").get_text()
    by_tier = {
        (
            r.select_one("td[data-label=Tier]").get_text(),
            r.select_one("td[data-label=Status]").get_text(),
        ): r.select_one("td[data-label=Tables]").get_text()
        for r in doc.select("#subscriptions tbody tr")
    }
    assert by_tier[("Adventurer", "active")] == "1" and by_tier[("Guild", "canceled")] == "1"

    # Another cancellation today moves churn; nothing active at the window's start: no figure.
    _subscription(database_url, make_tenant(), "guild", "month", "canceled", 200, 0)
    assert soup(admin.get("/admin/", htmx=True)).select_one("#churn").get_text(strip=True) == "40.0 %"  # 2 of 5
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE web.subscriptions SET created_at = now()")
    assert soup(admin.get("/admin/")).select_one("#churn").get_text(strip=True) == "—"
