"""Usage page (this month vs quota, 12 months as SVG + table, per-campaign hours), the streamed
CSV export, and the dashboard's quota warnings — all from the gateway's own tables."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from bs4 import BeautifulSoup

from glyphoxa_htmx.adapters.gateway.client import month_start
from glyphoxa_htmx.services.usage import add_months
from tests.conftest import soup
from tests.support.ws_server import gateway_tenant, make_campaign, sql


@pytest.fixture
def table(app, as_role, database_url):
    viewer = as_role("viewer")
    tenant = viewer.user.tenant_id
    gateway_tenant(app, tenant)
    this = month_start()
    rows = [
        (this, 3.5, 12000, 900.5, 4000),
        (add_months(this, -1), 6.25, 30000, 1800, 9000),
        (add_months(this, -13), 99, 1, 1, 1),
    ]  # outside the 12 months shown
    for period, hours, tokens, stt, tts in rows:
        sql(
            database_url,
            "INSERT INTO public.usage_records (tenant_id, period, session_hours, llm_tokens, stt_seconds,"
            " tts_chars) VALUES (%s, %s, %s, %s, %s, %s)",
            (tenant, period, hours, tokens, stt, tts),
        )
    # Another tenant's usage must never show up.
    sql(
        database_url,
        "INSERT INTO public.usage_records (tenant_id, period, session_hours, llm_tokens) VALUES "
        "('someone_else', %s, 77, 7777777)",
        (this,),
    )
    campaign = make_campaign(app, tenant, "The Salt Road")
    start = datetime.combine(this, datetime.min.time(), tzinfo=UTC) + timedelta(hours=1)
    sql(
        database_url,
        "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, license_tier, state,"
        " started_at, ended_at) VALUES (gen_random_uuid()::text, %s, %s, '1', 'shared', 'ended', %s, %s),"
        " (gen_random_uuid()::text, %s, %s, '1', 'shared', 'ended', %s, %s)",
        (
            tenant,
            campaign,
            start,
            start + timedelta(hours=2),
            tenant,
            campaign,
            start + timedelta(hours=5),
            start + timedelta(hours=5, minutes=30),
        ),
    )
    return viewer, tenant, this


def test_usage_page_shows_month_history_and_campaigns(app, table):
    viewer, tenant, this = table
    resp = viewer.get("/usage")
    assert resp.status_code == 200
    page = soup(resp)
    assert "3.50" in page.select_one("#meter-hours").text and "unlimited" in page.select_one("#meter-hours").text
    assert "12,000" in page.select_one("#meter-llm").text
    assert "4,000" in page.select_one("#meter-tts").text
    rows = page.select("#history tbody tr")
    assert len(rows) == 12
    assert rows[0].th.text == this.strftime("%Y-%m") and rows[0].select("td")[0].text == "3.5"
    assert rows[1].select("td")[1].text == "30000"
    assert "7777777" not in page.text and "99" not in rows[-1].text
    bars = page.select("#chart-session_hours rect.bar")
    assert len(bars) == 12
    assert float(bars[-2]["height"]) > float(bars[-1]["height"]) > 0  # last month 6.25 h > this month 3.5 h
    (camp,) = page.select("#per-campaign tbody tr")
    assert [td.text for td in camp.select("td")] == ["The Salt Road", "2", "2.50"]
    assert not page.select("[style]") and not page.select("script:not([src])")
    nav = soup(viewer.get("/dashboard")).select_one("nav.sidenav")
    assert nav.select_one("a[href='/usage']") is not None and nav.select_one("a[href='/billing']") is not None
    assert "soon" not in nav.text
    assert viewer.get("/billing").status_code == 403  # the entry is there, the page is the owner's (plan §6)


def test_usage_export_streams_csv_for_a_range(app, table):
    viewer, tenant, this = table
    first = add_months(this, -1)
    resp = viewer.get(f"/usage/export?from={first:%Y-%m}&to={this:%Y-%m}")
    assert resp.status_code == 200
    assert resp.mimetype == "text/csv" and resp.is_streamed
    assert resp.headers["Content-Disposition"] == (
        f'attachment; filename="glyphoxa-usage-{tenant}-{first:%Y-%m}-{this:%Y-%m}.csv"'
    )
    rows = list(csv.reader(io.StringIO(resp.get_data(as_text=True))))
    assert rows[0] == ["month", "session_hours", "llm_tokens", "stt_seconds", "tts_chars"]
    assert rows[1][:3] == [f"{first:%Y-%m}", "6.25", "30000"] and rows[2][:3] == [f"{this:%Y-%m}", "3.50", "12000"]
    assert len(rows) == 3
    bad = viewer.get(f"/usage/export?from={this:%Y-%m}&to={first:%Y-%m}")
    assert bad.status_code == 422 and "must not be after" in soup(bad).select_one("#from-error").text
    assert viewer.get("/usage/export?from=yesterday").status_code == 422


@pytest.mark.parametrize("hours, expected", [(7.9, None), (8.5, "85% of this month"), (10, "used up")])
def test_dashboard_warns_at_80_and_100_percent(app, as_role, database_url, hours, expected):
    b = as_role("dm")
    gateway_tenant(app, b.user.tenant_id)
    sql(database_url, "UPDATE public.tenants SET monthly_session_hours = 10 WHERE id = %s", (b.user.tenant_id,))
    sql(
        database_url,
        "INSERT INTO public.usage_records (tenant_id, period, session_hours) VALUES (%s, %s, %s)",
        (b.user.tenant_id, month_start(), hours),
    )
    warning = soup(b.get("/dashboard")).select_one("#quota-warning")
    if expected is None:
        assert warning is None
    else:
        assert expected in warning.text and warning.select_one("a[href='/usage']")


def test_usage_page_queries_do_not_grow_with_data(app, table, as_role, database_url):
    from tests.test_campaigns import count_queries

    viewer, tenant, this = table
    empty = as_role("viewer")
    gateway_tenant(app, empty.user.tenant_id)
    empty.get("/usage")  # warm: one-time checks (gateway tables present) are cached after this
    with count_queries(app) as small:
        assert empty.get("/usage").status_code == 200
    for n in range(3):  # more campaigns, sessions and months of records
        campaign = make_campaign(app, tenant, f"Extra {n}")
        sql(
            database_url,
            "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, license_tier, state,"
            " started_at, ended_at) SELECT gen_random_uuid()::text, %s, %s, '1', 'shared', 'ended',"
            " now() - interval '2 hours', now() - interval '1 hour' FROM generate_series(1, 20)",
            (tenant, campaign),
        )
        sql(
            database_url,
            "INSERT INTO public.usage_records (tenant_id, period, session_hours) VALUES (%s, %s, 1)",
            (tenant, add_months(this, -(n + 2))),
        )
    viewer.get("/usage")
    with count_queries(app) as big:
        assert viewer.get("/usage").status_code == 200
    assert len(big) == len(small), [q[:60] for q in big]


def test_the_dashboard_reads_this_months_hours_with_its_tenant_and_shows_what_month_usage_says(
    app, as_role, database_url
):
    """A table's DM reads the tenant, its onboarding progress, this month's usage and the session
    widgets in one statement; a viewer, who has no onboarding steps, the same without the probes.
    Both widgets say the same for rows the gateway wrote: no gateway row, a quota without a record
    this month, last month's record, fractional hours."""
    from tests.test_campaigns import count_queries

    dm = as_role("dm")
    tenant = dm.user.tenant_id
    viewer = as_role("viewer", tenant_id=tenant)

    def widgets():
        return [str(soup(b.get("/dashboard")).select_one("section[aria-labelledby=w-hours]")) for b in (dm, viewer)]

    seen = []
    widgets()  # warm: the sign-ins and the gateway tables' presence are remembered
    with count_queries(app) as statements:
        seen.append(widgets())
    assert len(statements) == 1 + 1  # the DM's page, then the viewer's
    gateway_tenant(app, tenant)
    sql(database_url, "UPDATE public.tenants SET monthly_session_hours = 12 WHERE id = %s", (tenant,))
    seen.append(widgets())
    last_month = (month_start() - timedelta(days=1)).replace(day=1)
    sql(
        database_url,
        "INSERT INTO public.usage_records (tenant_id, period, session_hours, llm_tokens) VALUES (%s, %s, 9, 5)",
        (tenant, last_month),
    )
    seen.append(widgets())
    sql(
        database_url,
        "INSERT INTO public.usage_records (tenant_id, period, session_hours) VALUES (%s, %s, 4.25)",
        (tenant, month_start()),
    )
    seen.append(widgets())
    for dm_widget, viewer_widget in seen:
        assert dm_widget == viewer_widget
    texts = [" ".join(BeautifulSoup(w, "html.parser").get_text().split()) for w, _v in seen]
    assert texts[0] == "Session hours this month 0.00 hours · unlimited"
    assert texts[1] == texts[2] == "Session hours this month 0.00 of 12.00 hours 0%"
    assert texts[3] == "Session hours this month 4.25 of 12.00 hours 35%"
