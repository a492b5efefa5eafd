"""Transcripts in the gateway's order, (timestamp, id), over rows shaped by someone else: ids we
didn't mint (explicit, sparse, not in time order), lines inserted out of time order, clock ties.
The viewer's keyset pages, permalinks (context), search and its pages, the .txt/.md downloads,
and the live view: a line that arrives late with an earlier timestamp reaches an open WebSocket
and a polling viewer exactly once, and the page shows it in its place in time."""

from __future__ import annotations

import random
import re
import uuid
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import pytest

from tests.conftest import soup
from tests.support.ws_server import Reader, sql, wait_for
from tests.test_campaigns import count_queries

START = datetime(2026, 3, 14, 19, 0, tzinfo=UTC)
SPEAKERS = [
    ("111111111111111111", "Mara", ""),
    ("222222222222222222", "Grimble Ashfoot", "npc-grimble"),
    ("333333333333333333", "Tobin", ""),
]

# The worker's table as the gateway's worker creates it (contract §1.5), by this test's own DDL.
WORKER_DDL = """
CREATE SCHEMA IF NOT EXISTS "{s}";
CREATE TABLE IF NOT EXISTS "{s}".session_entries (
    id BIGSERIAL PRIMARY KEY, campaign_id TEXT NOT NULL DEFAULT 'migrated', session_id TEXT NOT NULL,
    speaker_id TEXT NOT NULL DEFAULT '', speaker_name TEXT NOT NULL DEFAULT '', text TEXT NOT NULL,
    raw_text TEXT NOT NULL DEFAULT '', npc_id TEXT NOT NULL DEFAULT '',
    timestamp TIMESTAMPTZ NOT NULL DEFAULT now(), duration_ns BIGINT NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS idx_entries_session_ts ON "{s}".session_entries (session_id, timestamp);
"""


def make_session(database_url, tenant, campaign, state="ended") -> str:
    sid = str(uuid.uuid4())
    sql(
        database_url,
        "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, channel_id, license_tier, "
        "state, started_at, ended_at) VALUES (%s, %s, %s, '1', '2', 'shared', %s, %s, "
        "CASE WHEN %s = 'ended' THEN %s::timestamptz + interval '4 hours' END)",
        (sid, tenant, campaign, state, START, state, START),
    )
    for stmt in WORKER_DDL.format(s=f"tenant_{tenant}").split(";"):
        if stmt.strip():
            sql(database_url, stmt)
    return sid


def insert(
    database_url, tenant, sid, campaign, seconds: float, text: str, *, line_id: int | None = None, speaker: int = 0
) -> int:
    """One line, as the worker or other tooling writes it; ``line_id`` None lets BIGSERIAL pick."""
    sp_id, sp_name, npc = SPEAKERS[speaker]
    cols = "campaign_id, session_id, speaker_id, speaker_name, npc_id, text, raw_text, timestamp"
    vals = [campaign, sid, sp_id, sp_name, npc, text, text, START + timedelta(seconds=seconds)]
    if line_id is not None:
        cols, vals = "id, " + cols, [line_id, *vals]
    marks = ", ".join(["%s"] * len(vals))
    return sql(
        database_url,
        f'INSERT INTO "tenant_{tenant}".session_entries ({cols}) VALUES ({marks}) RETURNING id',
        tuple(vals),
    )[0][0]


def in_time_order(database_url, tenant, sid) -> list[int]:
    return [
        r[0]
        for r in sql(
            database_url,
            f'SELECT id FROM "tenant_{tenant}".session_entries WHERE session_id = %s ORDER BY timestamp, id',
            (sid,),
        )
    ]


def ids_of(resp) -> list[int]:
    return [int(li["data-line-id"]) for li in soup(resp).select("li[data-line-id]")]


@pytest.fixture
def shuffled(as_role, database_url):
    """A session of 230 lines inserted in random order with explicit, sparse ids that don't follow
    time, ten pairs of lines sharing a timestamp, every 3rd line mentioning "lantern"."""
    dm = as_role("dm")
    tenant, campaign = dm.user.tenant_id, "c1"
    sid = make_session(database_url, tenant, campaign)
    rng = random.Random(1402)
    seconds = [i * 10.0 for i in range(220)] + [i * 10.0 for i in range(0, 200, 20)]  # ties
    ids = rng.sample(range(1000, 90000), len(seconds))
    order = list(range(len(seconds)))
    rng.shuffle(order)
    for n in order:
        text = f"line {n} about the lantern" if n % 3 == 0 else f"line {n} of the evening"
        if seconds[n] < 400:  # a word only the oldest lines have (a name from an earlier arc)
            text += " near the relic"
        insert(database_url, tenant, sid, campaign, seconds[n], text, line_id=ids[n], speaker=n % 3)
    return SimpleNamespace(
        dm=dm, tenant=tenant, sid=sid, campaign=campaign, expected=in_time_order(database_url, tenant, sid)
    )


