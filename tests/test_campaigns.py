"""Campaigns: list with search and pagination, create/edit with field errors and concurrency,
make active through the gateway, archive, delete (typed name, never while live), roles and
tenant isolation on every route."""

from __future__ import annotations

import json
import uuid
from contextlib import contextmanager

import psycopg
import pytest
from sqlalchemy import event, func, select

from tests.conftest import soup

# ---- helpers shared with test_npcs.py ------------------------------------------------------------------


def actor_for(user):
    from glyphoxa_htmx.core.authz import Actor, Role

    return Actor(user_id=user.id, tenant_id=user.tenant_id, role=Role(user.role), ip="127.0.0.1")


def new_campaign(app, user, name="The Sunken Crown", **data):
    from glyphoxa_htmx.services import campaigns

    with app.app_context():
        return campaigns.create(actor_for(user), {"name": name, **data}).id


def new_npc(app, user, campaign_id, name, **data):
    from glyphoxa_htmx.services import npcs

    with app.app_context():
        return npcs.create(actor_for(user), campaign_id, {"name": name, **data}).id


@contextmanager
def count_queries(app):
    """Counts SQL statements the app sends while the block runs."""
    from glyphoxa_htmx.extensions import db

    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", before)


def db_rows(database_url, sql, *params):
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, params).fetchall()


def db_exec(database_url, sql, *params):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(sql, params)


def add_session(database_url, tenant_id, campaign_id, state="ended", started="now()"):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, channel_id, license_tier, state, "
            f"started_at, ended_at) VALUES (%s, %s, %s, %s, 'c', 'shared', %s, {started}, "
            f"CASE WHEN %s = 'ended' THEN {started} END)",
            (str(uuid.uuid4()), tenant_id, campaign_id, "g" + uuid.uuid4().hex[:8], state, state),
        )


def audit_rows(app, action):
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import AuditLog

    with app.app_context():
        return [
            (r.resource_id, r.details, r.user_id)
            for r in db.session.execute(
                select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)
            ).scalars()
        ]


def campaign_row(app, campaign_id):
    from sqlalchemy import select as _sel

    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import Campaign

    with app.app_context():  # ids minted here are unique across tenants (the key is (tenant_id, id))
        row = db.session.execute(_sel(Campaign).where(Campaign.id == campaign_id)).scalar_one_or_none()
        if row is not None:
            db.session.expunge(row)
        return row


def active_campaign(app, tenant_id):
    """The active campaign: the gateway's public.tenants.campaign_id (the only copy)."""
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import GatewayTenant

    with app.app_context():
        row = db.session.get(GatewayTenant, tenant_id)
        return row.campaign_id if row is not None else ""


# ---- list, search, pagination, empty states ------------------------------------------------------------


def test_empty_state_tells_a_new_dm_what_to_do(app, as_role):
    page = soup(as_role("dm").get("/campaigns"))
    empty = page.select_one("#results .empty")
    assert "Start your first campaign" in empty.h2.text
    assert empty.select_one("a.btn-primary")["href"] == "/campaigns/new"
    viewer = soup(as_role("viewer").get("/campaigns"))
    assert "hasn't created a campaign" in viewer.select_one("#results .empty").text
    assert not viewer.select("a[href='/campaigns/new']")


def test_cards_show_system_npc_count_last_session_and_badges(app, as_role, database_url):
    b = as_role("dm")
    crown = new_campaign(app, b.user, "The Sunken Crown", game_system="D&D 5e")
    other = new_campaign(app, b.user, "Masks of Nyarlathotep", game_system="Call of Cthulhu")
    for name in ("Greta", "Aldric"):
        new_npc(app, b.user, crown, name)
    add_session(database_url, b.user.tenant_id, crown, "ended", "timestamptz '2026-03-01 20:00+00'")
    add_session(database_url, b.user.tenant_id, other, "active")
    # The gateway's row says which campaign is active (as a Discord-side change would leave it).
    db_exec(database_url, "INSERT INTO public.tenants (id, campaign_id) VALUES (%s, %s)", b.user.tenant_id, crown)
    cards = {c.h2.text.strip(): c for c in soup(b.get("/campaigns")).select(".campaign-card")}
    assert set(cards) == {"The Sunken Crown", "Masks of Nyarlathotep"}
    crown_card = cards["The Sunken Crown"]
    assert "Active" in crown_card.select_one(".badges").text and "D&D 5e" in crown_card.text
    assert crown_card.select("dd")[0].text == "2" and "Mar 01" in crown_card.select("dd")[1].text
    assert "Live session" in cards["Masks of Nyarlathotep"].text
    assert cards["Masks of Nyarlathotep"].select("dd")[0].text == "0"


