"""The plan's permission matrix, enforced by one module, and tenant isolation on every route."""

from __future__ import annotations

import pytest

from glyphoxa_htmx.core.authz import MATRIX, Actor, Perm, Role, can
from tests.conftest import soup

# The plan's §6 matrix, written out independently of the implementation.
PLAN = {
    "manage_all_tenants": {"super_admin"},
    "platform_observability": {"super_admin"},
    "manage_tenant": {"super_admin", "tenant_owner"},
    "manage_billing": {"super_admin", "tenant_owner"},
    "manage_users": {"super_admin", "tenant_owner"},
    "manage_campaigns": {"super_admin", "tenant_owner", "dm"},
    "manage_npcs": {"super_admin", "tenant_owner", "dm"},
    "control_sessions": {"super_admin", "tenant_owner", "dm"},
    "upload_voice": {"super_admin", "tenant_owner", "dm"},
    "view_transcripts": {"super_admin", "tenant_owner", "dm", "viewer"},
    "view_usage": {"super_admin", "tenant_owner", "dm", "viewer"},
    "view_sessions": {"super_admin", "tenant_owner", "dm", "viewer"},
}


@pytest.mark.parametrize("role", [r.value for r in Role])
@pytest.mark.parametrize("perm", sorted(PLAN))
def test_matrix_cell(role, perm):
    actor = Actor(user_id="u", tenant_id="t", role=Role(role))
    assert can(actor, Perm(perm)) is (role in PLAN[perm])


def test_matrix_covers_every_permission():
    assert {p.value for p in Perm} == set(PLAN)
    assert set(MATRIX) == set(Role)


def test_anonymous_can_nothing():
    assert not any(can(None, p) for p in Perm)


# ---- routes -------------------------------------------------------------------------------


@pytest.mark.parametrize("role, status", [("tenant_owner", 200), ("dm", 403), ("viewer", 403)])
def test_team_role_change_needs_manage_users(app, as_role, make_user, role, status):
    b = as_role(role)
    target = make_user(role="viewer", tenant_id=b.user.tenant_id)
    resp = b.post(f"/team/{target.id}/role", {"role": "dm"}, htmx=True)
    assert resp.status_code == status
    if status == 403:
        assert "toast" in resp.headers["HX-Trigger"]  # htmx gets a toast, not a page


def test_role_change_is_audited_with_before_after(app, as_role, make_user):
    from sqlalchemy import select

    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import AuditLog

    b = as_role("tenant_owner")
    target = make_user(role="viewer", tenant_id=b.user.tenant_id)
    assert b.post(f"/team/{target.id}/role", {"role": "dm"}).status_code == 303
    with app.app_context():
        row = db.session.execute(select(AuditLog).where(AuditLog.action == "user.role_change")).scalar_one()
        assert row.details["changes"] == {"role": {"before": "viewer", "after": "dm"}}
        assert row.user_id == b.user.id and row.tenant_id == b.user.tenant_id and str(row.ip_address) == "127.0.0.1"


def test_last_owner_cannot_demote_themselves(app, as_role):
    b = as_role("tenant_owner")
    resp = b.post(f"/team/{b.user.id}/role", {"role": "viewer"}, htmx=True)
    assert resp.status_code == 422
    assert "at least one owner" in soup(resp).select_one(".error").text


def test_role_change_rejects_unknown_role(app, as_role, make_user):
    b = as_role("tenant_owner")
    target = make_user(role="viewer", tenant_id=b.user.tenant_id)
    resp = b.post(f"/team/{target.id}/role", {"role": "super_admin"}, htmx=True)
    assert resp.status_code == 422


def test_other_tenants_user_is_404_not_403(app, as_role, make_user):
    b = as_role("tenant_owner")
    stranger = make_user(role="viewer")  # another tenant
    assert b.post(f"/team/{stranger.id}/role", {"role": "dm"}).status_code == 404


def test_team_page_shows_only_own_tenant(app, as_role, make_user):
    b = as_role("tenant_owner")
    make_user(role="dm", tenant_id=b.user.tenant_id, name="Colleague")
    make_user(role="dm", name="Stranger")
    text = b.get("/team").get_data(as_text=True)
    assert "Colleague" in text and "Stranger" not in text


@pytest.mark.parametrize("role", ["tenant_owner", "dm", "viewer"])
@pytest.mark.parametrize("url", ["/admin/", "/admin/tenants", "/admin/users", "/admin/guilds"])
def test_admin_pages_need_super_admin(app, as_role, role, url):
    assert as_role(role).get(url).status_code == 403


def test_admin_sees_every_tenant_and_can_suspend(app, as_role, make_user):
    admin = as_role("super_admin")
    victim = make_user(role="tenant_owner", name="Victim")
    from tests.conftest import Browser

    victim_browser = Browser(app).login(victim)
    assert victim_browser.get("/dashboard").status_code == 200
    page = admin.get("/admin/tenants")
    assert victim.tenant_id in page.get_data(as_text=True)
    # Without JavaScript the first POST only asks for confirmation.
    ask = admin.post(f"/admin/tenants/{victim.tenant_id}/status", {"status": "suspended"})
    assert ask.status_code == 200 and soup(ask).select_one("input[name=confirmed]")["value"] == "1"
    assert victim_browser.get("/dashboard").status_code == 200
    resp = admin.post(f"/admin/tenants/{victim.tenant_id}/status", {"status": "suspended", "confirmed": "1"})
    assert resp.status_code == 303
    assert victim_browser.get("/dashboard").status_code == 303  # refused on the next request
    assert admin.get("/dashboard").status_code == 200


def test_admin_search_is_an_htmx_block(app, as_role, make_user):
    admin = as_role("super_admin")
    make_user(role="dm", name="Findable Fenwick")
    resp = admin.get("/admin/users?q=fenwick", htmx=True)
    assert resp.status_code == 200
    assert "<html" not in resp.get_data(as_text=True)
    assert "Findable Fenwick" in resp.get_data(as_text=True)


def test_two_owners_demoting_each_other_leave_one_owner(app, make_user):
    import threading

    from sqlalchemy import func, select

    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import User
    from tests.conftest import Browser

    for _ in range(5):
        a = make_user(role="tenant_owner")
        b_user = make_user(role="tenant_owner", tenant_id=a.tenant_id)
        ba, bb = Browser(app).login(a), Browser(app).login(b_user)
        barrier = threading.Barrier(2)
        codes = []

        def demote(browser, target, barrier=barrier, codes=codes):
            barrier.wait()
            codes.append(browser.post(f"/team/{target.id}/role", {"role": "dm"}).status_code)

        threads = [threading.Thread(target=demote, args=(ba, b_user)), threading.Thread(target=demote, args=(bb, a))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        with app.app_context():
            owners = db.session.execute(
                select(func.count()).select_from(User).where(User.tenant_id == a.tenant_id, User.role == "tenant_owner")
            ).scalar_one()
        assert owners >= 1, codes
        assert sorted(codes) in ([303, 403], [303, 422])  # the loser is refused (no longer owner, or last owner)
