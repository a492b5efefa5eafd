"""The operators' platform dashboard (/admin): health checks with latency (the real simulator over
gRPC, the real secrets backend), live sessions and workers from public.sessions, the DB pool,
sign-ups and tables, the whole platform's usage with 12-month SVG charts and a table. The 15 s
refresh answers just the live block, and an open page picks up a change on its next refresh."""

from __future__ import annotations

import uuid

import psycopg

from tests.conftest import soup


def _num(doc, selector) -> float:
    return float(doc.select_one(selector).get_text(strip=True).replace(",", ""))


def _live_session(database_url, tenant_id, worker):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, channel_id, license_tier, state,"
            " worker_pod) VALUES (%s, %s, %s, %s, '1', 'shared', 'active', %s)",
            (
                "dash-" + uuid.uuid4().hex[:10],
                tenant_id,
                "c-" + tenant_id,
                str(10**17 + uuid.uuid4().int % 10**17),
                worker,
            ),
        )


def test_dashboard_shows_real_figures_and_refreshes(app, database_url, as_role, make_tenant):
    admin = as_role("super_admin")
    page = admin.get("/admin/")
    assert page.status_code == 200
    doc = soup(page)
    checks = {row.th.get_text(strip=True): row for row in doc.select("#health-checks tbody tr")}
    gw = checks["Voice gateway"]
    assert "OK" in gw.get_text() and "reachable" in gw.get_text()
    assert float(gw.select_one("td[data-label=Latency]").get_text().split()[0]) > 0  # measured, not canned
    assert any(name.startswith("Secrets") and "OK" in row.get_text() for name, row in checks.items())
    assert "Redis" in checks
    in_use, idle, overflow = (int(x) for x in doc.select_one("#db-pool").get_text().split("/"))
    assert in_use >= 1 and idle >= 0 and overflow >= 0  # this very request holds a connection
    sessions_before, workers_before = _num(doc, "#live-sessions"), _num(doc, "#live-workers")
    tokens_before, signups_before = _num(doc, "#usage-llm_tokens"), _num(doc, "#signups-total")
    assert len(doc.select("svg#chart-platform-llm_tokens rect.bar")) == 12
    assert len(doc.select("#platform-history tbody tr")) == 12
    assert "PROMETHEUS_URL" in page.get_data(as_text=True)  # hidden with an explanation
    # The refresh trigger: every 15 s plus an immediate "refresh" when the tab comes back.
    live = doc.select_one("#platform-live")
    assert live["hx-trigger"] == "every 15s, refresh" and live.has_attr("data-refresh-when-visible")

    # The world changes while the page is open: two tables with live sessions on two workers,
    # usage recorded for two tables this month and last year, a new sign-up.
    t1, t2 = make_tenant(), make_tenant()
    _live_session(database_url, t1, "worker-a-" + t1)
    _live_session(database_url, t2, "worker-b-" + t2)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for t, tokens in ((t1, 1000), (t2, 2345)):
            conn.execute(
                "INSERT INTO public.usage_records (tenant_id, period, session_hours, llm_tokens)"
                " VALUES (%s, date_trunc('month', now())::date, 1.5, %s)",
                (t, tokens),
            )
        conn.execute(
            "INSERT INTO public.usage_records (tenant_id, period, llm_tokens)"
            " VALUES (%s, (date_trunc('month', now()) - interval '11 months')::date, 777777)",
            (t1,),
        )
    as_role("dm")

    refresh = admin.get("/admin/", htmx=True)  # what the 15 s poll asks for
    assert refresh.status_code == 200
    body = refresh.get_data(as_text=True)
    assert "<html" not in body and 'id="health-checks"' in body  # the live block only
    doc = soup(refresh)
    assert _num(doc, "#live-sessions") == sessions_before + 2
    assert _num(doc, "#live-workers") == workers_before + 2
    assert _num(doc, "#usage-llm_tokens") == tokens_before + 3345
    assert _num(doc, "#signups-total") == signups_before + 1  # the DM who signed up since
    oldest = doc.select("#platform-history tbody tr")[-1]
    assert float(oldest.select("td")[1].get_text().replace(",", "")) >= 777777
    bars = doc.select("svg#chart-platform-llm_tokens rect.bar")
    assert float(bars[0]["height"]) > float(bars[-1]["height"])  # the 11-months-ago bar is the tallest


def test_dashboard_is_for_super_admins_only(app, as_role):
    for role in ("tenant_owner", "dm", "viewer"):
        assert as_role(role).get("/admin/").status_code == 403
        assert as_role(role).get("/admin/", htmx=True).status_code == 403
