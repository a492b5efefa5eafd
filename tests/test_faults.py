"""Reliability under faults (issue 19): each test reproduces a fault with real parts — a TCP
proxy in front of PostgreSQL or the gateway that delays or goes silent (tests/support/faultproxy),
``pg_terminate_backend`` on the test database, a lock held by another connection — and checks
what the user and the operator get: bounded probes, honest outcomes, one deadline per action,
styled failures, no secrets in the log."""

from __future__ import annotations

import json
import logging
import threading
from types import SimpleNamespace
from urllib.parse import urlsplit

import psycopg
import pytest

from glyphoxa_htmx.adapters.gateway.client import GatewayClient
from tests.conftest import GATEWAY_SECRET, Browser, make_settings, soup
from tests.support.faultproxy import FaultProxy
from tests.support.ws_server import gateway_tenant, make_campaign, snowflake, sql, stop_live_sessions, wait_for


@pytest.fixture
def table(app, as_role, database_url):
    """A DM in a tenant registered with the simulated gateway, with one campaign."""
    dm = as_role("dm")
    tenant = dm.user.tenant_id
    guilds = gateway_tenant(app, tenant)
    campaign = make_campaign(app, tenant)
    yield SimpleNamespace(dm=dm, tenant=tenant, guild=guilds[0], campaign=campaign)
    stop_live_sessions(app, database_url, tenant)


@pytest.fixture
def slow_gateway(app, simulator):
    """The app's gateway client now talks to the simulator through a FaultProxy (1 s deadline per
    call); the channel is connected while the proxy still forwards, so a later delay slows the
    calls, not the connection set-up."""
    original = app.extensions["glyphoxa.gateway"]
    proxy = FaultProxy.for_url(simulator.address).start()
    client = GatewayClient(proxy.address, GATEWAY_SECRET, timeout=1.0, retries=2, breaker_threshold=0)
    client.list_tenants()  # connect now
    app.extensions["glyphoxa.gateway"] = client
    yield SimpleNamespace(proxy=proxy, client=client)
    app.extensions["glyphoxa.gateway"] = original
    proxy.forward()
    client.close()
    proxy.close()


def audit_rows(database_url, tenant):
    return sql(database_url, "SELECT action, details->>'note' FROM web.audit_log WHERE tenant_id = %s ORDER BY id",
               (tenant,))


def session_state(database_url, sid):
    return sql(database_url, "SELECT state FROM public.sessions WHERE id = %s", (sid,))[0][0]


# ---- 2. a stop that times out: outcome unknown, reconciled from public.sessions --------------


def test_stop_that_times_out_is_checked_on_the_open_page_and_audited_when_it_ends(
        app, table, database_url, simulator, slow_gateway):
    sid = app.extensions["glyphoxa.gateway"].start_web_session(table.tenant, table.guild, snowflake(), table.campaign)

    # The session page is open before anything goes wrong.
    page = soup(table.dm.get(f"/sessions/{sid}"))
    form = page.select_one(f'form[hx-post="/sessions/{sid}/stop"]')
    assert form["hx-target"] == "#stop-status" and page.select_one("#stop-status") is not None

    # Every gateway packet now arrives 2.5 s late: the stop's deadline (1 s) passes, the gateway
    # stops the session afterwards.
    slow_gateway.proxy.delay(2.5)
    resp = table.dm.post(form["hx-post"], htmx=True)
    assert resp.status_code == 202
    block = soup(resp)
    notice = block.select_one('[data-stop-outcome="checking"]')
    assert "Stopping — checking with the voice service" in notice.text
    assert "try again" not in resp.get_data(as_text=True).lower()
    assert session_state(database_url, sid) in ("pending", "active")  # not ended yet: unknown, not failed
    assert audit_rows(database_url, table.tenant) == [("session.stop_unconfirmed", None)]

    # The open page polls what the block told it to, until public.sessions shows the real outcome.
    poll_url = notice["hx-get"]
    assert notice["hx-trigger"].startswith("every") and notice["hx-target"] == "#main"
    answers = []

    def poll():
        r = table.dm.get(poll_url, htmx=True, headers={"HX-Current-URL": f"http://localhost/sessions/{sid}"})
        answers.append(r.status_code)
        return r if r.status_code != 204 else None

    done = wait_for(poll, timeout=20, interval=0.2, what="the stop's real outcome")
    assert session_state(database_url, sid) == "ended"
    assert answers[0] == 204  # it said "nothing yet" while the gateway was still on its way
    updated = soup(done)
    assert updated.select_one('[data-stop-outcome="stopped"]').text.strip() == "Session stopped."
    assert updated.select_one("[hx-trigger]") is None  # polling ends
    assert updated.select_one(f'form[action="/sessions/{sid}/stop"]') is None  # no Stop button any more
    assert json.loads(done.headers["HX-Trigger"])["toast"]["message"] == "Session stopped."
    assert audit_rows(database_url, table.tenant) == [("session.stop_unconfirmed", None),
                                                       ("session.stop", "after_timeout")]
    # Another poll (a second open tab) audits nothing twice.
    table.dm.get(poll_url, htmx=True)
    assert [a for a, _ in audit_rows(database_url, table.tenant)].count("session.stop") == 1


def test_stop_that_times_out_without_javascript_lands_on_the_checking_page(app, table, database_url, slow_gateway):
    sid = app.extensions["glyphoxa.gateway"].start_web_session(table.tenant, table.guild, snowflake(), table.campaign)
    slow_gateway.proxy.silent()  # the gateway never hears of it
    resp = table.dm.post(f"/sessions/{sid}/stop", {"confirmed": "1"})
    assert resp.status_code == 303 and resp.headers["Location"] == f"/sessions/{sid}?stop=check"
    page = soup(table.dm.get(resp.headers["Location"]))
    notice = page.select_one('[data-stop-outcome="checking"]')
    assert "checking with the voice service" in notice.text
    assert notice.select_one(f'a[href="/sessions/{sid}?stop=check"]').text == "Check again"
    assert session_state(database_url, sid) in ("pending", "active")
    # Much later the session still runs: the page says the stop was never confirmed.
    from datetime import datetime, timedelta, timezone

    from flask import g

    from glyphoxa_htmx.services import session_control
    from glyphoxa_htmx.web.auth import load_actor

    later = datetime.now(timezone.utc) + timedelta(seconds=session_control.STOP_CHECK_SECONDS + 1)
    with app.test_request_context(headers={"Cookie": f"gx_session={table.dm.token}"}):
        load_actor()
        result = session_control.reconcile_stop(g.actor, sid, now=later)
    assert result.outcome == "unconfirmed" and "Try stopping it again" in result.message
    assert [a for a, _ in audit_rows(database_url, table.tenant)] == ["session.stop_unconfirmed"]
