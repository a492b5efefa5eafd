"""Sessions: list, detail, start/stop through the simulated gateway over gRPC, gateway errors at
the form, double-start protection, tenant isolation and bounded query counts."""

from __future__ import annotations

import json
import threading
from datetime import date

import pytest
from sqlalchemy import event

from glyphoxa_htmx.adapters.gateway.client import GatewayClient
from glyphoxa_htmx.core import fulltext
from glyphoxa_htmx.services import knowledge, transcripts
from tests.conftest import GATEWAY_SECRET, Browser, soup
from tests.support.ws_server import (
    gateway_tenant,
    make_campaign,
    seed,
    snowflake,
    sql,
    wait_for,
)


def start_form(t, **over):
    # These campaigns have no NPCs: answer the start form's "start anyway?" up front.
    data = {"campaign_id": t.campaign, "guild_id": t.guild, "channel_id": "987654321098765432", "empty_cast_ok": "1"}
    data.update(over)
    return data


def session_rows(database_url, tenant):
    return sql(database_url, "SELECT id, state, campaign_id FROM public.sessions WHERE tenant_id = %s", (tenant,))


def audit_actions(database_url, tenant):
    return [
        r[0] for r in sql(database_url, "SELECT action FROM web.audit_log WHERE tenant_id = %s ORDER BY id", (tenant,))
    ]


def metric(name, **labels):
    from prometheus_client import REGISTRY

    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
def swap_gateway(app):
    """Replace the app's gateway client for one test (None = no gateway configured)."""
    original = app.extensions.get("glyphoxa.gateway")

    def _swap(client):
        if client is None:
            app.extensions.pop("glyphoxa.gateway", None)
        else:
            app.extensions["glyphoxa.gateway"] = client

    yield _swap
    if original is not None:
        app.extensions["glyphoxa.gateway"] = original


