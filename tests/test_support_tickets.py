"""Support tickets: the local store (a member files one, an operator answers, the member sees the
answer and status; another table gets 404) and the Freshdesk adapter against a local Freshdesk
over real HTTP (created there first, status and public replies synced, private notes never
shown, nothing stored when Freshdesk is down)."""

from __future__ import annotations

import psycopg
import pytest

from tests.conftest import GATEWAY_SECRET, Browser, make_settings, soup
from tests.support.fake_freshdesk import FakeFreshdesk


def _count(database_url, tenant_id) -> int:
    with psycopg.connect(database_url) as conn:
        return conn.execute("SELECT count(*) FROM web.support_tickets WHERE tenant_id = %s", (tenant_id,)).fetchone()[0]


def test_local_ticket_answered_by_an_operator(app, database_url, as_role):
    dm = as_role("dm")
    bad = dm.post("/support", {"subject": "", "body": "x", "category": "nope"}, htmx=True)
    assert bad.status_code == 422 and "Give the ticket a subject" in bad.get_data(as_text=True)
    assert "one of your table" in dm.post(
        "/support", {"subject": "s", "body": "b", "category": "bug", "session_id": "someone-elses"}, htmx=True
    ).get_data(as_text=True)
    assert _count(database_url, dm.user.tenant_id) == 0  # nothing half written
    resp = dm.post(
        "/support", {"subject": "The bard won't speak", "body": "Greta is silent since Tuesday.", "category": "session"}
    )
    assert resp.status_code == 303
    url = resp.headers["Location"]
    ticket_id = url.rsplit("/", 1)[1]
    assert "The bard won't speak" in soup(dm.get("/support")).select_one("#ticket-list").get_text()
    page = dm.get(url)  # the DM keeps this page open while the operator answers

    admin = as_role("super_admin")
    listing = soup(admin.get("/admin/support?status=open"))
    assert f"/admin/support/{ticket_id}" in str(listing.select_one("#ticket-list"))
    assert (
        admin.post(
            f"/admin/support/{ticket_id}/answer", {"body": "Fixed: restart the session.", "status": "resolved"}
        ).status_code
        == 303
    )
    assert soup(page).select_one("#ticket-status").get_text() == "open"
    doc = soup(dm.get(url))
    assert doc.select_one("#ticket-status").get_text() == "resolved"
    assert "Fixed: restart the session." in doc.select_one("#ticket-thread .from-support").get_text()
    # The DM writes again: the ticket is open again.
    assert dm.post(f"{url}/reply", {"body": "Still silent."}).status_code == 303
    assert soup(dm.get(url)).select_one("#ticket-status").get_text() == "open"

    # Another table: 404 on every ticket route, and not in its list.
    stranger = as_role("tenant_owner")
    assert stranger.get(url).status_code == 404
    assert stranger.post(f"{url}/reply", {"body": "hi"}).status_code == 404
    assert "The bard won't speak" not in stranger.get("/support").get_data(as_text=True)
    # Operators' pages are for operators only.
    assert dm.get(f"/admin/support/{ticket_id}").status_code == 403
    assert dm.post(f"/admin/support/{ticket_id}/answer", {"body": "x", "status": "closed"}).status_code == 403


@pytest.fixture
def freshdesk():
    fake = FakeFreshdesk()
    yield fake
    fake.stop()


@pytest.fixture
def fd_app(app, database_url, simulator, freshdesk):
    from glyphoxa_htmx.app import create_app

    application = create_app(
        make_settings(
            database_url,
            gateway_grpc_addr=simulator.address,
            gateway_secret=GATEWAY_SECRET,
            freshdesk_domain="glyphoxa",
            freshdesk_api_key=freshdesk.api_key,
            freshdesk_api_base=freshdesk.base,
        )
    )
    application.config["TESTING"] = True
    return application


