"""Campaigns of an existing installation: ids found in the tenant's gateway data become campaigns
("found in Discord sessions", named by id until renamed), keyed per tenant, and the active campaign
is the gateway's tenants.campaign_id (no web copy)."""

from __future__ import annotations

import time

import psycopg
from sqlalchemy import select

from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import AuditLog, Campaign
from tests.conftest import soup
from tests.test_campaigns import actor_for, add_session, count_queries, new_campaign


def sql(database_url, statement, *params):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(statement, params)


def gateway_row(database_url, tenant_id, campaign_id=""):
    sql(database_url, "INSERT INTO public.tenants (id, campaign_id) VALUES (%s, %s)", tenant_id, campaign_id)


def npc_row(database_url, tenant_id, campaign_id, name):
    sql(
        database_url,
        "INSERT INTO public.npc_definitions (id, tenant_id, campaign_id, name) VALUES (%s, %s, %s, %s)",
        f"{tenant_id}-{campaign_id}-{name}",
        tenant_id,
        campaign_id,
        name,
    )


def forget_sync():
    """Registration of found ids runs at most every FOUND_SYNC_SECONDS per tenant and process."""
    from glyphoxa_htmx.services import campaigns

    campaigns._last_sync.clear()


def interval_passed(*tenant_ids):
    """As if FOUND_SYNC_SECONDS had passed since these tenants' last registration and since the
    process last read the NPCs' campaign ids: their next round is a later one, not a first."""
    from glyphoxa_htmx.services import campaigns

    old = time.monotonic() - campaigns.FOUND_SYNC_SECONDS - 1
    for t in tenant_ids:
        campaigns._last_sync[t] = old
    if campaigns._npc_snapshot is not None:
        campaigns._npc_snapshot = (old, campaigns._npc_snapshot[1])


def cards(b):
    return {c.h2.text.strip(): c for c in soup(b.get("/campaigns")).select(".campaign-card")}


def test_ids_in_gateway_data_show_as_campaigns(app, as_role, database_url):
    b = as_role("dm")
    t = b.user.tenant_id
    gateway_row(database_url, t, "active_one")
    add_session(database_url, t, "from_discord")
    add_session(database_url, t, "")  # no campaign: not a campaign
    npc_row(database_url, t, "npc_only", "Greta")
    found = cards(b)
    assert set(found) == {"active_one", "from_discord", "npc_only"}
    assert all("Found in Discord sessions" in c.text for c in found.values())
    assert "Active" in found["active_one"].select_one(".badges").text
    assert found["npc_only"].select_one(".facts").text.count("1")  # its NPC counts
    page = soup(b.get("/campaigns/from_discord"))
    assert "named by its id until you" in page.text
    with app.app_context():
        rows = db.session.execute(select(Campaign).where(Campaign.tenant_id == t)).scalars().all()
        assert {(c.id, c.name, c.origin) for c in rows} == {
            ("active_one", "active_one", "gateway"),
            ("from_discord", "from_discord", "gateway"),
            ("npc_only", "npc_only", "gateway"),
        }
        audit = db.session.execute(select(AuditLog).where(AuditLog.action == "campaign.found")).scalar_one()
        assert sorted(audit.details["campaign_ids"]) == ["active_one", "from_discord", "npc_only"]


def test_a_found_campaign_can_be_renamed_and_used_in_pickers(app, as_role, database_url):
    b = as_role("dm")
    add_session(database_url, b.user.tenant_id, "c1")
    form = soup(b.get("/campaigns/c1/edit"))  # a direct link registers it on first sight
    version = form.select_one("input[name=version]")["value"]
    resp = b.post("/campaigns/c1", {"name": "The Drowned Road", "version": version})
    assert resp.status_code == 303
    card = cards(b)["The Drowned Road"]
    assert "Found in Discord sessions" in card.text
    assert "The Drowned Road" in b.get("/sessions").get_data(as_text=True)  # session list names it
    from glyphoxa_htmx.services import campaigns

    with app.app_context():
        assert campaigns.choices(actor_for(b.user)) == [("c1", "The Drowned Road")]


def test_two_tenants_each_have_their_own_c1(app, as_role, database_url):
    a, b = as_role("dm"), as_role("dm")
    for user, npc in ((a, "Greta"), (b, "Sal")):
        add_session(database_url, user.user.tenant_id, "c1")
        npc_row(database_url, user.user.tenant_id, "c1", npc)
    assert set(cards(a)) == {"c1"} and set(cards(b)) == {"c1"}
    page_a, page_b = soup(a.get("/campaigns/c1")).text, soup(b.get("/campaigns/c1")).text
    assert "Greta" in page_a and "Sal" not in page_a
    assert "Sal" in page_b and "Greta" not in page_b
    resp = a.post("/campaigns/c1", {"name": "A's road", "version": "1"})
    assert resp.status_code == 303
    assert set(cards(b)) == {"c1"}  # b's c1 is untouched