def dead_gateway() -> GatewayClient:
    """A real client on a port nothing listens on: every call is UNAVAILABLE."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return GatewayClient(f"127.0.0.1:{port}", GATEWAY_SECRET, timeout=0.5, retries=0, breaker_threshold=0)


# ---- start ---------------------------------------------------------------------------------


def test_start_form_offers_campaigns_and_named_guilds(app, table, database_url):
    sql(
        database_url,
        "UPDATE web.users SET discord_guilds = %s::jsonb WHERE id = %s",
        (json.dumps([{"id": table.guild, "name": "The Rusty Anchor"}, {"id": "1", "name": "Other"}]), table.dm.user.id),
    )
    page = soup(table.dm.get("/sessions/new"))
    assert [o.text for o in page.select("#guild_id option")] == ["The Rusty Anchor"]
    assert page.select_one("#campaign_id option[selected]")["value"] == table.campaign  # the only one
    form = page.select_one("form#start-form")
    assert form["hx-disabled-elt"] and form.select_one("button[type=submit]") is not None
    assert not page.select_one("fieldset[disabled]")


def test_start_validates_channel_and_guild(app, table, database_url):
    resp = table.dm.post("/sessions/new", start_form(table, channel_id="12ab"), htmx=True)
    assert resp.status_code == 422
    page = soup(resp)
    assert "17 to 20 digits" in page.select_one("#channel_id-error").text
    assert page.select_one("#channel_id")["aria-invalid"] == "true"
    resp = table.dm.post("/sessions/new", start_form(table, guild_id=snowflake()), htmx=True)
    assert resp.status_code == 422 and "isn't one of your table's" in soup(resp).select_one("#guild_id-error").text
    assert not session_rows(database_url, table.tenant)


def test_start_live_stop_is_audited_and_counted(app, table, database_url, simulator):
    before = metric("glyphoxa_web_session_starts_total", tenant_id=table.tenant, result="ok")
    resp = table.dm.post("/sessions/new", start_form(table))
    assert resp.status_code == 303
    ((sid, state, campaign),) = session_rows(database_url, table.tenant)
    assert resp.headers["Location"] == f"/sessions/{sid}/live" and campaign == table.campaign
    assert metric("glyphoxa_web_session_starts_total", tenant_id=table.tenant, result="ok") == before + 1
    wait_for(lambda: session_rows(database_url, table.tenant)[0][1] == "active", what="session active")

    listing = soup(table.dm.get("/sessions"))
    live = listing.select_one(".live-now")
    assert live is not None and live.select_one(".badge-live") is not None
    assert listing.select_one(".badge-ok").text == "Bot connected"

    resp = table.dm.post(f"/sessions/{sid}/stop", htmx=True)
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == f"/sessions/{sid}"
    assert session_rows(database_url, table.tenant)[0][1] == "ended"
    assert audit_actions(database_url, table.tenant)[-2:] == ["session.start", "session.stop"]
    assert metric("glyphoxa_web_session_stops_total", tenant_id=table.tenant, reason="user") >= 1
    again = table.dm.post(f"/sessions/{sid}/stop", htmx=True)
    assert again.status_code == 409 and "already ended" in again.headers["HX-Trigger"]


def test_quota_exceeded_is_explained_at_the_form(app, table, database_url):
    sql(database_url, "UPDATE public.tenants SET monthly_session_hours = 2 WHERE id = %s", (table.tenant,))
    sql(
        database_url,
        "INSERT INTO public.usage_records (tenant_id, period, session_hours) VALUES (%s, %s, 2.5)",
        (table.tenant, date.today().replace(day=1)),
    )
    page = soup(table.dm.get("/sessions/new"))
    assert "2.50 of 2.00 session hours" in page.text
    resp = table.dm.post("/sessions/new", start_form(table), htmx=True)
    assert resp.status_code == 422
    assert "used all of this month's voice-session hours" in soup(resp).select_one(".notice-error").text
    assert not session_rows(database_url, table.tenant)
    assert metric("glyphoxa_web_session_starts_total", tenant_id=table.tenant, result="quota") == 1


def test_bot_not_connected_is_explained(app, table, database_url, simulator):
    simulator.set_bot_connected(table.tenant, False)
    try:
        assert soup(table.dm.get("/sessions")).select_one(".badge-danger").text == "Bot offline"
        resp = table.dm.post("/sessions/new", start_form(table), htmx=True)
        assert resp.status_code == 422
        assert "bot isn't connected" in soup(resp).select_one(".notice-error").text
    finally:
        simulator.set_bot_connected(table.tenant, True)
    assert not session_rows(database_url, table.tenant)


def test_second_start_of_a_campaign_is_refused_with_a_link(app, table, database_url):
    assert table.dm.post("/sessions/new", start_form(table)).status_code == 303
    ((sid, _, _),) = session_rows(database_url, table.tenant)
    resp = table.dm.post("/sessions/new", start_form(table), htmx=True)
    assert resp.status_code == 422
    page = soup(resp)
    assert "already running for this campaign" in page.select_one(".notice-error").text
    assert page.select_one(f'a[href="/sessions/{sid}/live"]') is not None
    # Another campaign of the same (shared-tier) tenant: the gateway's constraint refuses it.
    other = make_campaign(app, table.tenant, "Second campaign")
    resp = table.dm.post("/sessions/new", start_form(table, campaign_id=other), htmx=True)
    assert resp.status_code == 422
    assert "already running for this campaign or Discord server" in soup(resp).select_one(".notice-error").text
    assert len(session_rows(database_url, table.tenant)) == 1


def test_double_start_creates_one_session(app, table, database_url):
    browsers = [table.dm] + [Browser(app).login(table.dm.user) for _ in range(3)]
    for b in browsers:
        b.csrf_token()
    results: list[int] = []
    barrier = threading.Barrier(len(browsers))

    def go(b):
        barrier.wait()
        results.append(b.post("/sessions/new", start_form(table)).status_code)

    threads = [threading.Thread(target=go, args=(b,)) for b in browsers]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(results) == [303, 422, 422, 422]
    assert len(session_rows(database_url, table.tenant)) == 1


def test_gateway_unavailable_reads_keep_working(app, table, database_url, swap_gateway):
    seeded = seed(database_url, table.tenant, table.campaign, sessions=1)
    swap_gateway(dead_gateway())
    page = soup(table.dm.get("/sessions"))
    assert "voice service is unavailable" in page.select_one("#voice-note").text
    assert page.select_one(".page-head button[disabled]") is not None
    assert page.select_one(".sessions-table") is not None  # the history is still there
    form = soup(table.dm.get("/sessions/new"))
    assert form.select_one("fieldset[disabled]") is not None and "unavailable" in form.select_one(".notice-warn").text
    resp = table.dm.post("/sessions/new", start_form(table), htmx=True)
    assert resp.status_code == 422 and "unavailable" in soup(resp).select_one(".notice-error").text
    assert table.dm.get(f"/sessions/{seeded[0]}").status_code == 200
    assert table.dm.get(f"/sessions/{seeded[0]}/transcript").status_code == 200
    assert table.dm.get("/dashboard").status_code == 200


def test_no_gateway_configured(app, table, database_url, swap_gateway):
    swap_gateway(None)
    page = soup(table.dm.get("/sessions"))
    assert "No voice service is connected" in page.select_one("#voice-note").text
    assert not page.select(".page-head .badge")  # no bot badge without a gateway
    assert page.select_one(".page-head button[disabled]") is not None
    assert table.dm.get("/dashboard").status_code == 200


# ---- roles and isolation --------------------------------------------------------------------


def test_viewer_watches_but_cannot_start_or_stop(app, table, as_role, database_url):
    viewer = as_role("viewer", tenant_id=table.tenant)
    sid = app.extensions["glyphoxa.gateway"].start_web_session(table.tenant, table.guild, snowflake(), table.campaign)
    assert viewer.get("/sessions").status_code == 200
    assert not soup(viewer.get("/sessions")).select('a[href="/sessions/new"]')
    assert viewer.get("/sessions/new").status_code == 403
    assert viewer.post("/sessions/new", start_form(table)).status_code == 403
    assert viewer.post(f"/sessions/{sid}/stop").status_code == 403
    live = soup(viewer.get(f"/sessions/{sid}/live"))
    assert live.select_one("#transcript") is not None and live.select_one("#npc-controls form") is None
    assert not soup(viewer.get(f"/sessions/{sid}")).select("form[action$='/stop']")


def test_stop_of_another_tenants_session_is_refused_before_any_grpc_call(
    app, table, as_role, database_url, simulator, monkeypatch
):
    sid = app.extensions["glyphoxa.gateway"].start_web_session(table.tenant, table.guild, snowflake(), table.campaign)
    stranger = as_role("tenant_owner")
    client = app.extensions["glyphoxa.gateway"]
    calls = []
    for name in ("stop_web_session", "list_npcs", "mute_npc", "mute_all_npcs", "speak_npc"):
        original = getattr(client, name)
        monkeypatch.setattr(client, name, lambda *a, _o=original, _n=name, **k: (calls.append(_n), _o(*a, **k))[1])
    assert stranger.post(f"/sessions/{sid}/stop").status_code == 404
    assert stranger.post(f"/sessions/{sid}/stop", htmx=True).status_code == 404
    assert stranger.post(f"/sessions/{sid}/npcs/mute-all").status_code == 404
    assert stranger.post(f"/sessions/{sid}/npcs/speak", {"npc": "Sister Vey", "speech": "hi"}).status_code == 404
    assert calls == []
    assert session_rows(database_url, table.tenant)[0][1] in ("pending", "active")
    assert simulator._runtime(sid) is not None


@pytest.mark.parametrize(
    "suffix", ["", "/live", "/lines", "/transcript", "/transcript.txt", "/transcript.md", "/recap.wav"]
)
def test_other_tenants_session_pages_are_404(app, table, as_role, database_url, suffix):
    sid = seed(database_url, table.tenant, table.campaign, sessions=1)[0]
    stranger = as_role("tenant_owner")
    assert table.dm.get(f"/sessions/{sid}{suffix}", htmx=suffix == "/lines").status_code == 200
    assert stranger.get(f"/sessions/{sid}{suffix}", htmx=suffix == "/lines").status_code == 404
    assert table.tenant not in stranger.get("/sessions").get_data(as_text=True)


def test_anonymous_is_sent_to_sign_in(app, visitor):
    assert visitor.get("/sessions").status_code == 303
    assert visitor.get("/sessions", htmx=True).headers.get("HX-Redirect", "").startswith("/auth/signin")


# ---- list, detail, dashboard -----------------------------------------------------------------


def test_list_filters_and_keyset_pagination(app, table, database_url):
    from glyphoxa_htmx.core.authz import Actor, Role
    from glyphoxa_htmx.services import sessions as svc

    ids = seed(database_url, table.tenant, table.campaign, sessions=5)  # a week apart, oldest first
    other = make_campaign(app, table.tenant, "Elsewhere")
    sql(database_url, "UPDATE public.sessions SET campaign_id = %s WHERE id = %s", (other, ids[0]))
    actor = Actor(user_id=table.dm.user.id, tenant_id=table.tenant, role=Role.DM)
    with app.test_request_context():
        seen, cursor = [], None
        while True:
            page = svc.list_sessions(actor, svc.SessionFilters(), cursor=cursor, limit=2)
            seen += [s.id for s in page.rows]
            if not page.next_cursor:
                break
            cursor = page.next_cursor
        assert seen == list(reversed(ids))  # newest first, each exactly once
    page = soup(table.dm.get(f"/sessions?campaign={other}"))
    assert len(page.select(".sessions-table tbody tr")) == 1
    assert "Elsewhere" in page.select_one(".sessions-table").text
    started = sql(database_url, "SELECT started_at FROM public.sessions WHERE id = %s", (ids[-1],))[0][0].date()
    page = soup(table.dm.get(f"/sessions?date_from={started.isoformat()}&date_to={started.isoformat()}"))
    assert len(page.select(".sessions-table tbody tr")) == 1
    assert soup(table.dm.get("/sessions?state=active")).select_one(".empty") is not None
    bad = table.dm.get("/sessions?date_from=2026-05-01&date_to=2026-04-01", htmx=True)
    assert bad.status_code == 422 and "before the start date" in bad.get_data(as_text=True)
    block = table.dm.get("/sessions?state=ended", htmx=True)
    assert "<html" not in block.get_data(as_text=True) and len(soup(block).select("tbody tr")) == 5


def test_detail_shows_metadata_npcs_usage_recap(app, table, database_url):
    sid = seed(database_url, table.tenant, table.campaign, sessions=1)[0]
    sql(
        database_url,
        "INSERT INTO public.npc_definitions (id, tenant_id, campaign_id, name, personality) VALUES (%s, %s, %s, %s, %s)",
        ("npc-1", table.tenant, table.campaign, "Grimble Ashfoot", "Gruff innkeeper"),
    )
    sql(database_url, "UPDATE public.sessions SET error = 'heartbeat timeout' WHERE id = %s", (sid,))
    page = soup(table.dm.get(f"/sessions/{sid}"))
    assert "The Salt Road" in page.select_one("h1").text
    assert "heartbeat timeout" in page.select_one(".notice-error").text
    assert "Grimble Ashfoot" in page.text
    assert "48" in page.select_one("#tx-h").parent.text  # line count from the transcript
    assert "session hours" in page.select_one("#usage-h").parent.text
    audio = page.select_one(".recap audio")
    assert audio["src"] == f"/sessions/{sid}/recap.wav"
    wav = table.dm.get(audio["src"])
    assert wav.status_code == 200 and wav.mimetype == "audio/wav" and wav.data[:4] == b"RIFF"


def test_dashboard_widgets(app, table, database_url):
    seed(database_url, table.tenant, table.campaign, sessions=2)
    sql(database_url, "UPDATE public.tenants SET monthly_session_hours = 40 WHERE id = %s", (table.tenant,))
    sql(
        database_url,
        "INSERT INTO public.usage_records (tenant_id, period, session_hours) VALUES (%s, %s, 12.5) "
        "ON CONFLICT (tenant_id, period) DO UPDATE SET session_hours = 12.5",
        (table.tenant, date.today().replace(day=1)),
    )
    sid = app.extensions["glyphoxa.gateway"].start_web_session(table.tenant, table.guild, snowflake(), table.campaign)
    page = soup(table.dm.get("/dashboard"))
    live = page.select_one("#w-live").parent
    assert live.select_one(f'a[href="/sessions/{sid}/live"]') is not None
    last = page.select_one("#w-last").parent
    assert "48 lines" in last.text and "The Salt Road" in last.text
    hours = page.select_one("#w-hours").parent
    assert "12.50" in hours.text and "of 40.00 hours" in hours.text
    assert hours.select_one("progress")["max"] == "40.00"
    assert page.select_one("#next-steps") is not None  # the onboarding list stays


# ---- query budget ---------------------------------------------------------------------------


class QueryCounter:
    def __init__(self, engine):
        self.engine = engine
        self.count = 0

    def _on(self, *args, **kwargs):
        if threading.current_thread() is self.thread:
            self.count += 1

    def __enter__(self):
        self.thread = threading.current_thread()
        self.count = 0
        event.listen(self.engine, "before_cursor_execute", self._on)
        return self

    def __exit__(self, *exc):
        event.remove(self.engine, "before_cursor_execute", self._on)


def test_pages_cost_a_bounded_number_of_queries(app, make_user, database_url):
    """The same pages for a tenant with 1 session and one with 6 cost the same number of queries."""
    from glyphoxa_htmx.extensions import db

    counts = []
    for n in (1, 6):
        user = make_user("dm")
        b = Browser(app).login(user)
        gateway_tenant(app, user.tenant_id)
        campaign = make_campaign(app, user.tenant_id)
        ids = seed(database_url, user.tenant_id, campaign, sessions=n)
        for sid in ids:  # a search hit in every session, whatever the scripted dialogue said
            sql(
                database_url,
                f'INSERT INTO "tenant_{user.tenant_id}".session_entries (campaign_id, session_id, '
                "text) VALUES (%s, %s, 'The quokka waits')",
                (campaign, sid),
            )
        entity = sql(database_url, f'SELECT id FROM "tenant_{user.tenant_id}".entities LIMIT 1')[0][0]
        urls = [
            "/dashboard",
            "/sessions",
            f"/sessions/{ids[-1]}",
            f"/sessions/{ids[-1]}/live",
            f"/sessions/{ids[-1]}/transcript",
            "/sessions/search?q=quokka",
            "/knowledge",
            f"/knowledge/{campaign}",
            f"/knowledge/{campaign}/entities/{entity}",
            f"/knowledge/{campaign}/graph",
        ]
        b.get(urls[0])  # warm caches (e.g. the gateway-tables check)
        with app.app_context():
            engine = db.engine
            # and the once-per-process probes (on the first search / knowledge page of the process,
            # whichever test that is), so the counts don't depend on which tests ran before
            fulltext.enabled(transcripts._probe)
            knowledge.types_sort_like_python()
        row = {}
        for url in urls:
            with QueryCounter(engine) as qc:
                assert b.get(url).status_code == 200, url
            row[url.replace(user.tenant_id, "T").replace(campaign, "C").replace(ids[-1], "S").replace(entity, "E")] = (
                qc.count
            )
        counts.append(row)
    assert counts[0] == counts[1]
    assert max(counts[0].values()) <= 12, counts[0]


def test_dashboard_and_its_block_run_one_statement(app, table, database_url):
    """The tenant with the onboarding probes, the month's hours and the sessions widget (live, last
    ended and their campaign names) in one statement (issue 18: under load every round trip costs
    a page far more than its statement); the ended session's line counts come from the
    per-process cache after the first visit."""
    from glyphoxa_htmx.extensions import db

    seed(database_url, table.tenant, table.campaign, sessions=2)
    sid = app.extensions["glyphoxa.gateway"].start_web_session(table.tenant, table.guild, snowflake(), table.campaign)
    table.dm.get("/dashboard")  # warm the per-process caches
    with app.app_context():
        engine = db.engine
    for htmx in (False, True):
        with QueryCounter(engine) as qc:
            resp = table.dm.get("/dashboard", htmx=htmx, headers={"HX-Target": "content"} if htmx else None)
        assert resp.status_code == 200
        assert qc.count == 1, qc.count
        page = soup(resp)
        assert page.select_one("#w-live").parent.select_one(f'a[href="/sessions/{sid}/live"]').text == "The Salt Road"
        assert "48 lines" in page.select_one("#w-last").parent.text


def test_session_list_runs_two_statements_and_its_block_one(app, table, database_url):
    """Live and past sessions with their campaigns' names in one statement; the full page adds the
    bot badge's Discord-server check, which the #results block doesn't show. The campaign filter's
    choices are the tenant's directory, kept per process once read from committed rows (the first
    visit registers found campaigns in a transaction, so the second keeps it)."""
    from glyphoxa_htmx.extensions import db

    ids = seed(database_url, table.tenant, table.campaign, sessions=3)
    other = make_campaign(app, table.tenant, "Elsewhere")
    sql(database_url, "UPDATE public.sessions SET campaign_id = %s WHERE id = %s", (other, ids[0]))
    sid = app.extensions["glyphoxa.gateway"].start_web_session(table.tenant, table.guild, snowflake(), table.campaign)
    table.dm.get("/sessions")  # warm the per-process caches
    table.dm.get("/sessions")
    with app.app_context():
        engine = db.engine
    for htmx, budget in ((False, 2), (True, 1)):
        with QueryCounter(engine) as qc:
            resp = table.dm.get("/sessions", htmx=htmx, headers={"HX-Target": "results"} if htmx else None)
        assert resp.status_code == 200 and qc.count == budget, (htmx, qc.count)
        page = soup(resp)
        live = page.select_one(".live-now")
        assert live.select_one(f'a[href="/sessions/{sid}/live"]').text == "The Salt Road"
        rows = page.select(".sessions-table tbody tr")
        assert [r.select_one("a")["href"] for r in rows] == [f"/sessions/{i}" for i in reversed(ids)]
        assert [r.select_one("a").text for r in rows] == ["The Salt Road", "The Salt Road", "Elsewhere"]
        assert (page.select_one("#f-campaign") is None) == htmx  # the filter form is outside the block


def test_session_filter_choices_kept_per_process_follow_a_campaign_written_meanwhile(app, table, as_role, database_url):
    """The filter's choices come from the kept directory: a campaign created, archived or renamed
    shows on the very next page (a write empties this process's directories and
    tells the others), and no other table's campaign ever shows."""

    def choices():
        return [o.text for o in soup(table.dm.get("/sessions")).select("#f-campaign option")][1:]

    make_campaign(app, as_role("dm").user.tenant_id, "Another table's arc")
    for _ in range(2):
        assert choices() == ["The Salt Road"]
    created = make_campaign(app, table.tenant, "Amber Road")
    assert choices() == ["Amber Road", "The Salt Road"]
    assert table.dm.post(f"/campaigns/{created}/archive", {}).status_code in (200, 303)
    assert choices() == ["Amber Road", "The Salt Road"]  # archived ones too: past sessions use them
    version = soup(table.dm.get(f"/campaigns/{created}/edit")).select_one("input[name=version]")["value"]
    assert table.dm.post(f"/campaigns/{created}", {"name": "Umber Road", "version": version}).status_code == 303
    assert choices() == ["The Salt Road", "Umber Road"]