def test_npc_counts_and_the_cast_step_count_only_the_tables_own_npcs_under_shared_ids(app, as_role, database_url):
    """The gateway's campaign ids are free-form and its npc_definitions has only a campaign_id
    index, so the card's NPC count and the dashboard's "Build a cast" step look NPCs up by campaign
    id: tables using the same id, and NPCs of no campaign (''), still count only the table's own.
    Rows written as the gateway's tools write them (ids we didn't mint, campaigns found in sessions)."""
    a, b, c = (as_role("tenant_owner") for _ in range(3))

    def gateway_npc(tenant_id, campaign_id, name):
        db_exec(
            database_url,
            "INSERT INTO public.npc_definitions (id, tenant_id, campaign_id, name) VALUES (%s, %s, %s, %s)",
            f"gw-{uuid.uuid4().hex[:10]}",
            tenant_id,
            campaign_id,
            name,
        )

    for browser in (a, b, c):
        add_session(database_url, browser.user.tenant_id, "shared")
    for name in ("Greta", "Aldric", "Mira"):
        gateway_npc(b.user.tenant_id, "shared", name)
    gateway_npc(a.user.tenant_id, "", "Unassigned hermit")

    def count_on_card(browser):
        cards = {x.h2.text.strip(): x for x in soup(browser.get("/campaigns")).select(".campaign-card")}
        return cards["shared"].select("dd")[0].text

    def done(browser):
        return [
            li.select_one("strong").text for li in soup(browser.get("/dashboard")).select("#next-steps + ol li.done")
        ]

    assert [count_on_card(x) for x in (a, b, c)] == ["0", "3", "0"]
    assert "Build a cast of NPCs" in done(a)  # its NPC of no campaign
    assert "Build a cast of NPCs" in done(b)
    assert "Build a cast of NPCs" not in done(c)  # b's NPCs under the same id are not c's
    gateway_npc(c.user.tenant_id, "shared", "Bram")
    assert count_on_card(c) == "1" and count_on_card(b) == "3"
    assert "Build a cast of NPCs" in done(c)


def test_active_search_returns_the_results_block(app, as_role):
    b = as_role("dm")
    new_campaign(app, b.user, "The Sunken Crown", game_system="D&D 5e")
    new_campaign(app, b.user, "Masks of Nyarlathotep", game_system="Call of Cthulhu")
    full = soup(b.get("/campaigns"))
    search = full.select_one("form[role=search] input[name=q]")
    assert "input changed delay:300ms" in search.find_parent("form")["hx-trigger"]
    assert full.select_one("form[role=search]")["hx-target"] == "#results"
    block = b.get("/campaigns?q=cthulhu", htmx=True)
    assert "<html" not in block.get_data(as_text=True)
    assert [h.text.strip() for h in soup(block).select(".campaign-card h2")] == ["Masks of Nyarlathotep"]
    none = b.get("/campaigns?q=100%25_", htmx=True)  # LIKE wildcards are matched literally
    assert "No campaigns match" in soup(none).get_text()


def test_pagination_is_server_side(app, as_role):
    b = as_role("dm")
    for i in range(14):
        new_campaign(app, b.user, f"Campaign {i:02d}")
    first = soup(b.get("/campaigns"))
    assert len(first.select(".campaign-card")) == 12
    nxt = first.select_one(".pager a[rel=next]")
    assert nxt["href"] == "/campaigns?page=2" and nxt["hx-target"] == "#results"
    second = soup(b.get("/campaigns?page=2", htmx=True))
    assert len(second.select(".campaign-card")) == 2 and second.select_one(".pager a[rel=prev]")
    # The page and the count of all matches come in one statement; a page past the last one
    # (a bookmark, a tab left open while campaigns were archived) shows the last page.
    with count_queries(app) as counted:
        past = soup(b.get("/campaigns?page=9", htmx=True))
    assert [c.select_one("h2").text.strip() for c in past.select(".campaign-card")] == [
        c.select_one("h2").text.strip() for c in second.select(".campaign-card")
    ]
    assert past.select_one(".pager a[rel=prev]") and not past.select_one(".pager a[rel=next]")
    assert len(counted) == 3  # the page (empty), the count, the last page
    with count_queries(app) as counted:
        assert len(soup(b.get("/campaigns?page=2", htmx=True)).select(".campaign-card")) == 2
    assert len(counted) == 1
    assert "No campaigns match" in soup(b.get("/campaigns?q=nothing-like-it&page=3", htmx=True)).get_text()


