"""The knowledge graph (tenant_<id>.entities / relationships, read-only): campaign index, entity
list with type filter and search, entity pages with provenance, the graph view and its JSON, and
tenant isolation."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from glyphoxa_htmx.core.authz import Actor, Role
from tests.conftest import soup
from tests.support.ws_server import gateway_tenant, make_campaign, seed, sql


@pytest.fixture
def graph(app, as_role, database_url):
    dm = as_role("viewer")
    tenant = dm.user.tenant_id
    gateway_tenant(app, tenant)
    campaign = make_campaign(app, tenant, "Hollowmere")
    ids = seed(database_url, tenant, campaign, sessions=2)
    return SimpleNamespace(
        dm=dm,
        tenant=tenant,
        campaign=campaign,
        ids=ids,
        actor=Actor(user_id=dm.user.id, tenant_id=tenant, role=Role.VIEWER),
    )


def entities(database_url, t, where="", params=()):
    return sql(
        database_url,
        f'SELECT id, type, name FROM "tenant_{t.tenant}".entities WHERE campaign_id = %s {where} ORDER BY name, id',
        (t.campaign, *params),
    )


def test_index_lists_campaigns_with_counts(app, graph, database_url):
    page = soup(graph.dm.get("/knowledge"))
    card = page.select_one(f'a[href="/knowledge/{graph.campaign}"]').find_parent("li")
    assert "Hollowmere" in card.text and f"{len(entities(database_url, graph))} entit" in card.text
    assert card.select_one(f'a[href="/knowledge/{graph.campaign}/graph"]') is not None


def test_entity_list_filters_and_pages(app, graph, database_url):
    from glyphoxa_htmx.services import knowledge

    all_rows = entities(database_url, graph)
    page = soup(graph.dm.get(f"/knowledge/{graph.campaign}"))
    assert [a.text for a in page.select("tbody td:first-child a")] == [r[2] for r in all_rows]
    npcs = entities(database_url, graph, "AND type = 'npc'")
    page = soup(graph.dm.get(f"/knowledge/{graph.campaign}?type=npc"))
    assert [a.text for a in page.select("tbody td:first-child a")] == [r[2] for r in npcs]
    assert "npc (" in page.select_one("#k-type").text
    grim = soup(graph.dm.get(f"/knowledge/{graph.campaign}?q=grim", htmx=True))
    assert [a.text for a in grim.select("tbody a")] == ["Grimble Ashfoot"]
    assert not soup(graph.dm.get(f"/knowledge/{graph.campaign}?q=%25")).select("tbody a")  # % is literal
    with app.test_request_context():
        seen, after = [], None
        while True:
            p = knowledge.entities(graph.actor, graph.campaign, after=after, limit=3)
            seen += [e.id for e in p.entities]
            if not p.next_after:
                break
            after = p.next_after
    assert seen == [r[0] for r in all_rows]


def test_entity_page_shows_attributes_and_relationships_with_provenance(app, graph, database_url):
    eid = "npc-grimble-ashfoot"
    page = soup(graph.dm.get(f"/knowledge/{graph.campaign}/entities/{eid}"))
    assert page.select_one("h1").text == "Grimble Ashfoot"
    assert "Npc id" in page.select_one("#attr-h").parent.text
    out_rows = page.select_one("#out-h").parent.select("tbody tr")
    expected = sql(
        database_url,
        f'SELECT rel_type, provenance FROM "tenant_{graph.tenant}".relationships '
        "WHERE campaign_id = %s AND source_id = %s",
        (graph.campaign, eid),
    )
    assert len(out_rows) == len(expected)
    knows = [tr for tr in out_rows if tr.select("td")[0].text == "knows"][0]
    assert knows.select_one('a[href$="/entities/npc-sister-vey"]') is not None
    session_link = knows.select("td")[2].select_one("a")["href"]
    assert session_link.startswith("/sessions/") and session_link.split("/")[-1] in graph.ids
    assert knows.select("td")[3].text == "90%" and "No" in knows.select("td")[4].text
    sql(
        database_url,
        f'UPDATE "tenant_{graph.tenant}".relationships SET provenance = provenance || '
        "'{\"dm_confirmed\": true}' WHERE source_id = %s AND rel_type = 'knows'",
        (eid,),
    )
    page = soup(graph.dm.get(f"/knowledge/{graph.campaign}/entities/{eid}"))
    assert page.select_one("#out-h").parent.select_one(".badge-ok").text == "Confirmed"
    incoming = page.select_one("#in-h").parent.select("tbody tr")
    trusts = [tr for tr in incoming if tr.select("td")[0].text == "trusts"]
    assert trusts and trusts[0].select_one('a[href*="/entities/pc-"]') is not None  # a player character trusts him
    assert graph.dm.get(f"/knowledge/{graph.campaign}/entities/no-such-thing").status_code == 404


def test_graph_view_is_an_island_over_lists(app, graph, database_url):
    page = soup(graph.dm.get(f"/knowledge/{graph.campaign}/graph"))
    host = page.select_one("#graph")
    assert host["data-src"] == f"/knowledge/{graph.campaign}/graph.json" and host.has_attr("hidden")
    assert page.select_one('script[src^="/static/vendor/cytoscape-3.35.0.min.js"]') is not None
    assert page.select_one('script[src^="/static/js/graph.js"]') is not None
    assert not page.select("script:not([src])") and not page.select("[style]")
    assert page.select(".rel-list li a")  # the same information as links, without JavaScript
    data = graph.dm.get(f"/knowledge/{graph.campaign}/graph.json").get_json()
    node_ids = {n["id"] for n in data["nodes"]}
    assert node_ids == {r[0] for r in entities(database_url, graph)}
    assert all(n["url"] == f"/knowledge/{graph.campaign}/entities/{n['id']}" for n in data["nodes"])
    assert data["edges"] and all(e["source"] in node_ids and e["target"] in node_ids for e in data["edges"])
    assert graph.dm.get("/static/vendor/cytoscape-3.35.0.min.js").status_code == 200


@pytest.mark.parametrize("suffix", ["", "/graph", "/graph.json", "/entities/npc-grimble-ashfoot"])
def test_other_tenants_graph_is_404(app, graph, as_role, suffix):
    stranger = as_role("tenant_owner")
    assert graph.dm.get(f"/knowledge/{graph.campaign}{suffix}").status_code == 200
    assert stranger.get(f"/knowledge/{graph.campaign}{suffix}").status_code == 404


def test_a_campaign_made_renamed_or_deleted_elsewhere_shows_as_it_is(app, graph, as_role, database_url):
    """The knowledge pages name their campaign from the tenant's campaign directory, kept per
    process. A campaign that directory doesn't hold is asked of the database, so one created a
    moment ago by another process (plain SQL here: nobody announced it) is found, never a 404. A
    rename through the app shows at once; one deleted behind the app's back is gone within the 3 s
    a process keeps a directory when it can't hear the others (no Redis here)."""
    from tests.support.polling import wait_for

    url = f"/knowledge/{graph.campaign}"
    assert graph.dm.get(url).status_code == 200  # the directory kept
    sql(
        database_url,
        "INSERT INTO web.campaigns (tenant_id, id, name, origin) VALUES (%s, 'cmp-fresh', 'Fresh Fields', 'web')",
        (graph.tenant,),
    )
    fresh = graph.dm.get("/knowledge/cmp-fresh")
    assert fresh.status_code == 200 and "Fresh Fields" in soup(fresh).select_one("h1").text
    owner = as_role("tenant_owner", tenant_id=graph.tenant)
    form = soup(owner.get(f"/campaigns/{graph.campaign}/edit"))
    version = form.select_one("input[name=version]")["value"]
    assert (
        owner.post(f"/campaigns/{graph.campaign}", {"name": "Hollowmere Deeps", "version": version}).status_code == 303
    )
    assert "Hollowmere Deeps" in soup(graph.dm.get(url)).select_one("h1").text
    sql(database_url, "DELETE FROM web.campaigns WHERE tenant_id = %s AND id = 'cmp-fresh'", (graph.tenant,))
    wait_for(
        lambda: graph.dm.get("/knowledge/cmp-fresh").status_code == 404, timeout=5, what="the deleted campaign gone"
    )