def test_state_badges_and_durations_render(app, table, database_url):
    ids = seed(database_url, table.tenant, table.campaign, sessions=1)
    row = soup(table.dm.get("/sessions")).select_one(".sessions-table tbody tr")
    assert row.select_one(".badge").text == "Ended"
    assert " h " in row.select("td")[3].text
    del ids


def test_start_requires_a_campaign_of_the_tenant(app, table, as_role, database_url):
    foreign = make_campaign(app, as_role("tenant_owner").user.tenant_id, "Not yours")
    resp = table.dm.post("/sessions/new", start_form(table, campaign_id=foreign), htmx=True)
    assert resp.status_code == 422 and soup(resp).select_one("#campaign_id-error") is not None
    assert not session_rows(database_url, table.tenant)


def test_date_filter_rejects_garbage(app, table):
    resp = table.dm.get("/sessions?date_from=yesterday")
    assert resp.status_code == 422 and "Use a date like" in resp.get_data(as_text=True)


def test_prebuilt_session_statements_keep_tables_apart(app, table, as_role, database_url):
    """The session list, session page, dashboard and usage statements are built once per process and
    shared by every request: each execution must see only its own table's rows, with or without
    filters and cursors, in any order of calls."""
    from glyphoxa_htmx.core.authz import Actor, Role
    from glyphoxa_htmx.core.errors import NotFound
    from glyphoxa_htmx.services import dashboard
    from glyphoxa_htmx.services import sessions as svc

    other = as_role("dm").user.tenant_id
    gateway_tenant(app, other)
    other_campaign = make_campaign(app, other, "Salt Marsh")
    mine = seed(database_url, table.tenant, table.campaign, sessions=3)
    theirs = seed(database_url, other, other_campaign, sessions=2)
    sql(database_url, "UPDATE public.tenants SET monthly_session_hours = 40 WHERE id = %s", (table.tenant,))
    sql(database_url, "UPDATE public.tenants SET monthly_session_hours = 7 WHERE id = %s", (other,))
    for npc_id, tenant, campaign, npc in (
        ("npc-a", table.tenant, table.campaign, "Grimble Ashfoot"),
        ("npc-b", other, other_campaign, "Saltwise Bram"),
    ):
        sql(
            database_url,
            "INSERT INTO public.npc_definitions (id, tenant_id, campaign_id, name) VALUES (%s, %s, %s, %s)",
            (npc_id + tenant, tenant, campaign, npc),
        )
    period = date.today().replace(day=1)
    for tenant, hours in ((table.tenant, "12.5"), (other, "3.25")):
        sql(
            database_url,
            "INSERT INTO public.usage_records (tenant_id, period, session_hours) VALUES (%s, %s, %s) "
            "ON CONFLICT (tenant_id, period) DO UPDATE SET session_hours = EXCLUDED.session_hours",
            (tenant, period, hours),
        )
    a = Actor(user_id=table.dm.user.id, tenant_id=table.tenant, role=Role.DM)
    b = Actor(user_id="someone-else", tenant_id=other, role=Role.DM)
    with app.test_request_context():
        for actor, own_ids, own_campaign, name, npc, hours, other_ids, other_campaign_id in (
            (a, mine, table.campaign, "The Salt Road", "Grimble Ashfoot", (12.5, 40), theirs, other_campaign),
            (b, theirs, other_campaign, "Salt Marsh", "Saltwise Bram", (3.25, 7), mine, table.campaign),
            (a, mine, table.campaign, "The Salt Road", "Grimble Ashfoot", (12.5, 40), theirs, other_campaign),
        ):
            page = svc.list_sessions(actor, svc.SessionFilters())
            assert [s.id for s in page.rows] == list(reversed(own_ids))
            assert page.campaign_names == {own_campaign: name}
            first = svc.list_sessions(actor, svc.SessionFilters(state="ended"), limit=1)
            rest = svc.list_sessions(actor, svc.SessionFilters(state="ended"), cursor=first.next_cursor)
            assert [s.id for s in first.rows + rest.rows] == list(reversed(own_ids))
            assert svc.list_sessions(actor, svc.SessionFilters(campaign=own_campaign)).rows == page.rows
            assert svc.list_sessions(actor, svc.SessionFilters(campaign=other_campaign_id)).rows == []
            since = svc.SessionFilters(date_from=date(2000, 1, 1), date_to=date.today())
            assert [s.id for s in svc.list_sessions(actor, since).rows] == list(reversed(own_ids))
            assert svc.get(actor, own_ids[0]).tenant_id == actor.tenant_id
            assert svc.get_named(actor, own_ids[0])[1] == name
            with pytest.raises(NotFound):
                svc.get(actor, other_ids[0])
            with pytest.raises(NotFound):
                svc.get_named(actor, other_ids[0])
            assert [n.name for n in svc.campaign_npcs(actor, own_campaign)] == [npc]
            assert svc.campaign_npcs(actor, other_campaign_id) == []
            usage = svc.month_usage(actor)
            assert (usage["hours"], usage["quota"]) == hours
            widgets = svc.dashboard(actor)
            assert widgets["last"].id == own_ids[-1] and widgets["campaign_names"] == {own_campaign: name}
            data = dashboard.overview(actor)  # the tenant, its progress and the widgets in one statement
            assert data["tenant"].id == actor.tenant_id
            assert data["sessions"]["last"].id == own_ids[-1]
            assert data["sessions"]["campaign_names"] == {own_campaign: name}
            done = dashboard._progress(actor)
            assert done["session"] and done["campaign"]
            assert all(step["done"] == done[step["key"]] for step in data["next_steps"])