def test_campaign_list_query_count_does_not_grow_with_the_list(app, as_role, make_user, database_url):
    small = as_role("dm")
    big = as_role("dm")
    for b, n in ((small, 3), (big, 12)):
        for i in range(n):
            cid = new_campaign(app, b.user, f"C{i}")
            new_npc(app, b.user, cid, "Npc")
            add_session(database_url, b.user.tenant_id, cid)
    small.get("/campaigns"), big.get("/campaigns")  # warm up (sign-in bookkeeping)
    with count_queries(app) as q_small:
        assert len(soup(small.get("/campaigns")).select(".campaign-card")) == 3
    with count_queries(app) as q_big:
        assert len(soup(big.get("/campaigns")).select(".campaign-card")) == 12
    assert len(q_small) == len(q_big) <= 6, q_big


def test_campaign_page_reads_its_card_and_cast_in_one_statement(app, as_role, database_url):
    """Under load each round trip costs a page more than its statement (issue 18): the card and one
    page of the cast come back together, whatever the filter, an empty cast, or a page past the end
    (which then counts and reads the last page, as before). NPC rows as the gateway's tools write
    them: ids we didn't mint, a voice that isn't an object, no position row."""
    b = as_role("dm")
    cid = new_campaign(app, b.user, "Salt Road")
    empty = new_campaign(app, b.user, "Nobody Here")
    for name in ("Greta Saltbeard", "Mira", "Bram"):
        new_npc(app, b.user, cid, name)
    db_exec(
        database_url,
        "INSERT INTO public.npc_definitions (id, tenant_id, campaign_id, name, voice) VALUES (%s, %s, %s, %s, %s)",
        "gw-odd-voice",
        b.user.tenant_id,
        cid,
        "Salty Odd",
        '"a string, not an object"',
    )
    b.get(f"/campaigns/{cid}")  # warm up (sign-in bookkeeping)

    def names(page):
        return [h.text.strip() for h in page.select("ol.cast h3 a")]

    for url, expect, statements in (
        (f"/campaigns/{cid}", ["Greta Saltbeard", "Mira", "Bram", "Salty Odd"], 1),
        (f"/campaigns/{cid}?q=salt", ["Greta Saltbeard", "Salty Odd"], 1),
        (f"/campaigns/{cid}?q=nobody-by-that-name", [], 1),
        (f"/campaigns/{empty}", [], 1),
        (f"/campaigns/{cid}?page=4", ["Greta Saltbeard", "Mira", "Bram", "Salty Odd"], 3),  # count, last page
    ):
        with count_queries(app) as seen:
            resp = b.get(url)
        page = soup(resp)
        assert resp.status_code == 200 and names(page) == expect, (url, names(page))
        assert page.select_one("h1").text.strip() == ("Nobody Here" if empty in url else "Salt Road")
        assert len(seen) == statements, (url, seen)
    assert "No NPCs yet" in soup(b.get(f"/campaigns/{empty}")).get_text()
    assert "No NPCs match" in soup(b.get(f"/campaigns/{cid}?q=nobody-by-that-name")).get_text()


def test_campaigns_page_reads_its_cards_and_tab_counts_in_one_statement(app, as_role):
    """The tabs' counts come with the page's cards (one statement), whichever tab, filter or page;
    an empty tab or a filter that matches nothing still counts both tabs; a page past the end
    counts and reads the last page (as before); the #results block reads no counts."""
    b = as_role("dm")
    ids = {name: new_campaign(app, b.user, name) for name in ("Salt Road", "Salt Marsh", "Crown", "Old Tale")}
    assert b.post(f"/campaigns/{ids['Old Tale']}/archive").status_code == 303
    b.get("/campaigns")  # warm up (sign-in bookkeeping)

    def tabs(page):
        return [x.text for x in page.select("nav.tabs .badge")]

    for url, cards, statements in (
        ("/campaigns", ["Crown", "Salt Marsh", "Salt Road"], 1),
        ("/campaigns?archived=1", ["Old Tale"], 1),
        ("/campaigns?q=salt", ["Salt Marsh", "Salt Road"], 1),
        ("/campaigns?q=nothing-like-it", [], 1),
        ("/campaigns?q=salt&page=5", ["Salt Marsh", "Salt Road"], 3),  # count, then the last page
    ):
        with count_queries(app) as seen:
            page = soup(b.get(url))
        assert sorted(h.text.strip() for h in page.select(".campaign-card h2")) == cards, url
        assert tabs(page) == ["3", "1"], (url, tabs(page))
        assert len(seen) == statements, (url, seen)
    with count_queries(app) as seen:
        block = soup(b.get("/campaigns?q=salt", htmx=True))
    assert len(block.select(".campaign-card")) == 2 and not tabs(block) and len(seen) == 1