def test_freshdesk_ticket_created_there_and_synced(fd_app, database_url, make_user, freshdesk):
    user = make_user(role="tenant_owner")
    b = Browser(fd_app).login(user)
    freshdesk.down = True
    resp = b.post(
        "/support", {"subject": "Billing question", "body": "Was I charged twice?", "category": "billing"}, htmx=True
    )
    assert resp.status_code == 422 and "please try again in a few minutes" in resp.get_data(as_text=True)
    assert _count(database_url, user.tenant_id) == 0 and not freshdesk.tickets
    freshdesk.down = False
    url = b.post(
        "/support", {"subject": "Billing question", "body": "Was I charged twice?", "category": "billing"}
    ).headers["Location"]
    ((fd_id, remote),) = freshdesk.tickets.items()
    assert remote["subject"] == "Billing question" and "Was I charged twice?" in remote["description"]
    assert (
        remote["status"] == 2 and "category:billing" in remote["tags"] and f"tenant:{user.tenant_id}" in remote["tags"]
    )

    # The agent answers in Freshdesk (and leaves a private note), then marks it pending.
    freshdesk.agent_reply(fd_id, "Only once; the second was a hold.")
    freshdesk.agent_reply(fd_id, "internal: customer is nice", private=True)
    freshdesk.tickets[fd_id]["status"] = 3
    doc = soup(b.get(url))
    assert doc.select_one("#ticket-status").get_text() == "pending"
    thread = doc.select_one("#ticket-thread").get_text()
    assert "Only once; the second was a hold." in thread and "internal" not in thread
    soup(b.get(url))  # opened again: the reply isn't duplicated
    with psycopg.connect(database_url) as conn:
        assert (
            conn.execute(
                "SELECT count(*) FROM web.support_replies r JOIN web.support_tickets t ON t.id = r.ticket_id"
                " WHERE t.tenant_id = %s",
                (user.tenant_id,),
            ).fetchone()[0]
            == 1
        )
    # The customer's reply goes to Freshdesk as a reply on that ticket.
    assert b.post(f"{url}/reply", {"body": "Thanks!"}).status_code == 303
    assert freshdesk.conversations[fd_id][-1]["body"] == "Thanks!" and freshdesk.conversations[fd_id][-1]["incoming"]
    # Freshdesk down while the ticket is opened: the last copy, with a note, never a 500.
    freshdesk.down = True
    page = b.get(url)
    assert page.status_code == 200 and "Showing what we had last" in page.get_data(as_text=True)


def _walk(browser, url: str) -> list[str]:
    """Every ticket subject on a list and its "Older tickets" pages, in order."""
    subjects, seen_urls = [], set()
    while url:
        assert url not in seen_urls, "the pager went round in a circle"
        seen_urls.add(url)
        resp = browser.get(url)
        assert resp.status_code == 200
        doc = soup(resp)
        subjects += [a.get_text() for a in doc.select("#ticket-list tbody a")]
        pager = doc.select_one(".pager a")
        url = pager["href"] if pager else ""
    return subjects


def test_ticket_lists_page_newest_first_through_keyset(app, database_url, as_role):
    """Over a page boundary (25), with tickets opened in the same instant (the id breaks the tie),
    ids someone else minted, and another table's tickets that never show; a hand-edited cursor
    starts from the first page."""
    import uuid

    dm, stranger, admin = as_role("dm"), as_role("tenant_owner"), as_role("super_admin")
    tag = uuid.uuid4().hex[:8]
    ours = [
        (f"{tag}-{i:02}", f"id {tag} {c}")
        for i, c in enumerate(["a/b", "ü", "~x~", "a b", "%41", "z"] + list("0123456789abcdefghijklmnopqrstu"))
    ]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for i, (subject, tid) in enumerate(ours):
            at = "2026-11-01 10:00:00+00" if i < 12 else f"2026-11-02 10:{i:02}:00+00"  # 12 in one instant
            conn.execute(
                "INSERT INTO web.support_tickets (id, tenant_id, subject, body, created_at) VALUES (%s, %s, %s, 'b', %s)",
                (tid, dm.user.tenant_id, subject, at),
            )
        conn.execute(
            "INSERT INTO web.support_tickets (id, tenant_id, subject, body) VALUES (%s, %s, %s, 'b')",
            (f"other {tag}", stranger.user.tenant_id, f"{tag}-stranger"),
        )
        expected = [
            s
            for (s,) in conn.execute(
                "SELECT subject FROM web.support_tickets WHERE tenant_id = %s ORDER BY created_at DESC, id DESC",
                (dm.user.tenant_id,),
            )
        ]
    assert len(ours) > 25  # more than one page
    assert _walk(dm, "/support") == expected
    assert [s for s in _walk(stranger, "/support") if s.startswith(tag)] == [f"{tag}-stranger"]
    walked = [s for s in _walk(admin, "/admin/support") if s.startswith(tag)]
    assert sorted(walked) == sorted([s for s, _ in ours] + [f"{tag}-stranger"])
    assert [s for s in walked if s != f"{tag}-stranger"] == [s for s in expected if s.startswith(tag)]
    # The operator's filter: a real 200 (it was passed as render()'s HTTP status), kept by the pager.
    filtered = admin.get("/admin/support?status=open")
    assert filtered.status_code == 200
    assert soup(filtered).select_one('#s-status option[value="open"]').has_attr("selected")
    pager = soup(filtered).select_one(".pager a")
    assert pager is None or "status=open" in pager["href"]
    for garbage in ("2026-11-01T10:00:00+00:00~zzz", "not a cursor", "%%%", "W10"):
        first = soup(dm.get(f"/support?after={garbage}"))
        assert [a.get_text() for a in first.select("#ticket-list tbody a")] == expected[:25]