def test_memory_only_campaign_is_visible_unknown_is_404(app, graph, database_url):
    sql(
        database_url,
        f'INSERT INTO "tenant_{graph.tenant}".entities (campaign_id, id, type, name) '
        "VALUES ('default', 'loc-x', 'location', 'Nowhere')",
    )
    page = soup(graph.dm.get("/knowledge"))
    assert page.select_one('a[href="/knowledge/default"]').text == "Default campaign"
    assert "Nowhere" in graph.dm.get("/knowledge/default").get_data(as_text=True)
    assert graph.dm.get("/knowledge/never-heard-of-it").status_code == 404


def test_descriptions_the_gateway_wrote_as_numbers_flags_or_json_are_shown_not_a_500(app, graph, database_url):
    """The gateway's knowledge tools write `attributes` as JSON; a description that isn't a string
    is shown as written (long text cut at 120 characters), never a server error."""
    schema = f'"tenant_{graph.tenant}"'
    odd = {
        "odd-number": 42,
        "odd-flag": True,
        "odd-object": {"mood": "grim", "<b>": "x"},
        "odd-list": ["salt", "rope"],
        "odd-long": "x" * 200,
        "odd-empty": "",
    }
    for eid, description in odd.items():
        sql(
            database_url,
            f"INSERT INTO {schema}.entities (id, campaign_id, type, name, attributes)"
            " VALUES (%s, %s, 'item', %s, jsonb_build_object('description', %s::jsonb))",
            (eid, graph.campaign, f"Zz {eid}", json.dumps(description)),
        )
    resp = graph.dm.get(f"/knowledge/{graph.campaign}?q=Zz")
    assert resp.status_code == 200
    shown = {
        a.text: (a.find_next_sibling("span").text if a.find_next_sibling("span") else None)
        for a in soup(resp).select("tbody td:first-child a")
    }
    assert shown == {
        "Zz odd-number": "42",
        "Zz odd-flag": "true",
        "Zz odd-object": '{"<b>": "x", "mood": "grim"}',  # as PostgreSQL keeps a JSONB object
        "Zz odd-list": '["salt", "rope"]',
        "Zz odd-long": "x" * 120,
        "Zz odd-empty": None,
    }
    row = next(r for r in resp.get_data(as_text=True).split("<tr>") if "Zz odd-object" in r).split("</tr>")[0]
    assert "<b>" not in row and "&lt;b&gt;" in row  # escaped