# ---- create and edit -------------------------------------------------------------------------------------


def test_create_without_js_redirects_and_is_audited(app, as_role):
    b = as_role("dm")
    resp = b.post(
        "/campaigns",
        {
            "name": "  The Sunken Crown ",
            "game_system": "D&D 5e",
            "description": "A *drowned* kingdom.",
            "language": "English",
            "tone": "grim",
            "lines_veils": "no spiders\n\n  harm to children  \n",
            "house_rules": "Flanking.",
        },
    )
    assert resp.status_code == 303
    cid = resp.headers["Location"].rsplit("/", 1)[1]
    assert cid.startswith("cmp_") and len(cid) == 16
    page = soup(b.get(resp.headers["Location"]))
    assert page.select_one("h1").text == "The Sunken Crown"
    assert "created" in page.select_one(".notice").text
    row = campaign_row(app, cid)
    assert row.tenant_id == b.user.tenant_id
    assert row.settings == {
        "language": "English",
        "tone": "grim",
        "lines_veils": ["no spiders", "harm to children"],
        "house_rules": "Flanking.",
    }
    ((rid, details, uid),) = audit_rows(app, "campaign.create")
    assert rid == cid and uid == b.user.id and details["changes"]["name"]["after"] == "The Sunken Crown"


def test_create_with_htmx_redirects(app, as_role):
    resp = as_role("dm").post("/campaigns", {"name": "Crown"}, htmx=True)
    assert resp.status_code == 204 and resp.headers["HX-Redirect"].startswith("/campaigns/cmp_")


def test_invalid_input_is_422_with_errors_at_the_fields(app, as_role):
    b = as_role("dm")
    resp = b.post("/campaigns", {"name": " ", "game_system": "x" * 81, "lines_veils": "ok\n" + "y" * 201}, htmx=True)
    assert resp.status_code == 422
    assert "<html" not in resp.get_data(as_text=True)
    doc = soup(resp)
    assert doc.select_one("#name")["aria-invalid"] == "true"
    assert "name" in doc.select_one("#name-error").text
    assert "80 characters" in doc.select_one("#game_system-error").text
    assert "Entry 2" in doc.select_one("#lines_veils-error").text
    assert doc.select_one("textarea#lines_veils").text.startswith("ok\n")  # input kept
    assert doc.select_one("input[name=csrf_token]")
    with app.app_context():
        from glyphoxa_htmx.extensions import db
        from glyphoxa_htmx.models import Campaign

        assert db.session.execute(select(func.count()).select_from(Campaign)).scalar() == 0
    full = b.post("/campaigns", {"name": ""})
    assert full.status_code == 422 and soup(full).select_one("nav#nav")


def test_edit_and_concurrent_edit_conflict(app, as_role):
    b = as_role("dm")
    cid = new_campaign(app, b.user, "Crown", game_system="D&D 5e")
    form = soup(b.get(f"/campaigns/{cid}/edit"))
    version = form.select_one("input[name=version]")["value"]
    assert form.select_one("#name")["value"] == "Crown"
    other = as_role("dm", tenant_id=b.user.tenant_id)
    assert other.post(f"/campaigns/{cid}", {"name": "Crown of Storms", "version": version}).status_code == 303
    stale = b.post(f"/campaigns/{cid}", {"name": "My Crown", "version": version}, htmx=True)
    assert stale.status_code == 409
    doc = soup(stale)
    assert "Someone else changed this campaign" in doc.select_one(".notice-error").text
    assert doc.select_one(".notice-error a")["href"] == f"/campaigns/{cid}/edit"
    assert doc.select_one("#name")["value"] == "My Crown"  # the user's input is not lost
    assert campaign_row(app, cid).name == "Crown of Storms"
    fresh = soup(b.get(f"/campaigns/{cid}/edit")).select_one("input[name=version]")["value"]
    assert b.post(f"/campaigns/{cid}", {"name": "My Crown", "version": fresh}).status_code == 303
    assert campaign_row(app, cid).name == "My Crown"
    changes = [d["changes"] for _, d, _ in audit_rows(app, "campaign.update")]
    assert changes[-1]["name"] == {"before": "Crown of Storms", "after": "My Crown"}


