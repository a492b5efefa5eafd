"""The live view in Chromium: a line that arrives late with an earlier timestamp appears once, in
its place in time (live.js places streamed lines by (timestamp, id))."""

from __future__ import annotations

import uuid

from playwright.sync_api import expect

from tests.support.ws_server import sql
from tests.test_transcript_order import insert, make_session


def test_late_line_is_placed_in_time_and_shown_once(signed_in_page, live_server, page, database_url):
    name = "Late DM " + uuid.uuid4().hex[:6]
    signed_in_page(name)
    tenant = sql(database_url, "SELECT tenant_id FROM web.users WHERE name = %s", (name,))[0][0]
    sid = make_session(database_url, tenant, "c1", state="active")
    for seconds, line_id in ((0, 40), (10, 7), (20, 900), (30, 12)):
        insert(database_url, tenant, sid, "c1", seconds, f"early {seconds}", line_id=line_id)
    sql(database_url, f"SELECT setval(pg_get_serial_sequence('\"tenant_{tenant}\".session_entries', 'id'), 1000)")
    try:
        page.goto(f"{live_server}/sessions/{sid}/live")
        expect(page.locator("#live-conn")).to_contain_text("Live")
        on_time = insert(database_url, tenant, sid, "c1", 40, "on time")
        late = insert(database_url, tenant, sid, "c1", 15, "late, from fifteen seconds in")
        expect(page.locator(f"#line-{late}")).to_have_count(1)
        expect(page.locator(f"#line-{on_time}")).to_have_count(1)
        ids = page.eval_on_selector_all("#transcript > li[data-line-id]", "els => els.map(e => +e.dataset.lineId)")
        assert ids == [40, 7, late, 900, 12, on_time]
        final = insert(database_url, tenant, sid, "c1", 50, "final")
        expect(page.locator(f"#line-{final}")).to_have_count(1)
        ids = page.eval_on_selector_all("#transcript > li[data-line-id]", "els => els.map(e => +e.dataset.lineId)")
        assert ids == [40, 7, late, 900, 12, on_time, final]
    finally:
        sql(database_url, "UPDATE public.sessions SET state = 'ended', ended_at = now() WHERE id = %s", (sid,))