def test_attributes_and_provenance_that_are_not_json_objects_are_shown_not_a_500(app, graph, database_url):
    """The columns are JSONB written by the gateway's tools, which may hold a list, a number or a
    string where we write an object: the list, the entity page, the graph and its JSON show what
    they can (an entity's attributes as written) and never answer a server error."""
    schema = f'"tenant_{graph.tenant}"'
    odd = {
        "odd-list": '["salt", "rope"]',
        "odd-number": "7",
        "odd-text": '"a <b>note</b>"',
        "odd-null": "null",
        "odd-empty": '""',
    }
    for eid, attributes in odd.items():
        sql(
            database_url,
            f"INSERT INTO {schema}.entities (id, campaign_id, type, name, attributes) VALUES (%s, %s, 'item', %s, %s)",
            (eid, graph.campaign, f"Zz {eid}", attributes),
        )
    sql(
        database_url,
        f"INSERT INTO {schema}.relationships (campaign_id, source_id, target_id, rel_type, attributes, provenance)"
        " VALUES (%s, 'odd-list', 'odd-number', 'holds', '[1]', '\"told by Vey\"')",
        (graph.campaign,),
    )
    rows = soup(graph.dm.get(f"/knowledge/{graph.campaign}?q=Zz")).select("tbody tr")
    assert [r.select_one("a").text for r in rows] == [f"Zz {eid}" for eid in sorted(odd)]
    assert all(r.select_one("span.small") is None for r in rows)  # no description to show
    for eid in odd:
        resp = graph.dm.get(f"/knowledge/{graph.campaign}/entities/{eid}")
        assert resp.status_code == 200, eid
        shown = soup(resp).select_one("#attr-h").parent.text
        written = {"odd-list": '["salt", "rope"]', "odd-number": "7", "odd-text": "a <b>note</b>"}.get(eid)
        assert (written or "No attributes recorded.") in shown, eid  # as written (a string as itself)
        assert "<b>" not in resp.get_data(as_text=True).split('id="attr-h"')[1].split("</section>")[0]
    page = soup(graph.dm.get(f"/knowledge/{graph.campaign}/entities/odd-list"))
    holds = [tr for tr in page.select_one("#out-h").parent.select("tbody tr") if tr.select("td")[0].text == "holds"]
    assert holds and "Zz odd-number" in holds[0].text
    assert graph.dm.get(f"/knowledge/{graph.campaign}/graph").status_code == 200
    edges = graph.dm.get(f"/knowledge/{graph.campaign}/graph.json").get_json()["edges"]
    assert graph.dm.get(f"/knowledge/{graph.campaign}/graph.json").status_code == 200 and edges is not None