def test_description_markdown_is_rendered_safely(app, as_role):
    b = as_role("dm")
    cid = new_campaign(
        app,
        b.user,
        "Crown",
        description="**Bold** <script>alert(1)</script> [x](javascript:alert(2)) [ok](https://example.com)",
    )
    prose = soup(b.get(f"/campaigns/{cid}")).select_one(".prose")
    assert prose.strong.text == "Bold"
    assert not prose.select("script") and "<script>" in prose.text  # shown as text
    hrefs = [a.get("href") for a in prose.select("a")]
    assert hrefs == ["https://example.com"]
    assert "noopener" in prose.select_one("a")["rel"]


def test_rendered_descriptions_are_kept_per_text_and_bounded(app, as_role, database_url, monkeypatch):
    """A description is parsed and sanitised once per process and text: the page shown again reads
    the same, an edit (new text) shows the new one, the kept HTML is the sanitised one, and the
    memo empties when it holds more than its bound."""
    import psycopg

    from glyphoxa_htmx.web import campaigns as web_campaigns

    b = as_role("dm")
    text = "## Deep\n\n**Bold** <script>alert(1)</script>" + " long" * 400
    cid = new_campaign(app, b.user, "Crown", description=text)
    first = str(soup(b.get(f"/campaigns/{cid}")).select_one(".prose"))
    assert text in web_campaigns._rendered and "<script>" not in web_campaigns._rendered[text]
    calls = []
    monkeypatch.setattr(web_campaigns.nh3, "clean", lambda *a, **k: calls.append(a) or "")
    assert str(soup(b.get(f"/campaigns/{cid}")).select_one(".prose")) == first and not calls
    # Written by someone else (the gateway's tools): a new text is rendered, not the kept one.
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("UPDATE web.campaigns SET description = %s WHERE id = %s", ("*fresh*", cid))
    monkeypatch.undo()
    assert soup(b.get(f"/campaigns/{cid}")).select_one(".prose em").text == "fresh"
    monkeypatch.setattr(web_campaigns._rendered, "limit", 40)
    web_campaigns.render_markdown("another text")
    assert list(web_campaigns._rendered) == ["another text"]  # over the bound: emptied, then kept
    # A short text whose HTML is large (reference links repeat a long URL) is rendered, not kept.
    monkeypatch.setattr(web_campaigns, "MEMO_HTML_MAX", 200)
    blowup = "[r]: https://example.com/" + "x" * 150 + "\n\n" + "[a][r] " * 5
    assert web_campaigns.render_markdown(blowup).count("example.com") == 5
    assert blowup not in web_campaigns._rendered and "another text" in web_campaigns._rendered


# ---- make active -----------------------------------------------------------------------------------------


def test_make_active_updates_the_gateway_and_our_copy(app, as_role, database_url):
    from glyphoxa_htmx.core.deps import gateway

    b = as_role("dm")
    with app.app_context():
        gateway().create_tenant(b.user.tenant_id)
    crown = new_campaign(app, b.user, "Crown")
    resp = b.post(f"/campaigns/{crown}/activate", htmx=True)
    assert resp.status_code == 200
    assert "active campaign" in json.loads(resp.headers["HX-Trigger"])["toast"]["message"]
    head = soup(resp)
    assert "Active" in head.select_one(".badges").text and not head.select("form[action$=activate]")
    assert active_campaign(app, b.user.tenant_id) == crown
    assert db_rows(database_url, "SELECT campaign_id FROM public.tenants WHERE id = %s", b.user.tenant_id) == [(crown,)]
    ((_, details, _),) = audit_rows(app, "campaign.activate")
    assert details["changes"] == {"active_campaign_id": {"before": "", "after": crown}}
    # Archiving the active campaign clears it on the gateway as well.
    assert b.post(f"/campaigns/{crown}/archive").status_code == 303
    assert active_campaign(app, b.user.tenant_id) == ""
    assert db_rows(database_url, "SELECT campaign_id FROM public.tenants WHERE id = %s", b.user.tenant_id) == [("",)]
    assert campaign_row(app, crown).archived_at is not None


def test_make_active_refused_by_gateway_changes_nothing(app, as_role):
    b = as_role("dm")  # this tenant does not exist on the gateway
    crown = new_campaign(app, b.user, "Crown")
    resp = b.post(f"/campaigns/{crown}/activate", htmx=True)
    assert resp.status_code == 502
    message = json.loads(resp.headers["HX-Trigger"])["toast"]["message"]
    assert "Couldn't make “Crown” the active campaign" in message and "Nothing was changed" in message
    assert active_campaign(app, b.user.tenant_id) == ""
    assert audit_rows(app, "campaign.activate") == []
    page = b.post(f"/campaigns/{crown}/activate")
    assert page.status_code == 502 and "Nothing was changed" in soup(page).get_text()