def test_deleted_found_campaign_does_not_come_back(app, as_role, database_url):
    b = as_role("dm")
    add_session(database_url, b.user.tenant_id, "old_one")
    assert set(cards(b)) == {"old_one"}
    assert b.post("/campaigns/old_one/archive").status_code == 303
    assert b.post("/campaigns/old_one/delete", {"confirm_name": "old_one"}).status_code == 303
    forget_sync()  # as if the throttle interval had passed: the full registration runs again
    assert cards(b) == {} and b.get("/campaigns/old_one").status_code == 404


def test_found_campaigns_cost_the_same_queries_whatever_their_number(app, as_role, database_url):
    small, big = as_role("dm"), as_role("dm")
    for b, n in ((small, 2), (big, 11)):
        for i in range(n):
            add_session(database_url, b.user.tenant_id, f"c{i}")
    small.get("/campaigns"), big.get("/campaigns")  # first sight registers them
    with count_queries(app) as q_small:
        assert len(cards(small)) == 2
    with count_queries(app) as q_big:
        assert len(cards(big)) == 11
    assert len(q_small) == len(q_big) <= 6, q_big


def test_active_campaign_is_the_gateways_and_has_no_web_copy(app, as_role, database_url):
    b = as_role("dm")
    mine = new_campaign(app, b.user, "Mine")
    other = new_campaign(app, b.user, "Other")
    gateway_row(database_url, b.user.tenant_id, mine)  # set from Discord / the gateway's own tooling
    found = cards(b)
    assert "Active" in found["Mine"].select_one(".badges").text
    assert "Active" not in found["Other"].select_one(".badges").text
    sql(database_url, "UPDATE public.tenants SET campaign_id = %s WHERE id = %s", other, b.user.tenant_id)
    found = cards(b)  # the page follows the gateway at once: nothing to disagree with
    assert "Active" in found["Other"].select_one(".badges").text
    assert "Active" not in found["Mine"].select_one(".badges").text
    with psycopg.connect(database_url) as conn:
        columns = {
            r[0]
            for r in conn.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_schema = 'web' AND table_name = 'tenants'"
            )
        }
    assert "active_campaign_id" not in columns


def test_start_form_preselects_the_gateways_active_campaign(app, as_role, database_url):
    b = as_role("dm")
    new_campaign(app, b.user, "First")
    second = new_campaign(app, b.user, "Second")
    gateway_row(database_url, b.user.tenant_id, second)
    page = soup(b.get("/sessions/new"))
    assert page.select_one("#campaign_id option[selected]")["value"] == second


def test_ids_that_appear_later_show_up_after_the_sync_interval(app, as_role, database_url):
    b = as_role("dm")
    add_session(database_url, b.user.tenant_id, "first")
    assert set(cards(b)) == {"first"}
    add_session(database_url, b.user.tenant_id, "second")  # a new Discord session, new campaign id
    assert b.get("/campaigns/second").status_code == 200  # a direct link finds it at once
    add_session(database_url, b.user.tenant_id, "third")
    forget_sync()
    assert set(cards(b)) == {"first", "second", "third"}


def test_the_npc_editor_opens_gateway_npcs_whose_campaign_we_have_not_seen(app, as_role, database_url):
    """The editor reads the NPC and its campaign in one statement; a campaign id found only in the
    gateway's row is registered on the way, an NPC without a campaign still opens, and another
    table's NPC is a 404 like any unknown id."""
    b = as_role("dm")
    t = b.user.tenant_id
    forget_sync()
    npc_row(database_url, t, "from_gateway", "Greta")
    sql(
        database_url,
        "INSERT INTO public.npc_definitions (id, tenant_id, campaign_id, name, voice, attributes) "
        "VALUES (%s, %s, '', 'Loose', '{\"provider\": 7, \"unknown\": [1]}', '{\"mood\": 3}')",
        f"{t} loose npc",
        t,
    )
    page = soup(b.get(f"/npcs/{t}-from_gateway-Greta"))
    assert page.select_one("input[name=name]")["value"] == "Greta"
    assert "from_gateway" in page.select_one("main").text  # its campaign, registered on first sight
    with app.app_context():
        assert db.session.get(Campaign, (t, "from_gateway")).origin == "gateway"
    loose = b.get(f"/npcs/{t} loose npc")
    assert loose.status_code == 200 and soup(loose).select_one("input[name=name]")["value"] == "Loose"
    other = as_role("dm")
    assert other.get(f"/npcs/{t}-from_gateway-Greta").status_code == 404


PER_TENANT_NPC_SCAN = "FROM public.npc_definitions WHERE tenant_id"


def test_later_rounds_find_new_npc_campaigns_without_reading_every_npc_per_tenant(app, as_role, database_url):
    """The gateway's npc_definitions has no tenant index. A tenant's first round in a process reads
    its NPCs (every tenant's rows); later rounds take candidates from one read for all tenants per
    interval and check them by campaign_id."""
    b = as_role("dm")
    t = b.user.tenant_id
    add_session(database_url, t, "first")
    with count_queries(app) as q:
        assert set(cards(b)) == {"first"}
    assert sum(PER_TENANT_NPC_SCAN in s for s in q) == 1  # the first round: exact, from the first visit
    npc_row(database_url, t, "npc_later", "Greta")
    interval_passed(t)
    with count_queries(app) as q:
        assert set(cards(b)) == {"first", "npc_later"}
    assert not any(PER_TENANT_NPC_SCAN in s for s in q), q
    assert sum("SELECT DISTINCT n.tenant_id, n.campaign_id" in s for s in q) == 1
    with count_queries(app) as q:  # within the interval: no registration at all
        assert set(cards(b)) == {"first", "npc_later"}
    assert not any("INSERT INTO web.campaigns" in s or "npc_definitions n" in s for s in q)