def column_in_time_order(database_url, t, column) -> list[tuple[int, str]]:
    return sql(
        database_url,
        f'SELECT id, {column} FROM "tenant_{t.tenant}".session_entries WHERE session_id = %s ORDER BY timestamp, id',
        (t.sid,),
    )


def test_keyset_pages_follow_time_both_ways(app, shuffled, database_url):
    b, sid, expected = shuffled.dm, shuffled.sid, shuffled.expected
    assert expected != sorted(expected)  # the ids really are out of time order
    seen, url = [], f"/sessions/{sid}/transcript"
    while url:
        resp = b.get(url)
        seen += ids_of(resp)
        later = soup(resp).find("a", string="Later lines")
        url = later["href"] if later else None
    assert seen == expected  # every line once, in time order, ties by id
    # Backwards from the last page.
    back, url = [], f"/sessions/{sid}/transcript?before={2**62}"
    while url:
        resp = b.get(url)
        back = ids_of(resp) + back
        earlier = soup(resp).find("a", string="Earlier lines")
        url = earlier["href"] if earlier else None
    assert back == expected
    # Filters keep the order.
    npc = [i for i, npc_id in column_in_time_order(database_url, shuffled, "npc_id") if npc_id]
    assert ids_of(b.get(f"/sessions/{sid}/transcript?kind=npc")) == npc[:100]


def test_permalink_context_is_the_lines_before_in_time(app, shuffled):
    expected = shuffled.expected
    for at in (0, 3, 120, len(expected) - 1):
        target = expected[at]
        resp = shuffled.dm.get(f"/sessions/{shuffled.sid}/transcript?around={target}")
        start = max(0, at - 5)
        assert ids_of(resp) == expected[start : start + 100]
        assert soup(resp).select_one("li.is-target")["data-line-id"] == str(target)


def test_page_queries_stay_constant_with_a_cursor(app, shuffled):
    b, sid, expected = shuffled.dm, shuffled.sid, shuffled.expected
    for _ in range(2):  # warm: the sign-in is then resolved from the cache alike, the settled session's row kept
        b.get(f"/sessions/{sid}/transcript", htmx=True)
    counts = []
    for query in ("", f"?after={expected[99]}", f"?before={expected[150]}", f"?around={expected[77]}"):
        url = f"/sessions/{sid}/transcript{query}"
        with count_queries(app) as queries:
            assert b.get(url, htmx=True).status_code == 200, url
        counts.append(len(queries))
    assert len(set(counts)) == 1, counts


def test_downloads_are_in_time_order(app, shuffled, database_url):
    texts = [text for _, text in column_in_time_order(database_url, shuffled, "text")]
    txt = shuffled.dm.get(f"/sessions/{shuffled.sid}/transcript.txt").get_data(as_text=True)
    assert [m.group(1) for m in re.finditer(r"\] [^:]+: (.+)$", txt, re.M)] == texts
    assert re.findall(r"^\[(\d:\d\d:\d\d)\]", txt, re.M) == sorted(re.findall(r"^\[(\d:\d\d:\d\d)\]", txt, re.M))
    md = shuffled.dm.get(f"/sessions/{shuffled.sid}/transcript.md").get_data(as_text=True)
    assert [m.group(1).replace("\\", "") for m in re.finditer(r"^\*\*\d:\d\d:\d\d .+?:\*\* (.+)$", md, re.M)] == texts


def test_search_is_newest_first_by_time_across_pages(app, shuffled, database_url):
    from glyphoxa_htmx.services.transcripts import SEARCH_RESULTS

    lantern = [i for i, text in column_in_time_order(database_url, shuffled, "text") if "lantern" in text]
    assert len(lantern) > 2 * SEARCH_RESULTS  # more than two pages of hits
    seen, url = [], "/sessions/search?q=lantern"
    while url:
        doc = soup(shuffled.dm.get(url))
        seen += [int(a["href"].split("around=")[1].split("#")[0]) for a in doc.select("a[href*='around=']")]
        older = doc.find("a", string="Older matches")
        url = older["href"] if older else None
    assert seen == lantern[::-1]


