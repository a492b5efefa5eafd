"""The operators' tenant drill-down (/admin/tenants/<id>): usage vs quota, members (search, keyset
pages), campaigns, session history with errors (keyset pages), recent audit entries, the gateway's
own view (GetTenant and GetBotStatus over real gRPC to the simulator) and the suspend action."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg

from tests.conftest import soup


def _setup(app, database_url, make_tenant, make_user):
    from glyphoxa_htmx.core.deps import gateway

    tid = make_tenant(name="Drill Table")
    with app.app_context():
        gateway().create_tenant(tid, license_tier="shared")
        gateway().update_tenant(tid, guild_ids=["111122223333444455"])
    for i in range(5):
        make_user(role="dm" if i else "tenant_owner", tenant_id=tid, name=f"Member {i}")
    start = datetime.now(UTC) - timedelta(days=10)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO web.campaigns (tenant_id, id, name) VALUES (%s, 'drill-c', 'The Drill Campaign')", (tid,)
        )
        for i in range(7):
            conn.execute(
                "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, channel_id, license_tier, state,"
                " error, started_at, ended_at) VALUES (%s, %s, 'drill-c', '111122223333444455', '1', 'shared',"
                " 'ended', %s, %s, %s)",
                (
                    f"drill-{tid}-{i}",
                    tid,
                    "worker crashed: OOM" if i in (2, 5) else None,
                    start + timedelta(hours=i),
                    start + timedelta(hours=i, minutes=30),
                ),
            )
        conn.execute("UPDATE public.tenants SET monthly_session_hours = 40 WHERE id = %s", (tid,))
        conn.execute(
            "INSERT INTO public.usage_records (tenant_id, period, session_hours) "
            "VALUES (%s, date_trunc('month', now())::date, 12.5)",
            (tid,),
        )
        conn.execute(
            "INSERT INTO web.audit_log (tenant_id, action, resource_type, resource_id) "
            "VALUES (%s, 'campaign.create', 'campaign', 'drill-c')",
            (tid,),
        )
    return tid


def test_drilldown_shows_the_table(app, database_url, as_role, make_tenant, make_user, monkeypatch):
    from glyphoxa_htmx.services import platform

    tid = _setup(app, database_url, make_tenant, make_user)
    admin = as_role("super_admin")
    listing = soup(admin.get(f"/admin/tenants?q={tid}"))
    assert listing.select_one(f"a[href='/admin/tenants/{tid}']")  # the list links to the drill-down

    doc = soup(admin.get(f"/admin/tenants/{tid}"))
    assert doc.select_one("#usage-hours").get_text(" ", strip=True).startswith("12.50 of 40.00")
    gw = doc.select_one("#gateway-view").get_text(" ", strip=True)
    assert "111122223333444455" in gw and "shared" in gw  # from GetTenant
    assert len(doc.select("#member-list tbody tr")) == 5
    assert "The Drill Campaign" in doc.select_one("#campaign-list").get_text()
    rows = doc.select("#session-history tbody tr")
    assert len(rows) == 7 and rows[0]["id"] == f"session-drill-{tid}-6"  # newest first
    assert sum("worker crashed: OOM" in r.get_text() for r in rows) == 2
    assert "campaign.create" in doc.select_one("#recent-audit").get_text()
    assert doc.select_one(f"form[action='/admin/tenants/{tid}/status']")  # suspend is linked

    # Only the sessions with errors.
    rows = soup(admin.get(f"/admin/tenants/{tid}?errors=1")).select("#session-history tbody tr")
    assert [r["id"] for r in rows] == [f"session-drill-{tid}-5", f"session-drill-{tid}-2"]
    # Member search, as the htmx block.
    found = admin.get(f"/admin/tenants/{tid}?q=Member 3", htmx=True, headers={"HX-Target": "members"})
    body = found.get_data(as_text=True)
    assert "<html" not in body and "Member 3" in body and "Member 1" not in body

    # Keyset pages on both lists: all rows, once each.
    monkeypatch.setattr(platform, "DETAIL_PAGE", 3)
    for list_id, link_text in (("member-list", "More members"), ("session-history", "Older sessions")):
        seen, url = [], f"/admin/tenants/{tid}"
        while url:
            d = soup(admin.get(url))
            seen += [r.get_text("|", strip=True) for r in d.select(f"#{list_id} tbody tr")]
            nxt = next((a for a in d.select(".pager a") if a.get_text() == link_text), None)
            url = nxt["href"] if nxt else None
        assert len(seen) == (5 if list_id == "member-list" else 7) and len(set(seen)) == len(seen), list_id


def test_drilldown_unknown_tenant_and_non_admins(app, as_role, make_tenant):
    tid = make_tenant()
    assert as_role("super_admin").get("/admin/tenants/no_such_table_" + uuid.uuid4().hex[:6]).status_code == 404
    for role in ("tenant_owner", "dm", "viewer"):
        assert as_role(role).get(f"/admin/tenants/{tid}").status_code == 403
    # Its own owner gets no operator view of their own table either.
    assert as_role("tenant_owner", tenant_id=tid).get(f"/admin/tenants/{tid}").status_code == 403