def test_a_later_round_registers_only_the_tenants_own_npc_campaigns_that_still_exist(app, as_role, database_url):
    a, b = as_role("dm"), as_role("dm")
    assert cards(a) == {} and cards(b) == {}  # each tenant's first round
    npc_row(database_url, a.user.tenant_id, "a_only", "Greta")
    npc_row(database_url, b.user.tenant_id, "b_gone", "Sal")
    interval_passed(a.user.tenant_id, b.user.tenant_id)
    assert set(cards(a)) == {"a_only"}  # a's round read the candidates of every tenant, b's too
    sql(database_url, "DELETE FROM public.npc_definitions WHERE tenant_id = %s", b.user.tenant_id)
    assert cards(b) == {}  # b's candidate went meanwhile, and a's id is not b's
    with app.app_context():
        rows = db.session.execute(select(Campaign.tenant_id, Campaign.id)).all()
    assert (b.user.tenant_id, "b_gone") not in rows and (b.user.tenant_id, "a_only") not in rows
    assert (a.user.tenant_id, "a_only") in rows


def test_later_rounds_take_campaign_ids_the_gateway_wrote_verbatim(app, as_role, database_url):
    """Ids are free-form strings written by the gateway's tools: commas, quotes, braces and
    backslashes (array syntax) pass through the candidate list as values."""
    b = as_role("dm")
    t = b.user.tenant_id
    assert cards(b) == {}  # the first round
    odd = ["a,b", 'say "hi"', "{braced}", "back\\slash", "Ærø NULL"]
    for i, campaign in enumerate(odd):
        npc_row(database_url, t, campaign, f"npc{i}")
    interval_passed(t)
    assert set(cards(b)) == set(odd)


def test_only_a_tenants_very_first_round_reads_its_npcs_then_other_processes_take_candidates(
    app, as_role, database_url
):
    """The exact read of a tenant's NPCs happens once ever, marked in web.tenants: a first round in
    another process (a second worker, a restart) takes candidates like a later round, so an NPC
    added after that process last read the candidates shows within the interval, not at once. A
    tenant not marked yet (an installation upgraded, or the mark cleared) is read exactly again."""
    from glyphoxa_htmx.models import Tenant
    from glyphoxa_htmx.services import campaigns

    b = as_role("dm")
    t = b.user.tenant_id
    npc_row(database_url, t, "npc_before", "Greta")
    assert set(cards(b)) == {"npc_before"}  # the first round ever: exact
    with app.app_context():
        marked = db.session.get(Tenant, t).campaigns_found_at
    assert marked is not None

    def another_process():  # its first round for t, with candidates read before the NPC below
        forget_sync()
        campaigns._npc_snapshot = (time.monotonic(), {})

    another_process()
    npc_row(database_url, t, "npc_after", "Sal")
    assert set(cards(b)) == {"npc_before"}  # not read exactly again...
    interval_passed(t)
    assert set(cards(b)) == {"npc_before", "npc_after"}  # ...found by the next round's candidates
    with app.app_context():
        assert db.session.get(Tenant, t).campaigns_found_at == marked  # marked once, not again

    sql(database_url, "UPDATE web.tenants SET campaigns_found_at = NULL WHERE id = %s", t)
    another_process()
    npc_row(database_url, t, "npc_unmarked", "Ilse")
    assert set(cards(b)) == {"npc_before", "npc_after", "npc_unmarked"}  # not marked: exact again
    with app.app_context():
        assert db.session.get(Tenant, t).campaigns_found_at is not None


def test_a_first_round_never_waits_for_the_tenants_row(app, as_role, database_url):
    """Another transaction holding the tenant's web.tenants row (a first round in another process,
    a settings change) doesn't hold up the page: this round skips the mark and the exact read,
    takes candidates, and a later first round marks the tenant."""
    import threading

    b = as_role("dm")
    t = b.user.tenant_id
    add_session(database_url, t, "from_discord")
    holder = psycopg.connect(database_url)
    holder.execute("SELECT 1 FROM web.tenants WHERE id = %s FOR UPDATE", (t,))
    release = threading.Timer(20, holder.rollback)  # (were the page to wait, the test would end)
    release.start()
    try:
        started = time.monotonic()
        assert set(cards(b)) == {"from_discord"}
        assert time.monotonic() - started < 10
    finally:
        release.cancel()
        holder.rollback()
        holder.close()
    with app.app_context():
        from glyphoxa_htmx.models import Tenant

        assert db.session.get(Tenant, t).campaigns_found_at is None  # not marked: skipped
    forget_sync()
    assert set(cards(b)) == {"from_discord"}
    with app.app_context():
        assert db.session.get(Tenant, t).campaigns_found_at is not None