# ---- start that times out, stop that stops nothing, stop without JavaScript ------------------


class FrontGateway:
    """A real gRPC server in front of the simulator: every call is forwarded as raw bytes unless
    ``script`` says otherwise for its method name: ``"hold"`` answers only when the test ends
    (the client's deadline passes and nothing reaches the simulator), ``"forward_then_hold"``
    forwards first (the simulator really does it) and then holds the answer, and a callable
    ``(request, context) -> bytes`` answers in its place (e.g. aborting with a status the real
    gateway gives but the simulator doesn't)."""

    def __init__(self, upstream: str, script: dict) -> None:
        from concurrent.futures import ThreadPoolExecutor

        import grpc

        self.script = script
        self.release = threading.Event()
        self.forwarded: list[str] = []  # scripted methods that reached the simulator
        self.channel = grpc.insecure_channel(upstream)
        outer = self

        class Handler(grpc.GenericRpcHandler):
            def service(self, details):
                method = details.method
                name = method.rsplit("/", 1)[1]
                action = outer.script.get(name, "forward")

                def unary(request: bytes, context) -> bytes:
                    if callable(action):
                        return action(request, context)
                    metadata = [(k, v) for k, v in context.invocation_metadata() if k == "x-mgmt-secret"]
                    answer = b""
                    if action != "hold":
                        try:
                            answer = outer.channel.unary_unary(method)(request, metadata=metadata, timeout=10)
                        except grpc.RpcError as err:
                            context.abort(err.code(), err.details() or "")
                    if action == "forward":
                        return answer
                    if action == "forward_then_hold":
                        outer.forwarded.append(name)
                    outer.release.wait(30)
                    return answer

                return grpc.unary_unary_rpc_method_handler(unary)

        self.server = grpc.server(ThreadPoolExecutor(max_workers=4), handlers=[Handler()])
        self.address = f"127.0.0.1:{self.server.add_insecure_port('127.0.0.1:0')}"
        self.server.start()

    def close(self) -> None:
        self.release.set()
        self.server.stop(0).wait(5)
        self.channel.close()