def test_search_finds_every_match_newest_first_however_the_words_spread(app, shuffled, database_url):
    """Search reads all matches and takes the newest (services/transcripts.py, _search_sql): every
    matching line once, newest first by (timestamp, id), page after page, for words dense among the
    latest lines, spread out, or only in the oldest ones, with and without the campaign filter."""
    from glyphoxa_htmx.services.transcripts import SEARCH_RESULTS

    lines = column_in_time_order(database_url, shuffled, "text")
    for query, campaign, word in (
        ("lantern", "", "lantern"),
        ("evening", "", "evening"),
        ("relic", "", "relic"),
        ("lantern", shuffled.campaign, "lantern"),
        ("lantern", "elsewhere", None),
    ):
        expected = [i for i, text in lines if word and word in text][::-1]
        seen, url, pages = [], f"/sessions/search?q={query}&campaign={campaign}", 0
        while url:
            doc = soup(shuffled.dm.get(url))
            seen += [int(a["href"].split("around=")[1].split("#")[0]) for a in doc.select("a[href*='around=']")]
            older = doc.find("a", string="Older matches")
            url, pages = (older["href"] if older else None), pages + 1
        assert seen == expected, (query, campaign)
        assert pages == max(1, -(-len(expected) // SEARCH_RESULTS))


# ---- live: a late line reaches a viewer exactly once -------------------------------------------------------


@pytest.fixture
def live_session(app, as_role, database_url, monkeypatch):
    from glyphoxa_htmx.services import live

    monkeypatch.setattr(live, "POLL_IDLE_TIMEOUT", 0.5)  # a polling viewer's watch retires soon after
    viewer = as_role("viewer")
    tenant, campaign = viewer.user.tenant_id, "c1"
    sid = make_session(database_url, tenant, campaign, state="active")
    # Earlier tooling left explicit ids; later lines get BIGSERIAL ids above them.
    first = [
        insert(database_url, tenant, sid, campaign, s, f"early {s}", line_id=lid)
        for s, lid in ((0, 40), (10, 7), (20, 900), (30, 12))
    ]
    sql(database_url, f"SELECT setval(pg_get_serial_sequence('\"tenant_{tenant}\".session_entries', 'id'), 1000)")
    yield SimpleNamespace(viewer=viewer, tenant=tenant, campaign=campaign, sid=sid, first=first)
    sql(database_url, "UPDATE public.sessions SET state = 'ended', ended_at = now() WHERE id = %s", (sid,))
    with app.app_context():
        hub = live.hub()
    wait_for(lambda: sid not in hub.stats(), what="the session's watch to retire")  # no watch outlives the test


def test_live_page_is_in_time_order_and_resumes_from_the_highest_id(app, live_session):
    page = soup(live_session.viewer.get(f"/sessions/{live_session.sid}/live"))
    shown = [int(li["data-line-id"]) for li in page.select("#transcript > li[data-line-id]")]
    assert shown == [40, 7, 900, 12]  # by time, whatever the ids
    assert page.select_one("#live-socket")["ws-connect"].endswith("?after=900")  # not the last line shown
    assert page.select_one("#live")["data-after"] == "900"
    keys = [int(li["data-at"]) for li in page.select("#transcript > li[data-line-id]")]
    assert keys == sorted(keys) and keys[1] - keys[0] == 10_000_000  # microseconds, exact


def test_late_line_reaches_an_open_socket_once(app, server, live_session, database_url):
    t = live_session
    ws = server.connect(f"/sessions/{t.sid}/ws?after=900", t.viewer.token)
    reader = Reader(ws)
    on_time = insert(database_url, t.tenant, t.sid, t.campaign, 40, "on time")
    reader.read_until(lambda r: on_time in r.line_ids(), what="the on-time line")
    late = insert(database_url, t.tenant, t.sid, t.campaign, 15, "late, from fifteen seconds in")
    after = insert(database_url, t.tenant, t.sid, t.campaign, 50, "after the late one")
    reader.read_until(lambda r: after in r.line_ids(), what="the lines after the late one")
    ws.close()
    got = reader.line_ids()
    assert got.count(late) == 1 and got.count(on_time) == 1 and not set(got) & set(t.first)
    frame = next(f for f in reader.frames if f'data-line-id="{late}"' in f)
    assert re.search(r'data-at="(\d+)"', frame)  # the script places it by time
    # Reconnecting from the highest id the page has: nothing again.
    ws = server.connect(f"/sessions/{t.sid}/ws?after={max(got)}", t.viewer.token)
    reader2 = Reader(ws)
    final = insert(database_url, t.tenant, t.sid, t.campaign, 60, "final")
    reader2.read_until(lambda r: final in r.line_ids(), what="the next line after reconnecting")
    ws.close()
    assert reader2.line_ids() == [final]
    # A fresh page shows the late line in its place in time.
    shown = [
        int(li["data-line-id"])
        for li in soup(t.viewer.get(f"/sessions/{t.sid}/live")).select("#transcript > li[data-line-id]")
    ]
    assert shown == [40, 7, late, 900, 12, on_time, after, final]


def test_late_line_reaches_a_polling_viewer_once(app, live_session, database_url):
    t = live_session
    b = t.viewer
    on_time = insert(database_url, t.tenant, t.sid, t.campaign, 40, "on time")
    late = insert(database_url, t.tenant, t.sid, t.campaign, 5, "late, from five seconds in")

    def poll(after):
        resp = b.get(f"/sessions/{t.sid}/lines?after={after}", htmx=True)
        assert resp.status_code == 200
        return ids_of(resp)

    got = wait_for(lambda: poll(900), what="the polled lines")
    if late not in got:
        got += wait_for(lambda: poll(max(got)), what="the late line")
    assert got.count(late) == 1 and got.count(on_time) == 1
    assert got == [late, on_time]  # the delivery itself is in time order
    cursor = max(got)  # what live.js sends: the highest id on the page
    later = insert(database_url, t.tenant, t.sid, t.campaign, 70, "later")
    again = wait_for(lambda: poll(cursor), what="the next line")
    assert again == [later]