def test_archived_campaign_cannot_be_made_active(app, as_role):
    b = as_role("dm")
    crown = new_campaign(app, b.user, "Crown")
    b.post(f"/campaigns/{crown}/archive")
    resp = b.post(f"/campaigns/{crown}/activate", htmx=True)
    assert resp.status_code == 422 and "Unarchive" in json.loads(resp.headers["HX-Trigger"])["toast"]["message"]


def test_archive_and_unarchive_move_between_tabs(app, as_role):
    b = as_role("dm")
    crown = new_campaign(app, b.user, "Crown")
    resp = b.post(f"/campaigns/{crown}/archive", htmx=True)
    assert resp.status_code == 200 and "Archived" in soup(resp).select_one(".badges").text
    assert not soup(b.get("/campaigns")).select(".campaign-card")
    assert len(soup(b.get("/campaigns?archived=1")).select(".campaign-card")) == 1
    assert b.post(f"/campaigns/{crown}/unarchive").status_code == 303
    assert len(soup(b.get("/campaigns")).select(".campaign-card")) == 1
    assert [a for a, *_ in [(r[0],) for r in audit_rows(app, "campaign.archive")]] == [crown]


# ---- delete ----------------------------------------------------------------------------------------------


def test_delete_needs_archive_and_the_typed_name(app, as_role):
    b = as_role("dm")
    crown = new_campaign(app, b.user, "The Sunken Crown")
    page = soup(b.get(f"/campaigns/{crown}/delete"))
    assert "Only archived campaigns" in page.select_one(".danger-zone").text and not page.select(".danger-zone form")
    resp = b.post(f"/campaigns/{crown}/delete", {"confirm_name": "The Sunken Crown"}, htmx=True)
    assert resp.status_code == 422 and campaign_row(app, crown) is not None
    b.post(f"/campaigns/{crown}/archive")
    form = soup(b.get(f"/campaigns/{crown}/delete")).select_one("form[data-confirm-name]")
    assert form["data-confirm-name"] == "The Sunken Crown" and form.select_one("input[name=confirm_name]")
    wrong = b.post(f"/campaigns/{crown}/delete", {"confirm_name": "the sunken crown"}, htmx=True)
    assert wrong.status_code == 422
    assert "exactly" in soup(wrong).select_one("#confirm_name-error").text
    assert campaign_row(app, crown) is not None


def test_delete_refused_while_a_session_is_live(app, as_role, database_url):
    b = as_role("dm")
    crown = new_campaign(app, b.user, "Crown")
    b.post(f"/campaigns/{crown}/archive")
    add_session(database_url, b.user.tenant_id, crown, "pending")
    resp = b.post(f"/campaigns/{crown}/delete", {"confirm_name": "Crown"})
    assert resp.status_code == 422 and "session of this campaign is running" in soup(resp).get_text()
    assert campaign_row(app, crown) is not None


def test_delete_removes_npcs_and_positions_in_one_transaction(app, as_role, make_user, database_url):
    b = as_role("dm")
    crown = new_campaign(app, b.user, "Crown")
    keep = new_campaign(app, b.user, "Keep")
    for name in ("Greta", "Aldric", "Pip"):
        new_npc(app, b.user, crown, name)
    kept_npc = new_npc(app, b.user, keep, "Survivor")
    stranger = make_user(role="dm")
    with psycopg.connect(database_url, autocommit=True) as conn:  # another tenant's row with the same campaign id
        conn.execute(
            "INSERT INTO public.npc_definitions (id, tenant_id, campaign_id, name) VALUES "
            "('foreign', %s, %s, 'Foreign')",
            (stranger.tenant_id, crown),
        )
    add_session(database_url, b.user.tenant_id, crown, "ended")
    b.post(f"/campaigns/{crown}/archive")
    resp = b.post(f"/campaigns/{crown}/delete", {"confirm_name": "Crown"})
    assert resp.status_code == 303 and resp.headers["Location"] == "/campaigns"
    assert "Deleted “Crown” and its 3 NPCs" in soup(b.get("/campaigns")).select(".notice")[-1].text
    assert campaign_row(app, crown) is None
    assert db_rows(database_url, "SELECT id FROM public.npc_definitions ORDER BY id") == sorted(
        [("foreign",), (kept_npc,)]
    )
    assert db_rows(database_url, "SELECT npc_id FROM web.npc_positions") == [(kept_npc,)]
    ((rid, details, _),) = audit_rows(app, "campaign.delete")
    assert rid == crown and details["npcs_deleted"] == ["Aldric", "Greta", "Pip"]
    assert details["changes"]["name"] == {"before": "Crown", "after": None}