@pytest.fixture
def front(simulator, swap_gateway):
    """front(script) -> a FrontGateway the app's gateway client now talks to (2 s deadline)."""
    made: list[tuple[FrontGateway, GatewayClient]] = []

    def make(script: dict) -> FrontGateway:
        proxy = FrontGateway(simulator.address, script)
        client = GatewayClient(proxy.address, GATEWAY_SECRET, timeout=2.0, retries=0)
        made.append((proxy, client))
        swap_gateway(client)
        return proxy

    yield make
    for proxy, client in made:
        client.close()
        proxy.close()


def test_start_that_times_out_but_started_leads_to_the_session(app, table, database_url, front):
    proxy = front({"StartWebSession": "forward_then_hold"})
    resp = table.dm.post("/sessions/new", start_form(table), htmx=True)
    assert proxy.forwarded == ["StartWebSession"]  # the gateway did start it; only its answer was late
    ((sid, state, _),) = session_rows(database_url, table.tenant)
    assert state in ("pending", "active")
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == f"/sessions/{sid}/live"
    rows = sql(
        database_url,
        "SELECT resource_id, details->>'note' FROM web.audit_log WHERE tenant_id = %s AND action = 'session.start'",
        (table.tenant,),
    )
    assert rows == [(sid, "after_timeout")]


