"""Transcripts (tenant_<id>.session_entries, read-only): viewer with keyset pages and filters,
permalinks, downloads, full-text search with safe highlighting, recaps, and empty states when a
tenant has no memory schema yet."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pytest

from glyphoxa_htmx.core.authz import Actor, Role
from tests.conftest import soup
from tests.support.polling import wait_for
from tests.support.ws_server import gateway_tenant, make_campaign, seed, sql


@pytest.fixture
def seeded(app, as_role, database_url):
    dm = as_role("dm")
    tenant = dm.user.tenant_id
    gateway_tenant(app, tenant)
    campaign = make_campaign(app, tenant)
    ids = seed(database_url, tenant, campaign, sessions=2)
    return SimpleNamespace(
        dm=dm,
        tenant=tenant,
        campaign=campaign,
        sid=ids[-1],
        ids=ids,
        actor=Actor(user_id=dm.user.id, tenant_id=tenant, role=Role.DM),
    )


def entries(database_url, tenant, sid):
    return sql(
        database_url,
        f'SELECT id, speaker_name, npc_id, text, raw_text, timestamp FROM "tenant_{tenant}".session_entries '
        "WHERE session_id = %s ORDER BY id",
        (sid,),
    )


def add_line(database_url, tenant, sid, text, campaign, speaker="mara", npc_id=""):
    return sql(
        database_url,
        f'INSERT INTO "tenant_{tenant}".session_entries (campaign_id, session_id, speaker_id, '
        "speaker_name, text, raw_text, npc_id) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id",
        (campaign, sid, "204857310495821824", speaker, text, text.lower(), npc_id),
    )[0][0]


def search_statements(q) -> list[str]:
    """The statements a search ran, less the sign-in's (resolved again whenever the 3 s a process
    keeps one without Redis have passed: timing, not the page)."""
    return [st for st in q if "login_sessions" not in st]


def page_ids(resp) -> list[int]:
    return [int(li["data-line-id"]) for li in soup(resp).select(".transcript li[data-line-id]")]


def test_viewer_shows_lines_with_speakers_and_elapsed_time(app, seeded, database_url):
    rows = entries(database_url, seeded.tenant, seeded.sid)
    resp = seeded.dm.get(f"/sessions/{seeded.sid}/transcript")
    assert resp.status_code == 200
    assert page_ids(resp) == [r[0] for r in rows]  # 48 lines fit one page, in order
    first = soup(resp).select_one(".transcript li")
    assert first.select_one(".speaker").text == rows[0][1]
    assert first.select_one("time").text.count(":") == 2  # elapsed h:mm:ss
    npc_items = soup(resp).select(".transcript li.is-npc")
    assert npc_items and all(li.select_one(".badge-accent").text == "NPC" for li in npc_items)
    block = seeded.dm.get(f"/sessions/{seeded.sid}/transcript?kind=npc", htmx=True)
    assert "<html" not in block.get_data(as_text=True)


def test_keyset_pages_cover_every_line_once(app, seeded, database_url):
    from glyphoxa_htmx.services import sessions, transcripts

    all_ids = [r[0] for r in entries(database_url, seeded.tenant, seeded.sid)]
    with app.test_request_context():
        session = sessions.get(seeded.actor, seeded.sid)
        filters = transcripts.TranscriptFilters()
        seen, after = [], None
        while True:
            page = transcripts.page(seeded.actor, session, filters, after=after, limit=10)
            seen += [line.id for line in page.lines]
            if not page.has_later:
                break
            after = page.lines[-1].id
        assert seen == all_ids
        back = transcripts.page(seeded.actor, session, filters, before=all_ids[25], limit=10)
        assert [line.id for line in back.lines] == all_ids[15:25] and back.has_earlier and back.has_later
        assert page.total == 48


def test_filters_speaker_kind_time_and_raw(app, seeded, database_url):
    rows = entries(database_url, seeded.tenant, seeded.sid)
    url = f"/sessions/{seeded.sid}/transcript"
    speaker = rows[0][1]
    only = soup(seeded.dm.get(url, query_string={"speaker": speaker}))
    assert {s.text for s in only.select(".transcript .speaker")} == {speaker}
    npcs = [r[0] for r in rows if r[2]]
    players = [r[0] for r in rows if not r[2]]
    assert page_ids(seeded.dm.get(url + "?kind=npc")) == npcs
    assert page_ids(seeded.dm.get(url + "?kind=players")) == players
    started = sql(database_url, "SELECT started_at FROM public.sessions WHERE id = %s", (seeded.sid,))[0][0]
    cut = started + timedelta(hours=1)
    later = [r[0] for r in rows if r[5] >= cut]
    assert page_ids(seeded.dm.get(url + "?at=1:00")) == later
    bad = seeded.dm.get(url + "?at=soon")
    assert bad.status_code == 422 and "hours:minutes" in bad.get_data(as_text=True)
    assert not soup(seeded.dm.get(url)).select(".line-raw")
    raw = soup(seeded.dm.get(url + "?raw=1")).select(".line-raw")
    assert raw and any(r[4] in raw[0].text for r in rows)


def test_permalink_shows_the_line_in_context(app, seeded, database_url):
    ids = [r[0] for r in entries(database_url, seeded.tenant, seeded.sid)]
    target = ids[30]
    page = soup(seeded.dm.get(f"/sessions/{seeded.sid}/transcript?around={target}"))
    shown = [int(li["data-line-id"]) for li in page.select(".transcript li")]
    assert shown[:6] == ids[25:31]  # five lines of context before it
    assert "is-target" in page.select_one(f"#line-{target}")["class"]
    link = page.select_one(f"#line-{target} a[data-copy-link]")["href"]
    assert link == f"/sessions/{seeded.sid}/transcript?around={target}#line-{target}"
    assert page.select_one(".pager a")["href"].startswith(f"/sessions/{seeded.sid}/transcript?before=")


def test_downloads_txt_and_markdown(app, seeded, database_url):
    rows = entries(database_url, seeded.tenant, seeded.sid)
    add_line(database_url, seeded.tenant, seeded.sid, "Use *stars* and # hashes [here]", seeded.campaign)
    txt = seeded.dm.get(f"/sessions/{seeded.sid}/transcript.txt")
    assert txt.status_code == 200 and txt.mimetype == "text/plain"
    assert txt.headers["Content-Disposition"].startswith('attachment; filename="transcript-')
    body = txt.get_data(as_text=True)
    assert body.startswith("Transcript: The Salt Road") and rows[0][3] in body and body.count("\n") >= 50
    md = seeded.dm.get(f"/sessions/{seeded.sid}/transcript.md")
    assert md.mimetype == "text/markdown"
    text = md.get_data(as_text=True)
    assert text.startswith("# Transcript: The Salt Road") and "*(NPC)*" in text
    assert r"Use \*stars\* and \# hashes \[here\]" in text


def test_search_finds_a_known_line_with_safe_highlights(app, seeded, as_role, database_url):
    line = add_line(
        database_url,
        seeded.tenant,
        seeded.sid,
        "<script>alert(1)</script> The zanzibar lantern is lit",
        seeded.campaign,
    )
    other = as_role("dm")
    gateway_tenant(app, other.user.tenant_id)
    other_campaign = make_campaign(app, other.user.tenant_id)
    other_sid = seed(database_url, other.user.tenant_id, other_campaign, sessions=1)[0]
    add_line(database_url, other.user.tenant_id, other_sid, "Another table's zanzibar secret", other_campaign)

    resp = seeded.dm.get("/sessions/search?q=zanzibar")
    page = soup(resp)
    hits = page.select(".hit")
    assert len(hits) == 1
    html = str(hits[0].select_one(".hit-text"))
    assert "<mark>zanzibar</mark>" in html and "&lt;script&gt;" in html and "<script>" not in html
    assert "Another table" not in resp.get_data(as_text=True)
    assert hits[0].select_one("a")["href"] == f"/sessions/{seeded.sid}/transcript?around={line}#line-{line}"
    assert "The Salt Road" in page.select_one(".search-group h2").text

    theirs = soup(other.get("/sessions/search?q=zanzibar"))
    assert len(theirs.select(".hit")) == 1 and "Another table" in theirs.select_one(".hit").text
    assert soup(seeded.dm.get("/sessions/search?q=zanzibar&campaign=nope")).select_one(".hit") is None
    assert len(soup(seeded.dm.get(f"/sessions/search?q=zanzibar&campaign={seeded.campaign}")).select(".hit")) == 1
    block = seeded.dm.get("/sessions/search?q=zanzibar", htmx=True)
    assert "<html" not in block.get_data(as_text=True) and "zanzibar" in block.get_data(as_text=True)


def test_search_groups_by_session_and_pages(app, seeded, database_url):
    from glyphoxa_htmx.services import transcripts

    for sid in seeded.ids:
        for n in range(3):
            add_line(database_url, seeded.tenant, sid, f"The quokka number {n} waddles", seeded.campaign)
    with app.test_request_context():
        result = transcripts.search(seeded.actor, "quokka")
        assert [len(g.hits) for g in result.groups] == [3, 3]
        assert [g.session_id for g in result.groups] == list(reversed(seeded.ids))
        first = transcripts.search(seeded.actor, "quokka", limit=4)
        rest = transcripts.search(seeded.actor, "quokka", before=first.next_before, limit=4)
        ids = [h.line.id for g in first.groups + rest.groups for h in g.hits]
        assert len(ids) == len(set(ids)) == 6 and rest.next_before is None
    from tests.test_campaigns import count_queries

    seeded.dm.get("/sessions/search?q=quokka", htmx=True)  # (the sign-in resolved and cached first)
    with count_queries(app) as q:  # the hits' sessions: one statement for all of them...
        assert len(soup(seeded.dm.get("/sessions/search?q=quokka", htmx=True)).select(".hit")) == 6
    assert sum('FROM "public"."sessions" s' in s for s in q) == 1 and len(q) == 2, q
    with count_queries(app) as q:  # ...and none when nothing matched
        assert soup(seeded.dm.get("/sessions/search?q=wombat", htmx=True)).select_one(".hit") is None
    assert len(q) == 1, q
    too_long = seeded.dm.get("/sessions/search?q=" + "x" * 300)
    assert too_long.status_code == 422
    stop_words = seeded.dm.get("/sessions/search?q=the+and")  # no lexemes: no matches, no error
    assert stop_words.status_code == 200 and "No lines match" in stop_words.get_data(as_text=True)


def test_the_full_search_pages_campaign_filter_comes_with_the_hits_sessions(app, seeded, as_role, database_url):
    """The full page's campaign filter is read by the hits' sessions' statement (issue 18): the same
    campaigns in the same order as ``campaigns.choices(include_archived=True)`` (PostgreSQL's
    collation, archived and found-in-Discord ones included, no other tenant's), whether anything
    matched or not; a block request reads no filter; an empty query reads it on its own (or keeps it). Once read,
    the filter (the tenant's campaign directory) and the ended sessions' campaign and start are
    kept: the next searches run the hits' statement alone."""
    from glyphoxa_htmx.services import campaigns, transcripts
    from tests.test_campaigns import count_queries

    tenant = seeded.tenant
    for name in ("émile's crossing", "Zephyr Keep", "ember Vale", "Ember vale"):
        make_campaign(app, tenant, name=name)
    archived = make_campaign(app, tenant, name="Archived Arc")
    sql(
        database_url,
        "UPDATE web.campaigns SET archived_at = now() WHERE tenant_id = %s AND id = %s",
        (tenant, archived),
    )
    # a campaign id only the gateway's data uses: registered (named by its id) before it is listed
    sql(database_url, "UPDATE public.tenants SET campaign_id = 'gw-only-campaign' WHERE id = %s", (tenant,))
    other = as_role("dm")
    make_campaign(app, other.user.tenant_id, name="Another table's arc")
    for sid in seeded.ids:
        add_line(database_url, tenant, sid, "The quokka waddles past the chapel", seeded.campaign)

    def options(resp):
        return [(o["value"], o.text) for o in soup(resp).select("#s-campaign option")][1:]

    # (first: the sign-in resolved, found campaigns registered, the table seen, the text search probed)
    seeded.dm.get("/sessions/search?q=quokka")
    with app.test_request_context():
        expected = campaigns.choices(seeded.actor, include_archived=True)
    names = [n for _id, n in expected]
    assert {"Archived Arc", "gw-only-campaign", "The Salt Road"} <= set(names) and "Another table's arc" not in names
    campaigns.forget_directories()
    transcripts.forget_settled()
    for url, statements in (
        ("/sessions/search?q=quokka", 2),  # the hits, then their sessions with the filter
        ("/sessions/search?q=quokka", 1),  # again: the hits alone (their sessions and the filter kept)
        ("/sessions/search?q=wombat", 1),  # nothing matched: the kept filter all the same
        ("/sessions/search", 0),  # no query: the kept filter alone
    ):
        with count_queries(app) as q:
            resp = seeded.dm.get(url)
        assert resp.status_code == 200 and options(resp) == expected, url
        assert len(search_statements(q)) == statements, (url, q)
    campaigns.forget_directories()
    with count_queries(app) as q:
        resp = seeded.dm.get("/sessions/search?q=wombat")  # nothing matched, no filter kept: read it
    assert options(resp) == expected and len(search_statements(q)) == 2, q
    page = soup(seeded.dm.get(f"/sessions/search?q=quokka&campaign={seeded.campaign}"))
    assert [o["value"] for o in page.select("#s-campaign option[selected]")] == [seeded.campaign]
    assert len(page.select(".hit")) == 2 and "The Salt Road" in page.select_one(".search-group h2").text
    with count_queries(app) as q:
        block = seeded.dm.get("/sessions/search?q=quokka", htmx=True)
    assert soup(block).select_one("#s-campaign") is None and len(soup(block).select(".hit")) == 2
    assert len(search_statements(q)) == 1, q
    # the other tenant's filter: only its own campaign
    theirs = options(other.get("/sessions/search?q=quokka"))
    assert [n for _id, n in theirs] == ["Another table's arc"]


def test_an_open_search_page_shows_a_campaign_renamed_meanwhile(app, seeded, as_role, database_url):
    """Leave a tab open: the search page is open when someone renames the campaign (through the app,
    in this process). The open page's next block (a new query, "Older matches") and the next full
    page show the new name over the hits and in the filter: a campaign's write empties the kept
    directory at once. A rename with plain SQL, which nobody announces, shows within the 3 s a
    process keeps a directory when it can't hear the others (no Redis here)."""
    from tests.test_campaigns import count_queries

    for sid in seeded.ids:
        add_line(database_url, seeded.tenant, sid, "A quokka by the well", seeded.campaign)

    def heading(resp) -> str:
        return soup(resp).select_one(".search-group h2").text

    page = seeded.dm.get("/sessions/search?q=quokka")  # the open tab
    old_name = heading(page).split(" · ")[0].strip()
    assert old_name and soup(page).select_one(f"#s-campaign option[value='{seeded.campaign}']").text == old_name
    editor = as_role("dm", tenant_id=seeded.tenant)
    form = soup(editor.get(f"/campaigns/{seeded.campaign}/edit"))
    version = form.select_one("input[name=version]")["value"]
    assert (
        editor.post(f"/campaigns/{seeded.campaign}", {"name": "The Quokka Coast", "version": version}).status_code
        == 303
    )
    with count_queries(app) as q:
        block = seeded.dm.get("/sessions/search?q=quokka", htmx=True)
    assert heading(block).split(" · ")[0].strip() == "The Quokka Coast"
    assert len(search_statements(q)) == 2, q  # the directory read again, with the hits' sessions' statement
    full = seeded.dm.get("/sessions/search?q=quokka")
    assert soup(full).select_one(f"#s-campaign option[value='{seeded.campaign}']").text == "The Quokka Coast"
    assert heading(full).split(" · ")[0].strip() == "The Quokka Coast"
    # behind the app's back: within the 3 s of an unheard process, never longer
    sql(database_url, "UPDATE web.campaigns SET name = 'Quokka Point' WHERE id = %s", (seeded.campaign,))
    wait_for(
        lambda: "Quokka Point" in heading(seeded.dm.get("/sessions/search?q=quokka", htmx=True)),
        timeout=5,
        what="the renamed campaign over the hits",
    )


def test_search_keeps_only_ended_sessions_and_only_its_own_tenants(app, seeded, as_role, database_url):
    """A hit in a session the gateway hasn't ended (any state but 'ended', including one this app
    doesn't know) has its session read on every search; once the gateway ends it, it is read once
    more and then kept. Another tenant searching the same words never sees this tenant's kept
    directory or sessions (it has none of them)."""
    import uuid

    from glyphoxa_htmx.services import campaigns, transcripts
    from tests.test_campaigns import count_queries

    live = str(uuid.uuid4())
    sql(
        database_url,
        "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, channel_id, license_tier, state) "
        "VALUES (%s, %s, %s, 'g-1', 'c-1', 'shared', 'paused')",
        (live, seeded.tenant, seeded.campaign),
    )
    add_line(database_url, seeded.tenant, live, "The wombat sings", seeded.campaign)
    first = seeded.dm.get("/sessions/search?q=wombat", htmx=True)
    assert len(soup(first).select(".hit")) == 1 and soup(first).select_one(".search-group h2 a")
    for _ in range(2):
        with count_queries(app) as q:
            seeded.dm.get("/sessions/search?q=wombat", htmx=True)
        assert len(search_statements(q)) == 2, q  # not ended: its session read each time
    assert (seeded.tenant, live) not in transcripts._ended_sessions
    sql(database_url, "UPDATE public.sessions SET state = 'ended', ended_at = now() WHERE id = %s", (live,))
    for statements in (2, 1):
        with count_queries(app) as q:
            resp = seeded.dm.get("/sessions/search?q=wombat", htmx=True)
        assert len(search_statements(q)) == statements, q
        assert len(soup(resp).select(".hit")) == 1
    mine = campaigns.cached_directory(seeded.tenant)
    assert mine is not None and list(mine.names) == [seeded.campaign]
    other = as_role("dm")
    elsewhere = make_campaign(app, other.user.tenant_id, name="Elsewhere")  # (a write: every directory goes)
    gateway_tenant(app, other.user.tenant_id)
    seed(database_url, other.user.tenant_id, elsewhere, sessions=1)
    seeded.dm.get("/sessions/search?q=wombat", htmx=True)
    theirs = other.get("/sessions/search?q=wombat")
    assert theirs.status_code == 200 and not soup(theirs).select(".hit")
    assert [o.text for o in soup(theirs).select("#s-campaign option")][1:] == ["Elsewhere"]
    assert list(campaigns.cached_directory(seeded.tenant).names) == [seeded.campaign]
    assert list(campaigns.cached_directory(other.user.tenant_id).names.values()) == ["Elsewhere"]


def test_a_directory_read_inside_a_transaction_is_not_kept(app, seeded):
    """Only committed rows read on a read-only page fill the directory: a read inside a request
    that writes (its transaction may still roll back) is used once and not kept."""
    from glyphoxa_htmx.services import campaigns

    with app.test_request_context("/campaigns", method="POST"):
        generation = campaigns.directory_generation()
        got = campaigns.keep_directory(seeded.tenant, generation, [("c1", "Uncommitted Arc")])
        assert got.names == {"c1": "Uncommitted Arc"}
    assert campaigns.cached_directory(seeded.tenant) is None


def test_search_pages_on_through_its_older_matches_link(app, seeded, database_url):
    from glyphoxa_htmx.services.transcripts import SEARCH_RESULTS

    for n in range(SEARCH_RESULTS + 5):
        add_line(database_url, seeded.tenant, seeded.sid, f"The numbat number {n} digs", seeded.campaign)
    first = soup(seeded.dm.get(f"/sessions/search?q=numbat&campaign={seeded.campaign}"))
    link = first.select_one(".pager a")
    assert (
        link["href"] == link["hx-get"] and "before=" in link["href"] and f"campaign={seeded.campaign}" in link["href"]
    )
    older = soup(seeded.dm.get(link["href"]))
    shown = [a["href"] for page in (first, older) for a in page.select(".hit a")]
    assert len(shown) == len(set(shown)) == SEARCH_RESULTS + 5 and older.select_one(".pager a") is None


def test_recap_audio_pcm_is_wrapped_as_wav(app, seeded, database_url):
    pcm = bytes(range(256)) * 8
    sql(
        database_url,
        f'UPDATE "tenant_{seeded.tenant}".recaps SET audio_data = %s, sample_rate = 22050 WHERE session_id = %s',
        (pcm, seeded.sid),
    )
    resp = seeded.dm.get(f"/sessions/{seeded.sid}/recap.wav")
    assert resp.mimetype == "audio/wav" and resp.data[:4] == b"RIFF" and resp.data[8:12] == b"WAVE"
    assert int.from_bytes(resp.data[24:28], "little") == 22050 and resp.data.endswith(pcm)
    sql(database_url, f'DELETE FROM "tenant_{seeded.tenant}".recaps WHERE session_id = %s', (seeded.sid,))
    assert seeded.dm.get(f"/sessions/{seeded.sid}/recap.wav").status_code == 404
    assert soup(seeded.dm.get(f"/sessions/{seeded.sid}")).select_one(".recap") is None


def test_tenant_without_memory_schema_sees_empty_states(app, as_role, database_url):
    dm = as_role("dm")
    tenant = dm.user.tenant_id
    gateway_tenant(app, tenant)
    campaign = make_campaign(app, tenant)
    # A session row without any transcript store (the worker never ran).
    sql(
        database_url,
        "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, channel_id, license_tier, "
        "state, started_at, ended_at, error) VALUES ('s-empty', %s, %s, '1', '2', 'shared', 'ended', "
        "now() - interval '1 hour', now(), 'start timeout')",
        (tenant, campaign),
    )
    assert sql(database_url, "SELECT to_regnamespace(%s)", (f"tenant_{tenant}",))[0][0] is None
    checks = {
        "/sessions/s-empty/transcript": "No transcripts yet",
        "/sessions/search?q=dragon": "Nothing to search yet",
        "/knowledge": "hasn't run a session yet",
        f"/knowledge/{campaign}": "No knowledge yet",
        f"/knowledge/{campaign}/graph": "Nothing to draw yet",
        "/sessions/s-empty": "No transcript has been written",
        "/sessions/s-empty/live": "No lines were recorded",
        "/dashboard": "start timeout",  # the last session's error, without line counts
    }
    for url, text in checks.items():
        resp = dm.get(url)
        assert resp.status_code == 200, url
        assert text in resp.get_data(as_text=True), url
    assert dm.get("/sessions/s-empty/recap.wav").status_code == 404
    assert dm.get("/sessions/s-empty/transcript.txt").get_data(as_text=True).startswith("Transcript:")


# ---- an ended session's figures are computed once; a live (or just-ended) session's every time ----


def count_statements(app, fn):
    """(result of fn(), SQL statements it sent)."""
    from sqlalchemy import event

    from glyphoxa_htmx.extensions import db

    with app.app_context():
        engine = db.engine
    seen: list[str] = []

    def before(conn, cursor, statement, parameters, context, executemany):
        seen.append(statement)

    event.listen(engine, "before_cursor_execute", before)
    try:
        result = fn()
    finally:
        event.remove(engine, "before_cursor_execute", before)
    return result, seen


def line_count(resp) -> str:
    return soup(resp).select_one("#tx-h").parent.text


def test_settled_session_transcript_figures_are_computed_once(app, seeded, database_url):
    from glyphoxa_htmx.services import transcripts

    url = f"/sessions/{seeded.sid}/transcript"
    seeded.dm.get(url)  # the sign-in and other per-process caches warm
    transcripts.forget_settled()
    first, cold = count_statements(app, lambda: seeded.dm.get(url))
    again, warm = count_statements(app, lambda: seeded.dm.get(url))
    assert first.status_code == again.status_code == 200
    assert soup(first).select_one("main").text == soup(again).select_one("main").text  # the same page
    # the figures (one statement with the count) once; then at most the session (with its campaign,
    # unless kept), the table check and the lines
    assert sum("count(*)" in s for s in cold) == 1 and not any("count(*)" in s for s in warm), (cold, warm)
    assert len(warm) <= 3, warm
    # A filter has its own figures (count, first/last line); the speakers list stays whole.
    npc, _ = count_statements(app, lambda: seeded.dm.get(url + "?kind=npc", htmx=True))
    npc_lines = [r for r in entries(database_url, seeded.tenant, seeded.sid) if r[2]]
    assert len(page_ids(npc)) == len(npc_lines)
    # The session page and the dashboard reuse the line counts without asking the database.
    transcripts.forget_settled()
    _, detail_cold = count_statements(app, lambda: seeded.dm.get(f"/sessions/{seeded.sid}"))
    _, detail_warm = count_statements(app, lambda: seeded.dm.get(f"/sessions/{seeded.sid}"))
    assert sum("count(*)" in s for s in detail_cold) == 1 and not any("count(*)" in s for s in detail_warm)
    assert len(detail_warm) <= 5, detail_warm  # session and campaign, cast, usage, recap check, recap
    assert "48" in line_count(seeded.dm.get(f"/sessions/{seeded.sid}"))


def test_live_and_just_ended_sessions_are_never_cached(app, seeded, database_url):
    from glyphoxa_htmx.services import transcripts

    for state, ended in (("active", "NULL"), ("ended", "now()")):
        sid = f"s-{state}"
        sql(
            database_url,
            "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, channel_id, license_tier, "
            f"state, started_at, ended_at) VALUES (%s, %s, %s, '1', '2', 'shared', %s, now() - interval '1 hour', "
            f"{ended})",
            (sid, seeded.tenant, seeded.campaign, state),
        )
        add_line(database_url, seeded.tenant, sid, "The first line", seeded.campaign)
        url = f"/sessions/{sid}/transcript"
        assert len(page_ids(seeded.dm.get(url))) == 1
        assert "1 line" in line_count(seeded.dm.get(f"/sessions/{sid}"))
        # The worker writes another line (for the just-ended one: its last flush).
        add_line(database_url, seeded.tenant, sid, "The second line", seeded.campaign, speaker="rowan")
        resp = seeded.dm.get(url)
        assert len(page_ids(resp)) == 2
        assert [o.text for o in soup(resp).select("#t-speaker option")][-2:] == ["mara", "rowan"]
        assert "2 lines" in line_count(seeded.dm.get(f"/sessions/{sid}"))
        assert not any(sid in key for key in transcripts._settled)


# The line_item macro that web/sessions.py line_items_html replaced (issue 18), kept to prove the
# function writes the same HTML for odd and hostile lines, live (clock time, url_for) and archive.
OLD_LINE_ITEM = """{% macro line_item(line, session_id, start=None, target=None, raw=False, href=None) -%}
<li id="line-{{ line.id }}" data-line-id="{{ line.id }}" data-at="{{ line.at_us }}" class="line spk-{{ line.colour }}{% if line.is_npc %} is-npc{% endif %}{% if target == line.id %} is-target{% endif %}">
<div class="line-meta"><span class="speaker">{{ line.speaker }}</span>{% if line.is_npc %} <span class="badge badge-accent">NPC</span>{% endif %}
<a class="line-time" href="{% if href %}{{ href }}?around={{ line.id }}#line-{{ line.id }}{% else %}{{ url_for('sessions.transcript', session_id=session_id, around=line.id, _anchor='line-%d' % line.id) }}{% endif %}" data-copy-link title="{{ _("Link to this line") }}"><time datetime="{{ line.timestamp.isoformat() }}">{% if start %}{{ line.timestamp|elapsed(start) }}{% else %}{{ line.timestamp.strftime('%H:%M:%S') }}{% endif %}</time></a></div>
<p class="line-text">{{ line.text }}</p>
{% if raw and line.raw_text and line.raw_text != line.text %}<p class="line-raw"><span class="visually-hidden">{{ _("Raw speech-to-text:") }} </span>{{ line.raw_text }}</p>{% endif %}
</li>
{%- endmacro %}{{ line_item(line, session_id, start=start, target=target, raw=raw, href=href) }}"""


@pytest.mark.parametrize("lang", ["en", "de"])
def test_line_item_function_writes_the_macros_html(app, lang):
    from datetime import UTC, datetime

    from glyphoxa_htmx.services.transcripts import Line
    from glyphoxa_htmx.web.sessions import line_items_html

    at = datetime(2026, 3, 1, 20, 5, 7, 123456, tzinfo=UTC)
    lines = [
        Line(7, "s", "u1", "Mara", "", "Hello there", at, raw_text="hello there"),
        Line(8, "s", "", "", "npc&1", "<script>x</script> & \"q\" 'a'", at, raw_text="<b>raw</b>"),
        Line(9, "s", 'u<1>"', "Dr. <Evil>", "", "", at + timedelta(hours=2), raw_text=""),
    ]
    old = app.jinja_env.from_string(OLD_LINE_ITEM)
    with app.test_request_context(headers={"Accept-Language": lang}):
        for line in lines:
            for kwargs in (
                {"start": None, "target": None, "raw": False, "href": None},
                {
                    "start": at - timedelta(minutes=3),
                    "target": line.id,
                    "raw": True,
                    "href": "/sessions/a&b'/transcript",
                },
                {"start": at, "target": 8, "raw": True, "href": ""},
            ):
                for sid in ("4e4e371d", "odd/ses sion?x=1&y='2'"):
                    want = old.render(line=line, session_id=sid, **kwargs)
                    assert str(line_items_html([line], sid, **kwargs)) == want
        # A whole list at once (line_items_html, what the pages use): the lines one after another.
        for kwargs in (
            {"start": None, "target": None, "raw": False, "href": None},
            {"start": at - timedelta(minutes=3), "target": 8, "raw": True, "href": "/sessions/a&b'/transcript"},
        ):
            want = "".join(old.render(line=line, session_id="s<1>", **kwargs) for line in lines)
            assert str(line_items_html(lines, "s<1>", **kwargs)) == want
            assert str(line_items_html([], "s<1>", **kwargs)) == ""


def test_prebuilt_search_and_knowledge_statements_keep_tables_apart(app, seeded, as_role, database_url):
    """The search, page and knowledge statements are parsed or built once per process and shared
    by every request: each execution must see only the calling table's lines, sessions and
    campaigns, in any order of calls. A line of ours naming another table's session id shows
    that session as unknown (its date and campaign are not ours to read)."""
    from glyphoxa_htmx.core.errors import NotFound
    from glyphoxa_htmx.services import knowledge, sessions, transcripts

    other = as_role("dm")
    gateway_tenant(app, other.user.tenant_id)
    other_campaign = make_campaign(app, other.user.tenant_id, "Their Marsh")
    other_sid = seed(database_url, other.user.tenant_id, other_campaign, sessions=1)[0]
    with app.app_context():  # their campaign with our campaign's id: its name is not ours to show
        from glyphoxa_htmx.extensions import db
        from glyphoxa_htmx.models import Campaign

        db.session.add(Campaign(id=seeded.campaign, tenant_id=other.user.tenant_id, name="Not ours"))
        db.session.commit()
    theirs = Actor(user_id=other.user.id, tenant_id=other.user.tenant_id, role=Role.DM)
    mine = add_line(database_url, seeded.tenant, seeded.sid, "The quokka keeps the key", seeded.campaign)
    stray = add_line(database_url, seeded.tenant, other_sid, "A quokka in their session", seeded.campaign)
    add_line(database_url, other.user.tenant_id, other_sid, "Their quokka", other_campaign)
    with app.test_request_context():
        for _round in range(2):
            ours = transcripts.search(seeded.actor, "quokka")
            assert sorted(h.line.id for g in ours.groups for h in g.hits) == sorted([mine, stray])
            known = {g.session_id: g.session for g in ours.groups}
            assert known[seeded.sid] is not None and known[seeded.sid].campaign_id == seeded.campaign
            assert known[seeded.sid].campaign_name == "The Salt Road"
            assert known[other_sid] is None
            them = transcripts.search(theirs, "quokka")
            assert [(g.session_id, [h.line.text for h in g.hits]) for g in them.groups] == [
                (other_sid, ["Their quokka"])
            ]
            assert them.groups[0].session is not None and them.groups[0].session.campaign_id == other_campaign
            assert them.groups[0].session.campaign_name == "Their Marsh"
            assert transcripts.search(theirs, "quokka", campaign=seeded.campaign).groups == []

            page = transcripts.page(
                seeded.actor, sessions.get(seeded.actor, seeded.sid), transcripts.TranscriptFilters()
            )
            texts = [line.text for line in page.lines]
            assert "The quokka keeps the key" in texts and "Their quokka" not in texts
            their_page = transcripts.page(theirs, sessions.get(theirs, other_sid), transcripts.TranscriptFilters())
            texts = [line.text for line in their_page.lines]
            assert "Their quokka" in texts and "A quokka in their session" not in texts

            assert knowledge.campaign(seeded.actor, seeded.campaign).known
            assert knowledge.campaign(theirs, other_campaign).known
            assert knowledge.campaign(theirs, seeded.campaign).name == "Not ours"  # their own of that id
            with pytest.raises(NotFound):
                knowledge.campaign(seeded.actor, other_campaign)
            ours_names = {e.name for e in knowledge.entities(seeded.actor, seeded.campaign).entities}
            theirs_names = {e.name for e in knowledge.entities(theirs, other_campaign).entities}
            assert ours_names and theirs_names
            assert knowledge.entities(theirs, seeded.campaign).entities == []


# ---- which memory tables exist: a present one is remembered a while, a gone one fails safe ----


def test_memory_tables_seen_present_are_not_asked_again_but_absent_ones_are(app, seeded, as_role, database_url):
    tx = f"/sessions/{seeded.sid}/transcript"

    def checks(seen):
        return [s for s in seen if "to_regclass" in s]

    _resp, seen = count_statements(app, lambda: seeded.dm.get(tx))
    assert len(checks(seen)) == 1
    resp, seen = count_statements(app, lambda: seeded.dm.get(tx))
    assert resp.status_code == 200 and checks(seen) == []  # seen present a moment ago
    other = as_role("dm")  # no memory schema: asked on every page, it may appear any time
    for _ in range(2):
        resp, seen = count_statements(app, lambda: other.get("/sessions/search?q=dragon"))
        assert "Nothing to search yet" in resp.get_data(as_text=True) and len(checks(seen)) == 1


def test_a_tenant_without_recaps_is_not_asked_on_every_session_page(app, seeded, database_url, monkeypatch):
    """Gateway versions without recaps never create the table: its absence is remembered for
    ABSENT_SECONDS, after which a table created meanwhile (a first recap) is seen."""
    from glyphoxa_htmx.services import transcripts

    page = f"/sessions/{seeded.sid}"
    assert soup(seeded.dm.get(page)).select_one(".recap") is not None
    transcripts.forget_memory_tables()
    sql(database_url, f'ALTER TABLE "tenant_{seeded.tenant}".recaps RENAME TO recaps_later')

    def checks(seen):
        return [s for s in seen if "to_regclass" in s]

    resp, seen = count_statements(app, lambda: seeded.dm.get(page))
    assert soup(resp).select_one(".recap") is None and len(checks(seen)) == 1
    resp, seen = count_statements(app, lambda: seeded.dm.get(page))
    assert soup(resp).select_one(".recap") is None and checks(seen) == []  # absent a moment ago
    sql(database_url, f'ALTER TABLE "tenant_{seeded.tenant}".recaps_later RENAME TO recaps')
    monkeypatch.setitem(transcripts.ABSENT_SECONDS, "recaps", 0.0)  # (the window has passed)
    resp, seen = count_statements(app, lambda: seeded.dm.get(page))
    assert soup(resp).select_one(".recap") is not None and len(checks(seen)) == 1
    resp, seen = count_statements(app, lambda: seeded.dm.get(page))
    assert checks(seen) == []  # present now: remembered as such


def test_a_memory_table_dropped_after_it_was_seen_gives_try_again_then_the_empty_state(app, seeded, database_url):
    """The tenant's memory store is removed while this process still takes it as present: the page
    that reads it says to try again (503, nothing half-shown, nothing logged as a crash), and the
    retry asks afresh and shows the page without it."""
    tx = f"/sessions/{seeded.sid}/transcript"
    assert seeded.dm.get(tx).status_code == 200
    sql(database_url, f'DROP TABLE "tenant_{seeded.tenant}".session_entries CASCADE')
    resp = seeded.dm.get(tx)
    assert resp.status_code == 503
    assert "Try again in a moment" in resp.get_data(as_text=True)
    resp = seeded.dm.get(tx)
    assert resp.status_code == 200 and "No transcripts yet" in resp.get_data(as_text=True)


def test_a_settled_sessions_row_is_kept_for_its_pages_and_never_for_another_tenant(app, seeded, as_role, database_url):
    """A session that ended over SETTLED_AFTER ago keeps its row per process: its transcript page is
    then its lines alone, and its heading still names the campaign as it is now (renamed through
    the app: shown at once). Kept by tenant: another tenant's user still gets 404. A session that
    is live, or ended a moment ago (the gateway may still touch it), is read on every page."""
    import uuid

    from glyphoxa_htmx.services import sessions
    from tests.test_campaigns import count_queries

    def row_read(url, client=None) -> bool:
        with count_queries(app) as q:
            resp = (client or seeded.dm).get(url)
        assert resp.status_code == 200, url
        return any("FROM public.sessions" in st or '"public"."sessions"' in st for st in search_statements(q))

    url = f"/sessions/{seeded.sid}/transcript"
    seeded.dm.get(url)  # (a sign-in's first resolution may write last_seen_at: nothing is kept from such a request)
    sessions.forget_kept_rows()
    assert row_read(url) and not row_read(url) and not row_read(url + "?kind=npc")
    stranger = as_role("dm")
    for path in (url, f"/sessions/{seeded.sid}", f"/sessions/{seeded.sid}/transcript.txt"):
        assert stranger.get(path).status_code == 404, path
    editor = as_role("dm", tenant_id=seeded.tenant)
    form = soup(editor.get(f"/campaigns/{seeded.campaign}/edit"))
    version = form.select_one("input[name=version]")["value"]
    assert editor.post(f"/campaigns/{seeded.campaign}", {"name": "Salt Marsh", "version": version}).status_code == 303
    assert "Salt Marsh" in soup(seeded.dm.get(url)).select_one("h1").text
    for state, ended in (("active", None), ("ended", "now()")):
        sid = str(uuid.uuid4())
        sql(
            database_url,
            "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, channel_id, license_tier, state, "
            f"ended_at) VALUES (%s, %s, %s, 'g-2', 'c-2', 'shared', %s, {ended or 'NULL'})",
            (sid, seeded.tenant, seeded.campaign, state),
        )
        live = f"/sessions/{sid}/transcript"
        assert row_read(live) and row_read(live), state


def test_a_kept_session_row_is_read_again_after_its_time(app, seeded, monkeypatch, database_url):
    """What a process keeps of an ended session's row (the whole row for its pages, its campaign
    and start for search) lives KEPT_ROW_SECONDS at most: an edit the gateway's contract doesn't
    make (an operator moving an ended session to another campaign with SQL) shows after that, on
    the transcript page and over the session's search hits alike."""
    from glyphoxa_htmx.services import transcripts

    add_line(database_url, seeded.tenant, seeded.sid, "The otter dives", seeded.campaign)
    other = make_campaign(app, seeded.tenant, name="The Other Shore")
    url, search = f"/sessions/{seeded.sid}/transcript", "/sessions/search?q=otter"
    for _ in range(2):  # (the second pass keeps what the first, resolving the sign-in, may not)
        assert "The Other Shore" not in soup(seeded.dm.get(url)).select_one("h1").text
        assert "The Other Shore" not in soup(seeded.dm.get(search)).select_one(".search-group h2").text
    sql(database_url, "UPDATE public.sessions SET campaign_id = %s WHERE id = %s", (other, seeded.sid))
    monkeypatch.setattr(transcripts, "KEPT_ROW_SECONDS", 0.0)
    assert "The Other Shore" in soup(seeded.dm.get(url)).select_one("h1").text
    assert "The Other Shore" in soup(seeded.dm.get(search)).select_one(".search-group h2").text