# ---- roles and isolation ---------------------------------------------------------------------------------

READ_ROUTES = ["/campaigns/{cid}", "/campaigns/{cid}/npcs"]
MANAGE_PAGES = ["/campaigns/{cid}/edit", "/campaigns/{cid}/delete", "/campaigns/{cid}/npcs/new"]
WRITE_ROUTES = [
    "/campaigns/{cid}",
    "/campaigns/{cid}/activate",
    "/campaigns/{cid}/archive",
    "/campaigns/{cid}/unarchive",
    "/campaigns/{cid}/delete",
    "/campaigns/{cid}/npcs",
    "/campaigns/{cid}/npcs/order",
]


@pytest.mark.parametrize("url", READ_ROUTES + MANAGE_PAGES)
@pytest.mark.parametrize("htmx", [False, True])
def test_other_tenants_campaign_is_404_on_every_page(app, as_role, url, htmx):
    owner = as_role("dm")
    cid = new_campaign(app, owner.user, "Secret")
    stranger = as_role("tenant_owner")
    resp = stranger.get(url.format(cid=cid), htmx=htmx)
    assert resp.status_code == 404
    assert "Secret" not in resp.get_data(as_text=True)


@pytest.mark.parametrize("url", WRITE_ROUTES)
def test_other_tenants_campaign_is_404_on_every_write(app, as_role, url):
    owner = as_role("dm")
    cid = new_campaign(app, owner.user, "Secret")
    resp = as_role("tenant_owner").post(
        url.format(cid=cid), {"name": "Hijacked", "confirm_name": "Secret", "version": "1", "ids": ""}
    )
    assert resp.status_code == 404
    assert campaign_row(app, cid).name == "Secret" and campaign_row(app, cid).archived_at is None


@pytest.mark.parametrize("url", WRITE_ROUTES + ["/campaigns"])
def test_viewer_gets_403_on_writes(app, as_role, url):
    owner = as_role("dm")
    cid = new_campaign(app, owner.user, "Crown")
    viewer = as_role("viewer", tenant_id=owner.user.tenant_id)
    resp = viewer.post(url.format(cid=cid), {"name": "Viewer's", "confirm_name": "Crown", "version": "1"}, htmx=True)
    assert resp.status_code == 403 and "toast" in resp.headers["HX-Trigger"]
    assert campaign_row(app, cid).name == "Crown"


@pytest.mark.parametrize("url", ["/campaigns/new"] + MANAGE_PAGES)
def test_viewer_gets_403_on_editing_pages(app, as_role, url):
    owner = as_role("dm")
    cid = new_campaign(app, owner.user, "Crown")
    assert as_role("viewer", tenant_id=owner.user.tenant_id).get(url.format(cid=cid)).status_code == 403


def test_viewer_reads_campaigns_without_edit_controls(app, as_role):
    owner = as_role("dm")
    cid = new_campaign(app, owner.user, "Crown")
    new_npc(app, owner.user, cid, "Greta")
    viewer = as_role("viewer", tenant_id=owner.user.tenant_id)
    page = soup(viewer.get(f"/campaigns/{cid}"))
    assert page.select_one("h1").text == "Crown" and "Greta" in page.select_one("#cast").text
    assert not page.select("form[method=post]:not([action='/auth/logout'])")
    assert not page.select("[data-sortable], .drag-handle, a[href$='/edit']")


def test_anonymous_is_sent_to_sign_in(app, visitor):
    resp = visitor.get("/campaigns")
    assert resp.status_code == 303 and "/auth/signin" in resp.headers["Location"]
    hx = visitor.get("/campaigns", htmx=True)
    assert hx.headers.get("HX-Redirect", "").startswith("/auth/signin")


def test_lookups_shared_with_sessions_stay_tenant_scoped(app, as_role):
    from glyphoxa_htmx.core.errors import NotFound
    from glyphoxa_htmx.services import campaigns

    a, b = as_role("dm"), as_role("dm")
    mine = new_campaign(app, a.user, "Mine")
    archived = new_campaign(app, a.user, "Old")
    theirs = new_campaign(app, b.user, "Theirs")
    with app.app_context():
        campaigns.set_archived(actor_for(a.user), archived, True)
        actor = actor_for(a.user)
        assert campaigns.choices(actor) == [(mine, "Mine")]
        assert campaigns.choices(actor, include_archived=True) == [(mine, "Mine"), (archived, "Old")]
        assert campaigns.names(actor, {mine, theirs}) == {mine: "Mine"}
        assert campaigns.get(actor, mine).name == "Mine"
        with pytest.raises(NotFound):
            campaigns.get(actor, theirs)