def test_start_that_times_out_without_a_session_says_it_may_still_be_starting(app, table, database_url, front):
    front({"StartWebSession": "hold"})
    before = metric("glyphoxa_web_session_starts_total", tenant_id=table.tenant, result="timeout")
    resp = table.dm.post("/sessions/new", start_form(table), htmx=True)
    assert resp.status_code == 422
    page = soup(resp)
    notice = page.select_one(".notice-error").text
    assert "may still be in progress" in notice and "check the sessions list" in notice
    assert "Nothing was started" not in resp.get_data(as_text=True)
    assert page.select_one('a[href="/sessions"]') is not None
    assert not session_rows(database_url, table.tenant)
    assert "session.start" not in audit_actions(database_url, table.tenant)
    assert metric("glyphoxa_web_session_starts_total", tenant_id=table.tenant, result="timeout") == before + 1


def orphan_session(database_url, t) -> str:
    """A live row in public.sessions that no gateway process tracks (its worker is elsewhere)."""
    sid = "orphan-" + snowflake()
    sql(
        database_url,
        "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, channel_id, license_tier, "
        "state, worker_pod, last_heartbeat) VALUES (%s, %s, %s, %s, %s, 'shared', 'active', "
        "'worker-elsewhere', now())",
        (sid, t.tenant, t.campaign, t.guild, snowflake()),
    )
    return sid