def test_the_entity_block_skips_the_type_choices_it_does_not_show(app, graph, database_url):
    """The type filter's choices (every type of the campaign with its count) are outside the
    #entities block: the block doesn't ask for them (1 statement, the page 2) and its rows are the
    page's; the campaign's name comes from the tenant's campaign directory, kept per process. Rows the gateway's tools wrote: types of any case and script, names that sort with
    accents and case, ids we didn't mint, an entity whose name ties another's."""
    from tests.test_campaigns import count_queries

    schema = f'"tenant_{graph.tenant}"'
    for eid, etype, name in (
        ("gw:Ω-1", "Göttin", "Ämber Wren"),
        ("gw:Ω-2", "göttin", "amber wren"),
        ("gw:Ω-3", "faction", "Amber Wren"),
        ("0", "faction", "Zz tie"),
        ("00", "faction", "Zz tie"),
    ):
        sql(
            database_url,
            f"INSERT INTO {schema}.entities (id, campaign_id, type, name, attributes) VALUES (%s, %s, %s, %s, '{{}}')",
            (eid, graph.campaign, etype, name),
        )
    facets = sql(
        database_url,
        f"SELECT type, count(*) FROM {schema}.entities WHERE campaign_id = %s GROUP BY type ORDER BY type",
        (graph.campaign,),
    )
    url = f"/knowledge/{graph.campaign}"
    graph.dm.get(url)  # the sign-in and the memory tables, looked up once and then remembered
    with count_queries(app) as full_statements:
        full = soup(graph.dm.get(url))
    options = [o.text for o in full.select("#k-type option")][1:]  # after "All types"
    assert options == [f"{t} ({n})" for t, n in facets]
    names = [a.text for a in full.select("tbody td:first-child a")]
    assert names == [r[2] for r in entities(database_url, graph)][: len(names)]
    with count_queries(app) as block_statements:
        block = soup(graph.dm.get(url, htmx=True))
    assert not block.select("#k-type") and [a.text for a in block.select("tbody td:first-child a")] == names
    # The list (the campaign's name kept); the page counts the types from its rows when it holds
    # the whole campaign and the database orders types as Python does, else asks for them.
    from glyphoxa_htmx.services import knowledge

    def pages(statements):  # (less the sign-in's, read again whenever its 3 s without Redis pass)
        return [st for st in statements if "login_sessions" not in st]

    assert len(pages(full_statements)) == (1 if knowledge.types_sort_like_python() else 2), full_statements
    assert len(pages(block_statements)) == 1, block_statements
    assert not any("GROUP BY type" in statement for statement in block_statements)
    # A filtered page still offers every type of the campaign (the choices ignore the filter).
    faction = soup(graph.dm.get(f"{url}?type=faction&q=tie"))
    assert [a.text for a in faction.select("tbody td:first-child a")] == ["Zz tie", "Zz tie"]
    assert [o.text for o in faction.select("#k-type option")][1:] == options
    assert [a["href"] for a in faction.select("tbody td:first-child a")] == [f"{url}/entities/0", f"{url}/entities/00"]