def test_failed_commit_after_make_active_restores_the_gateway(app, simulator):
    """The gateway is told first; if our commit then fails, its campaign is put back."""
    from sqlalchemy import event
    from sqlalchemy import select as _select

    from glyphoxa_htmx.core.deps import gateway
    from glyphoxa_htmx.extensions import db as _db
    from glyphoxa_htmx.models import Campaign as _Campaign
    from glyphoxa_htmx.models import Tenant as _Tenant
    from tests.conftest import Browser as _Browser

    b = _Browser(app)
    b.post("/auth/dev", {"name": "Commit Breaker", "role": "tenant_owner"})  # a tenant on the gateway too
    with app.app_context():
        tenant_id = _db.session.execute(_select(_Tenant.id)).scalar_one()
        _db.session.add_all(
            [
                _Campaign(id="cmp_first", tenant_id=tenant_id, name="First"),
                _Campaign(id="cmp_second", tenant_id=tenant_id, name="Second"),
            ]
        )
        _db.session.commit()
    assert b.post("/campaigns/cmp_first/activate").status_code == 303
    with app.app_context():
        assert gateway().get_tenant(tenant_id).campaign_id == "cmp_first"

    def explode(session):
        raise RuntimeError("database went away at commit")

    with app.app_context():
        event.listen(_db.session, "before_commit", explode)
    try:
        assert b.post("/campaigns/cmp_second/activate").status_code == 500
    finally:
        with app.app_context():
            event.remove(_db.session, "before_commit", explode)
    with app.app_context():
        assert gateway().get_tenant(tenant_id).campaign_id == "cmp_first"
    assert active_campaign(app, tenant_id) == "cmp_first"


def test_prebuilt_card_and_cast_statements_keep_tables_apart(app, as_role):
    """The card and cast statements are built once per process and shared by every request: each
    execution must see only its own table's rows, searching or not, in any order of calls."""
    from glyphoxa_htmx.core.errors import NotFound
    from glyphoxa_htmx.services import campaigns, npcs

    a, b = as_role("tenant_owner").user, as_role("tenant_owner").user
    ca, cb = new_campaign(app, a, "Salt Road"), new_campaign(app, b, "Salt Marsh")
    new_npc(app, a, ca, "Greta Saltbeard")
    new_npc(app, b, cb, "Saltwise Bram")
    new_npc(app, b, cb, "Mira")
    with app.test_request_context():
        for actor, own_id, other_id, names in (
            (actor_for(a), ca, cb, ["Greta Saltbeard"]),
            (actor_for(b), cb, ca, ["Saltwise Bram", "Mira"]),
            (actor_for(a), ca, cb, ["Greta Saltbeard"]),
        ):
            assert [c.campaign.id for c in campaigns.list_cards(actor).items] == [own_id]
            assert [c.campaign.id for c in campaigns.list_cards(actor, q="salt").items] == [own_id]
            assert campaigns.counts(actor) == {"current": 1, "archived": 0}
            cards, tabs = campaigns.cards_and_counts(actor, q="salt")
            assert [c.campaign.id for c in cards.items] == [own_id] and tabs == {"current": 1, "archived": 0}
            assert [cid for cid, _name in campaigns.choices(actor)] == [own_id]
            assert [cid for cid, _name in campaigns.choices(actor, include_archived=True)] == [own_id]
            assert campaigns.card(actor, own_id).campaign.id == own_id
            with pytest.raises(NotFound):
                campaigns.card(actor, other_id)
            assert [m.npc.name for m in npcs.list_cast(actor, own_id).items] == names
            assert [m.npc.name for m in npcs.list_cast(actor, own_id, q="salt").items] == [
                n for n in names if "Salt" in n
            ]
            assert npcs.list_cast(actor, other_id).items == []
            card, cast = npcs.card_and_cast(actor, own_id)
            assert card.campaign.id == own_id and [m.npc.name for m in cast.items] == names
            assert [m.position for m in cast.items] == list(range(1, len(names) + 1))
            card, cast = npcs.card_and_cast(actor, own_id, q="salt", page=3)  # past the end: the last page
            assert [m.npc.name for m in cast.items] == [n for n in names if "Salt" in n] and cast.page == 1
            with pytest.raises(NotFound):
                npcs.card_and_cast(actor, other_id)
            assert npcs.list_cast(actor, other_id, q="salt", page=2).total == 0