def not_found(request, context):
    """What the real gateway answers for a session it doesn't track (the simulator only looks at
    the row, and would end it)."""
    import grpc

    context.abort(grpc.StatusCode.NOT_FOUND, "session not found")


def test_stop_of_a_session_the_gateway_does_not_track_is_not_claimed(app, table, database_url, front):
    sid = orphan_session(database_url, table)
    front({"StopWebSession": not_found})
    resp = table.dm.post(f"/sessions/{sid}/stop", htmx=True)
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == f"/sessions/{sid}"
    page = table.dm.get(f"/sessions/{sid}").get_data(as_text=True)
    assert "no longer tracks this session" in page and "ends by itself" in page
    assert "Session stopped." not in page
    assert session_rows(database_url, table.tenant)[0][1] == "active"
    assert audit_actions(database_url, table.tenant)[-1:] == ["session.stop_unknown"]
    assert "session.stop" not in audit_actions(database_url, table.tenant)


def test_stop_not_found_after_the_session_ended_by_itself(app, table, database_url, front):
    sid = orphan_session(database_url, table)

    def ended_meanwhile(request, context):  # the heartbeat sweep ended it while we were asking
        sql(
            database_url,
            "UPDATE public.sessions SET state = 'ended', ended_at = now(), error = 'heartbeat timeout' WHERE id = %s",
            (sid,),
        )
        not_found(request, context)

    front({"StopWebSession": ended_meanwhile})
    resp = table.dm.post(f"/sessions/{sid}/stop", htmx=True)
    assert resp.status_code == 204
    page = table.dm.get(f"/sessions/{sid}").get_data(as_text=True)
    assert "had already ended" in page and "Session stopped." not in page
    assert not [a for a in audit_actions(database_url, table.tenant) if a.startswith("session.stop")]


