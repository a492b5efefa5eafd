"""The tenant drill-down's actions and lists: change tier (billing disabled; refused with billing
on), sign everyone out (confirmation, the sign-in cache, audit), a gateway-only tenant's page
linking to adoption, and search plus keyset pages on every list (campaigns, sessions, audit
entries, members). Each action: super admins only, CSRF, with and without htmx."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from tests.conftest import Browser, soup


def _gateway_tenant(app, tid, **fields):
    from glyphoxa_htmx.core.deps import gateway

    with app.app_context():
        gateway().create_tenant(tid, license_tier="shared")
        if fields:
            gateway().update_tenant(tid, **fields)


def _gateway_row(database_url, tid):
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT license_tier, monthly_session_hours FROM public.tenants WHERE id = %s", (tid,)
        ).fetchone()


def _audit(database_url, tid, action):
    with psycopg.connect(database_url) as conn:
        return conn.execute(
            "SELECT user_id, details FROM web.audit_log WHERE tenant_id = %s AND action = %s ORDER BY id",
            (tid, action),
        ).fetchall()


# ---- change tier ---------------------------------------------------------------------------


def test_change_tier_with_billing_disabled(app, database_url, as_role, make_tenant):
    tid = make_tenant(name="Tier Table")
    _gateway_tenant(app, tid)
    admin = as_role("super_admin")
    form = soup(admin.get(f"/admin/tenants/{tid}")).select_one("#tier-form")
    assert form["action"] == f"/admin/tenants/{tid}/tier"
    assert form.select_one("option[selected]")["value"] == "shared"  # the gateway's current tier

    # Bad input: 422, the field says why, nothing written (htmx: just the tier block).
    bad = admin.post(
        f"/admin/tenants/{tid}/tier",
        {"license_tier": "dedicated", "hours": "-3"},
        htmx=True,
        headers={"HX-Target": "tier"},
    )
    assert bad.status_code == 422
    body = bad.get_data(as_text=True)
    assert "<html" not in body and 'id="tier-form"' in body
    assert "Hours per month" in soup(bad).select_one("#hours-error").get_text()
    bad = admin.post(f"/admin/tenants/{tid}/tier", {"license_tier": "platinum", "hours": "1"})
    assert bad.status_code == 422 and soup(bad).select_one("#license_tier-error")  # the whole page without JS
    assert soup(bad).select_one("#member-list") is not None
    assert _gateway_row(database_url, tid) == ("shared", 0)
    assert _audit(database_url, tid, "tenant.tier_change") == []

    # No JS: 303 back to the drill-down; the gateway holds the new tier and quota.
    ok = admin.post(f"/admin/tenants/{tid}/tier", {"license_tier": "dedicated", "hours": "12.5"})
    assert ok.status_code == 303 and ok.headers["Location"].endswith(f"/admin/tenants/{tid}")
    row = _gateway_row(database_url, tid)
    assert row[0] == "dedicated" and float(row[1]) == 12.5
    from glyphoxa_htmx.core.deps import gateway

    with app.app_context():
        assert gateway().get_tenant(tid).license_tier == "dedicated"  # GetTenant agrees
    ((user_id, details),) = _audit(database_url, tid, "tenant.tier_change")
    assert user_id == admin.user.id
    assert details["changes"]["license_tier"] == {"before": "shared", "after": "dedicated"}
    assert details["changes"]["monthly_session_hours"]["after"] == "12.5"
    page = soup(admin.get(f"/admin/tenants/{tid}"))
    assert "dedicated" in page.select_one("#gateway-view").get_text()
    assert "12.5 hours a month" in page.get_text()  # the flashed toast

    # htmx: HX-Redirect back (a real navigation), 0 hours = unlimited.
    ok = admin.post(f"/admin/tenants/{tid}/tier", {"license_tier": "shared", "hours": "0"}, htmx=True)
    assert ok.status_code == 204 and ok.headers["HX-Redirect"] == f"/admin/tenants/{tid}"
    assert _gateway_row(database_url, tid) == ("shared", 0)
    assert len(_audit(database_url, tid, "tenant.tier_change")) == 2


def test_change_tier_refused_when_billing_owns_it(app, database_url, as_role, make_tenant, monkeypatch):
    tid = make_tenant()
    _gateway_tenant(app, tid)
    admin = as_role("super_admin")
    monkeypatch.setattr(app.extensions["glyphoxa.settings"], "billing", "stripe")
    doc = soup(admin.get(f"/admin/tenants/{tid}"))
    assert doc.select_one("#tier-form") is None
    assert "follows its Stripe subscription" in doc.select_one("#tier-note").get_text()
    resp = admin.post(f"/admin/tenants/{tid}/tier", {"license_tier": "dedicated", "hours": "5"}, htmx=True)
    assert resp.status_code == 422 and "Stripe subscription" in resp.get_data(as_text=True)
    assert _gateway_row(database_url, tid) == ("shared", 0)
    assert _audit(database_url, tid, "tenant.tier_change") == []


def test_tier_change_of_a_table_the_gateway_lacks(app, database_url, as_role, make_tenant):
    tid = make_tenant()  # a web row, but the gateway never heard of it
    admin = as_role("super_admin")
    resp = admin.post(f"/admin/tenants/{tid}/tier", {"license_tier": "dedicated", "hours": "1"})
    assert resp.status_code == 422
    assert "doesn't know this table" in soup(resp).select_one("#tier-note").get_text()
    assert _audit(database_url, tid, "tenant.tier_change") == []


# ---- sign everyone out ---------------------------------------------------------------------


def test_revoke_all_sign_ins(app, database_url, as_role, make_tenant, make_user):
    tid = make_tenant(name="Revoked Table")
    members = [Browser(app).login(make_user("dm", tenant_id=tid)) for _ in range(2)]
    other = Browser(app).login(make_user("dm"))  # another table: untouched
    operator_user = make_user("super_admin", tenant_id=tid)  # an operator sitting at this very table
    admin = Browser(app).login(operator_user)
    for b in (*members, other):
        assert b.get("/campaigns").status_code == 200
        assert b.get("/campaigns").status_code == 200  # now served from the sign-in cache

    # Without JS: the confirmation page first, nothing ended yet.
    ask = admin.post(f"/admin/tenants/{tid}/revoke-sign-ins")
    assert ask.status_code == 200
    confirm = soup(ask)
    assert "Sign everyone at Revoked Table out?" in confirm.h1.get_text()
    assert confirm.select_one("input[name=confirmed]")["value"] == "1"
    assert members[0].get("/campaigns").status_code == 200

    done = admin.post(f"/admin/tenants/{tid}/revoke-sign-ins", {"confirmed": "1"})
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/admin/tenants/{tid}")
    for b in members:
        gone = b.get("/campaigns")
        assert gone.status_code in (302, 303) and "/auth/" in gone.headers["Location"], gone.status_code
    assert other.get("/campaigns").status_code == 200
    assert admin.get(f"/admin/tenants/{tid}").status_code == 200  # the operator's own sign-in stays
    ((user_id, details),) = _audit(database_url, tid, "tenant.revoke_sign_ins")
    assert user_id == operator_user.id and details["sessions"] == 2
    with psycopg.connect(database_url) as conn:
        reasons = conn.execute(
            "SELECT DISTINCT revoked_reason FROM web.login_sessions s JOIN web.users u ON u.id = s.user_id"
            " WHERE u.tenant_id = %s AND u.id <> %s",
            (tid, operator_user.id),
        ).fetchall()
    assert reasons == [("revoked_by_operator",)]

    # htmx (after hx-confirm): straight to it, HX-Redirect back.
    again = Browser(app).login(make_user("viewer", tenant_id=tid))
    resp = admin.post(f"/admin/tenants/{tid}/revoke-sign-ins", htmx=True)
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == f"/admin/tenants/{tid}"
    assert again.get("/campaigns").status_code in (302, 303)


# ---- who may: super admins only, CSRF, unknown tenants -----------------------------------


@pytest.mark.parametrize("role", ["tenant_owner", "dm", "viewer"])
def test_actions_are_for_super_admins_only(app, database_url, as_role, make_tenant, make_user, role):
    tid = make_tenant()
    _gateway_tenant(app, tid)
    member = Browser(app).login(make_user("dm", tenant_id=tid))
    for b in (as_role(role), as_role(role, tenant_id=tid)):  # another table's, and this table's own
        assert b.post(f"/admin/tenants/{tid}/tier", {"license_tier": "dedicated", "hours": "1"}).status_code == 403
        assert b.post(f"/admin/tenants/{tid}/revoke-sign-ins", {"confirmed": "1"}).status_code == 403
        assert b.post(f"/admin/tenants/{tid}/revoke-sign-ins", htmx=True).status_code == 403
    assert _gateway_row(database_url, tid) == ("shared", 0)
    assert member.get("/campaigns").status_code == 200


def test_actions_need_csrf_and_a_known_tenant(app, database_url, as_role, make_tenant):
    tid = make_tenant()
    _gateway_tenant(app, tid)
    admin = as_role("super_admin")
    assert admin.post(f"/admin/tenants/{tid}/tier", {"license_tier": "dedicated"}, csrf=False).status_code == 400
    assert admin.post(f"/admin/tenants/{tid}/revoke-sign-ins", {"confirmed": "1"}, csrf=False).status_code == 400
    assert _gateway_row(database_url, tid) == ("shared", 0)
    assert admin.post("/admin/tenants/no_such_table_x/tier", {"license_tier": "dedicated"}).status_code == 404
    assert admin.post("/admin/tenants/no_such_table_x/revoke-sign-ins", {"confirmed": "1"}).status_code == 404


# ---- adopt: a tenant the gateway has and this site doesn't -------------------------------


def test_gateway_only_tenant_links_to_adoption(app, as_role):
    import uuid

    tid = "adoptme_" + uuid.uuid4().hex[:8]
    _gateway_tenant(app, tid, guild_ids=["222233334444555566"])
    admin = as_role("super_admin")
    page = admin.get(f"/admin/tenants/{tid}")
    assert page.status_code == 200
    doc = soup(page)
    assert doc.select_one("#adopt-link")["href"] == f"/admin/tenants/{tid}/adopt"
    assert "222233334444555566" in doc.select_one("#gateway-view").get_text()
    assert admin.get(f"/admin/tenants/{tid}/adopt").status_code == 200  # the existing adoption form
    for role in ("tenant_owner", "dm"):
        assert as_role(role).get(f"/admin/tenants/{tid}").status_code == 403
    # Adopted: the same URL is now the full drill-down.
    done = admin.post(f"/admin/tenants/{tid}/adopt", {"name": "Adopted", "link": "1", "expires_days": "3"})
    assert done.status_code == 200
    assert soup(done).select_one(f"a[href='/admin/tenants/{tid}']")
    assert soup(admin.get(f"/admin/tenants/{tid}")).select_one("#member-list") is not None


# ---- every list: search and keyset pages ---------------------------------------------------


def _walk(admin, url, list_id, link_text):
    seen = []
    while url:
        d = soup(admin.get(url))
        seen += [r.get_text("|", strip=True) for r in d.select(f"#{list_id} tbody tr") if not r.select(".empty")]
        nxt = next((a for a in d.select(f"#{list_id} ~ .pager a, .pager a") if a.get_text() == link_text), None)
        url = nxt["href"] if nxt else None
    return seen


def test_every_list_searches_and_pages(app, database_url, as_role, make_tenant, make_user, monkeypatch):
    from glyphoxa_htmx.services import platform

    tid = make_tenant(name="Lists Table")
    start = datetime.now(UTC) - timedelta(days=3)
    with psycopg.connect(database_url, autocommit=True) as conn:
        for i in range(7):
            conn.execute(
                "INSERT INTO web.campaigns (tenant_id, id, name) VALUES (%s, %s, %s)",
                (tid, f"camp-{i}", f"{'Dragon' if i % 2 else 'Goblin'} Saga {i}"),
            )
            conn.execute(
                "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, channel_id, license_tier, state,"
                " error, worker_pod, started_at) VALUES (%s, %s, %s, '1', '1', 'shared', 'ended', %s, %s, %s)",
                (
                    f"s-{tid}-{i}",
                    tid,
                    f"camp-{i}",
                    "tts timeout" if i in (1, 4, 6) else None,
                    f"pod-{i}",
                    start + timedelta(minutes=i),
                ),
            )
            conn.execute(
                "INSERT INTO web.audit_log (tenant_id, action, resource_type, resource_id) VALUES (%s, %s, 'npc', %s)",
                (tid, "npc.update" if i % 2 else "npc.create", f"npc-{i}"),
            )
    for i in range(5):
        make_user("dm", tenant_id=tid, name=f"Member {i}")
    admin = as_role("super_admin")
    monkeypatch.setattr(platform, "DETAIL_PAGE", 3)
    base = f"/admin/tenants/{tid}"
    for list_id, link, total in (
        ("member-list", "More members", 5),
        ("campaign-list", "More campaigns", 7),
        ("session-history", "Older sessions", 7),
        ("recent-audit", "Older entries", 7),
    ):
        seen = _walk(admin, base, list_id, link)
        assert len(seen) == total and len(set(seen)) == total, (list_id, seen)

    # Campaigns by name (alphabetical), sessions newest first, audit newest first.
    names = [
        r.select_one("td[data-label=Name]").get_text() for r in soup(admin.get(base)).select("#campaign-list tbody tr")
    ]
    assert names == ["Dragon Saga 1", "Dragon Saga 3", "Dragon Saga 5"]

    # Searches, as htmx blocks: only that list is rendered.
    found = admin.get(f"{base}?campaigns_q=goblin", htmx=True, headers={"HX-Target": "campaigns"})
    body = found.get_data(as_text=True)
    assert "<html" not in body and 'id="member-list"' not in body
    assert [r.select_one("td[data-label=Id]").get_text() for r in soup(found).select("tbody tr")] == [
        "camp-0",
        "camp-2",
        "camp-4",
    ]
    assert "More campaigns" in body  # 4 goblins, 3 a page
    rows = soup(admin.get(f"{base}?sessions_q=tts+timeout", htmx=True, headers={"HX-Target": "sessions"}))
    assert [r["id"] for r in rows.select("tbody tr")] == [
        f"session-s-{tid}-6",
        f"session-s-{tid}-4",
        f"session-s-{tid}-1",
    ]
    rows = soup(admin.get(f"{base}?sessions_q=pod-2", htmx=True, headers={"HX-Target": "sessions"}))
    assert [r["id"] for r in rows.select("tbody tr")] == [f"session-s-{tid}-2"]
    rows = soup(admin.get(f"{base}?audit_q=npc.create", htmx=True, headers={"HX-Target": "audit"}))
    assert {r.select_one("td[data-label=Resource]").get_text() for r in rows.select("tbody tr")} == {
        "npc npc-6",
        "npc npc-4",
        "npc npc-2",
    }
    empty = soup(admin.get(f"{base}?audit_q=nothing-like-this", htmx=True, headers={"HX-Target": "audit"}))
    assert "No entries match." in empty.get_text()

    # Without JS the searches and pages of the lists keep each other: paging sessions keeps the
    # campaign search.
    doc = soup(admin.get(f"{base}?campaigns_q=dragon&sessions_q=pod"))
    nxt = next(a for a in doc.select(".pager a") if a.get_text() == "Older sessions")
    assert "campaigns_q=dragon" in nxt["href"]
    doc = soup(admin.get(nxt["href"]))
    assert all("Dragon" in n.get_text() for n in doc.select("#campaign-list td[data-label=Name]"))
    # A cursor that doesn't parse starts from the first page instead of failing.
    assert admin.get(f"{base}?sessions_after=garbage~~&audit_after=%%%").status_code == 200