def test_type_choices_counted_from_a_whole_page_match_the_statements(app, graph, database_url, monkeypatch):
    """The type filter's choices counted from a page that holds the whole campaign are the ones the
    statement gives (types, counts and the database's order), and the statement is asked whenever
    the page can't answer: a campaign longer than a page, a later page, a filter, or a database
    whose ordering of types isn't Python's (here: a column with a collation of its own)."""
    from glyphoxa_htmx.services import knowledge
    from tests.test_campaigns import count_queries

    schema = f'"tenant_{graph.tenant}"'
    url = f"/knowledge/{graph.campaign}"

    def choices(page):
        return [o.text for o in page.select("#k-type option")][1:]

    def from_statement():
        rows = sql(
            database_url,
            f"SELECT type, count(*) FROM {schema}.entities WHERE campaign_id = %s GROUP BY type ORDER BY type",
            (graph.campaign,),
        )
        return [f"{t} ({n})" for t, n in rows]

    def asked(path):
        with count_queries(app) as statements:
            page = soup(graph.dm.get(path))
        return page, any("GROUP BY type" in s for s in statements)

    graph.dm.get(url)  # (the sign-in, the memory tables and the collation probe, then remembered)
    for eid, etype in (("t1", "Zeta"), ("t2", "alpha"), ("t3", "Älter"), ("t4", "_x"), ("t5", "10")):
        sql(
            database_url,
            f"INSERT INTO {schema}.entities (id, campaign_id, type, name, attributes) VALUES (%s, %s, %s, %s, '{{}}')",
            (eid, graph.campaign, etype, f"Name {eid}"),
        )
    page, statement = asked(url)
    assert choices(page) == from_statement() and statement == (not knowledge.types_sort_like_python())
    # Longer than a page: the page can't see every type, the statement answers.
    for i in range(knowledge.PAGE_SIZE):
        sql(
            database_url,
            f"INSERT INTO {schema}.entities (id, campaign_id, type, name, attributes) VALUES (%s, %s, 'crowd', %s, '{{}}')",
            (f"c{i}", graph.campaign, f"Crowd {i:02d}"),
        )
    page, statement = asked(url)
    assert statement and choices(page) == from_statement()
    later = page.select_one("a[href*='after=']")["href"]
    page, statement = asked(later)
    assert statement and choices(page) == from_statement()
    sql(database_url, f"DELETE FROM {schema}.entities WHERE id LIKE 'c%%'")
    page, statement = asked(url + "?type=alpha")
    assert statement and choices(page) == from_statement()
    # A type column with a collation of its own: the probe says no, the statement answers.
    sql(database_url, f'ALTER TABLE {schema}.entities ALTER COLUMN type TYPE text COLLATE "POSIX"')
    monkeypatch.setattr(knowledge, "_sorts_like_python", None)
    try:
        page, statement = asked(url)
        assert not knowledge.types_sort_like_python()
        assert statement and choices(page) == from_statement()
    finally:  # (the probe looks at every tenant's entities table)
        sql(database_url, f'ALTER TABLE {schema}.entities ALTER COLUMN type TYPE text COLLATE "default"')