def test_stop_without_javascript_asks_first(app, table, database_url, monkeypatch):
    client = app.extensions["glyphoxa.gateway"]
    calls = []
    original = client.stop_web_session
    monkeypatch.setattr(client, "stop_web_session", lambda sid: (calls.append(sid), original(sid))[1])
    sid = client.start_web_session(table.tenant, table.guild, snowflake(), table.campaign)

    resp = table.dm.post(f"/sessions/{sid}/stop")  # a plain form post, without confirmed=1
    assert resp.status_code == 200 and calls == []
    page = soup(resp)
    assert "Stop this session for everyone at the table?" in page.select_one("h1").text
    form = page.select_one(f'form[action="/sessions/{sid}/stop"]')
    assert form.select_one('input[name="confirmed"]')["value"] == "1"
    assert form.select_one("button[type=submit]").text == "Stop session"
    assert page.select_one(f'a[href="/sessions/{sid}"]').text == "Cancel"
    assert session_rows(database_url, table.tenant)[0][1] in ("pending", "active")

    resp = table.dm.post(f"/sessions/{sid}/stop", {"confirmed": "1"})
    assert resp.status_code == 303 and resp.headers["Location"] == f"/sessions/{sid}"
    assert calls == [sid] and session_rows(database_url, table.tenant)[0][1] == "ended"
    assert "Session stopped." in table.dm.get(f"/sessions/{sid}").get_data(as_text=True)

    # htmx asked already (hx-confirm): it stops at once.
    other = client.start_web_session(table.tenant, table.guild, snowflake(), table.campaign)
    resp = table.dm.post(f"/sessions/{other}/stop", htmx=True)
    assert resp.status_code == 204 and calls == [sid, other]
    assert dict((r[0], r[1]) for r in session_rows(database_url, table.tenant))[other] == "ended"


def test_shared_helpers_have_one_copy():
    """No second copy of the shared parse/authz helpers, and no HX-* header names outside
    core/htmx.py, in the sessions area."""
    from pathlib import Path

    from glyphoxa_htmx.core import parse
    from glyphoxa_htmx.services import knowledge, transcripts
    from glyphoxa_htmx.services import session_control as svc
    from glyphoxa_htmx.web import sessions as web

    root = Path(__file__).resolve().parent.parent / "glyphoxa_htmx"
    for name in (
        "web/sessions.py",
        "web/knowledge.py",
        "services/sessions.py",
        "services/session_control.py",
        "services/transcripts.py",
        "services/live.py",
        "services/knowledge.py",
    ):
        assert '"HX-' not in (root / name).read_text(), name
    assert not hasattr(web, "_int") and not hasattr(svc, "SNOWFLAKE") and not hasattr(transcripts, "_check")
    assert svc.SNOWFLAKE_RE is parse.SNOWFLAKE_RE and knowledge.like_pattern is parse.like_pattern
