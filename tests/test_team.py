"""Bringing the table in (issue 12): owners invite by Discord id or shareable link (use limits,
expiry, revocation), invitees join with the role at sign-in through the local OAuth provider,
members are listed/changed/removed (removal ends their sign-ins at once), the last owner is
protected, and seat limits come from the plan. Real PostgreSQL, real HTTP to the OAuth fake."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select

from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import AuditLog, LoginSession, TenantInvitation, User
from tests.conftest import Browser, soup
from tests.test_adoption import discord_sign_in


def snowflake() -> str:
    return str(random.randint(10**17, 10**18 - 1))


def as_discord(provider, discord_id: str, name: str = "Invitee") -> None:
    provider.user = dict(
        provider.user, id=discord_id, global_name=name, username=name.lower(), email=f"{discord_id}@example.com"
    )


def member(app, discord_id: str) -> User | None:
    with app.app_context():
        user = db.session.execute(select(User).where(User.discord_id == discord_id)).scalar_one_or_none()
        if user is not None:
            db.session.expunge(user)
        return user


def create_link(owner: Browser, role="viewer", max_uses="1", days="7") -> str:
    resp = owner.post("/team/invitations", {"kind": "link", "role": role, "max_uses": max_uses, "expires_days": days})
    assert resp.status_code == 200, resp.get_data(as_text=True)
    return urlsplit(soup(resp).select_one("#invite-link")["value"]).path


def test_invite_by_discord_id_then_sign_in_joins_with_that_role(app, oauth_app, as_role, provider):
    owner = as_role("tenant_owner")
    did = snowflake()
    resp = owner.post("/team/invitations", {"kind": "discord", "discord_id": did, "role": "dm", "expires_days": "3"})
    assert resp.status_code == 200
    pending = soup(owner.get("/team")).select("#pending tbody tr")
    assert len(pending) == 1 and did in pending[0].text and "Dungeon Master" in pending[0].text
    assert "tenant_owner user" in pending[0].text  # who invited
    assert pending[0].select_one("[data-label='Uses left']").text.strip() == "1"

    as_discord(provider, did, "Rolf")
    b = Browser(oauth_app)
    assert discord_sign_in(b, provider).status_code == 303
    joined = member(app, did)
    assert (joined.tenant_id, joined.role) == (owner.user.tenant_id, "dm")
    # The members list shows them with a real last sign-in (not "never") and a joined date.
    rows = {
        tr.select_one("[data-label='Name']").text.strip(): tr
        for tr in soup(owner.get("/team")).select("#members tbody tr")
        if tr.select_one("[data-label='Name']")
    }
    assert "never" not in rows["Rolf"].select_one("[data-label='Last sign-in']").text
    assert rows["Rolf"].select_one("[data-label='Joined'] time")
    assert not soup(owner.get("/team")).select("#pending tbody tr")  # used up
    with app.app_context():
        actions = {
            a for (a,) in db.session.execute(select(AuditLog.action).where(AuditLog.tenant_id == owner.user.tenant_id))
        }
    assert {"invitation.create", "tenant.invitation_accept", "user.signup"} <= actions


def test_bad_invitations_are_refused_with_nothing_written(app, as_role):
    owner = as_role("tenant_owner")
    for data, field in [
        ({"kind": "discord", "discord_id": "12345", "role": "dm"}, "discord_id"),
        ({"kind": "discord", "discord_id": "", "role": "dm"}, "discord_id"),
        ({"kind": "discord", "discord_id": snowflake(), "role": "super_admin"}, "role"),
        ({"kind": "link", "role": "viewer", "max_uses": "0"}, "max_uses"),
        ({"kind": "link", "role": "viewer", "expires_days": "365"}, "expires_days"),
    ]:
        resp = owner.post("/team/invitations", data, htmx=True)
        assert resp.status_code == 422, data
        assert soup(resp).select_one(f"#{field}-error"), data
    with app.app_context():
        assert (
            db.session.execute(
                select(TenantInvitation).where(TenantInvitation.tenant_id == owner.user.tenant_id)
            ).first()
            is None
        )


def test_link_use_limit_expiry_and_revocation(app, oauth_app, as_role, provider):
    owner = as_role("tenant_owner")
    path = create_link(owner, role="viewer", max_uses="2")
    joined = []
    for i in range(2):
        did = snowflake()
        as_discord(provider, did, f"Player {i}")
        b = Browser(oauth_app)
        assert b.get(path).status_code == 200
        assert discord_sign_in(b, provider).status_code == 303
        joined.append(member(app, did))
    assert [(u.tenant_id, u.role) for u in joined] == [(owner.user.tenant_id, "viewer")] * 2
    assert Browser(oauth_app).get(path).status_code == 404  # third person: used up

    # Revoked: the link is dead, and a tab that had it open can't use it either.
    revoked_path = create_link(owner, max_uses="5")
    late = Browser(oauth_app)
    assert late.get(revoked_path).status_code == 200
    with app.app_context():
        inv = db.session.execute(
            select(TenantInvitation).where(
                TenantInvitation.tenant_id == owner.user.tenant_id,
                TenantInvitation.revoked_at.is_(None),
                TenantInvitation.uses == 0,
            )
        ).scalar_one()
    assert owner.post(f"/team/invitations/{inv.id}/revoke").status_code == 303
    assert Browser(oauth_app).get(revoked_path).status_code == 404
    did = snowflake()
    as_discord(provider, did)
    refused = discord_sign_in(late, provider)
    assert refused.status_code == 404 and member(app, did) is None

    # Expired.
    expired_path = create_link(owner)
    with app.app_context():
        for row in db.session.execute(
            select(TenantInvitation).where(
                TenantInvitation.tenant_id == owner.user.tenant_id,
                TenantInvitation.revoked_at.is_(None),
                TenantInvitation.uses == 0,
            )
        ).scalars():
            row.expires_at = datetime.now(UTC) - timedelta(minutes=1)
        db.session.commit()
    assert Browser(oauth_app).get(expired_path).status_code == 404


def test_viewer_invitee_cannot_do_what_the_matrix_forbids(app, oauth_app, as_role, provider):
    owner = as_role("tenant_owner")
    path = create_link(owner, role="viewer")
    did = snowflake()
    as_discord(provider, did, "Watcher")
    b = Browser(oauth_app)
    b.get(path)
    assert discord_sign_in(b, provider).status_code == 303
    viewer = member(app, did)
    assert viewer.role == "viewer"
    assert b.get("/team").status_code == 200  # may see who is at the table
    page = soup(b.get("/team"))
    assert not page.select("#invite") and not page.select("form[action$='/remove']")
    assert b.post("/team/invitations", {"kind": "link", "role": "viewer"}).status_code == 403
    assert b.post(f"/team/{owner.user.id}/role", {"role": "viewer"}).status_code == 403
    assert b.post(f"/team/{owner.user.id}/remove").status_code == 403
    assert b.post("/campaigns", {"name": "Nope"}).status_code == 403
    with app.app_context():
        assert db.session.get(User, owner.user.id).role == "tenant_owner"


def test_last_owner_cannot_be_removed_demoted_or_leave(app, as_role, make_user):
    owner = as_role("tenant_owner")
    resp = owner.post(f"/team/{owner.user.id}/remove", htmx=True)
    assert resp.status_code == 422 and "at least one owner" in resp.get_data(as_text=True)
    resp = owner.post(f"/team/{owner.user.id}/role", {"role": "dm"}, htmx=True)
    assert resp.status_code == 422
    with app.app_context():
        assert db.session.get(User, owner.user.id).role == "tenant_owner"
    # With a second owner, one may leave.
    second = make_user(role="tenant_owner", tenant_id=owner.user.tenant_id, name="Second owner")
    assert owner.post(f"/team/{second.id}/remove").status_code == 303
    with app.app_context():
        assert db.session.get(User, second.id) is None


def test_removal_revokes_sign_in_sessions_at_once(app, as_role, make_user):
    owner = as_role("tenant_owner")
    dm_user = make_user(role="dm", tenant_id=owner.user.tenant_id, name="Leaving DM")
    dm = Browser(app).login(dm_user)
    assert dm.get("/campaigns").status_code == 200  # signed in (and cached)
    with app.app_context():
        assert db.session.execute(select(LoginSession).where(LoginSession.user_id == dm_user.id)).first()
    assert owner.post(f"/team/{dm_user.id}/remove").status_code == 303
    # The tab they had open: the next request is no longer signed in.
    nxt = dm.get("/campaigns")
    assert nxt.status_code in (302, 303) and "/auth" in nxt.headers["Location"]
    with app.app_context():
        assert db.session.get(User, dm_user.id) is None
        assert db.session.execute(select(LoginSession).where(LoginSession.user_id == dm_user.id)).first() is None
        entry = db.session.execute(
            select(AuditLog).where(AuditLog.action == "user.remove", AuditLog.resource_id == dm_user.id)
        ).scalar_one()
        assert "dm" in str(entry.details["changes"]) and entry.details["sessions_revoked"] >= 1


def test_someone_at_another_table_is_told_and_may_switch_if_they_own_nothing(app, as_role, make_user):
    inviting = as_role("tenant_owner")
    path = create_link(inviting, role="dm")
    # A DM of another table may leave it for this one.
    elsewhere = as_role("dm")
    page = elsewhere.get(path).get_data(as_text=True)
    assert "one table" in page and "Leave" in page
    assert elsewhere.post(path + "/accept").status_code == 303
    with app.app_context():
        moved = db.session.get(User, elsewhere.user.id)
        assert (moved.tenant_id, moved.role) == (inviting.user.tenant_id, "dm")
    # The last owner of another table is told why they can't, and nothing changes.
    path2 = create_link(inviting, role="viewer")
    lone_owner = as_role("tenant_owner")
    page = soup(lone_owner.get(path2))
    assert "only owner" in page.select_one("#invite-refusal").text
    assert not page.select("form[action$='/accept']")
    assert lone_owner.post(path2 + "/accept").status_code == 422
    with app.app_context():
        assert db.session.get(User, lone_owner.user.id).tenant_id == lone_owner.user.tenant_id


def test_seat_limits_apply_at_invite_and_at_accept(app, database_url, as_role, oauth_app, provider, monkeypatch):
    from glyphoxa_htmx.services import plans

    owner = as_role("tenant_owner")
    monkeypatch.setattr(plans, "billing_enabled", lambda: True)  # no subscription row: free plan, 1 seat
    resp = owner.post("/team/invitations", {"kind": "discord", "discord_id": snowflake(), "role": "dm"}, htmx=True)
    assert resp.status_code == 422 and "seat" in resp.get_data(as_text=True)
    assert owner.post("/team/invitations", {"kind": "link", "role": "viewer"}).status_code == 200  # players are free
    # A DM invitation made while seats were free is refused at accept once they are taken.
    monkeypatch.setattr(plans, "billing_enabled", lambda: False)
    path = create_link(owner, role="dm")
    monkeypatch.setattr(plans, "billing_enabled", lambda: True)
    did = snowflake()
    as_discord(provider, did)
    b = Browser(oauth_app)
    b.get(path)
    resp = discord_sign_in(b, provider)
    assert resp.status_code == 422 and member(app, did) is None


def test_an_existing_account_sees_a_discord_invitation_on_me_and_may_switch(app, as_role, make_user):
    inviting = as_role("tenant_owner")
    elsewhere = as_role("viewer")
    did = snowflake()
    with app.app_context():
        db.session.get(User, elsewhere.user.id).discord_id = did
        db.session.commit()
    assert inviting.post("/team/invitations", {"kind": "discord", "discord_id": did, "role": "dm"}).status_code == 200
    with app.app_context():
        inv_id = db.session.execute(
            select(TenantInvitation.id).where(TenantInvitation.tenant_id == inviting.user.tenant_id)
        ).scalar_one()
    # Nobody else can accept it (404), not even another member of the inviting table.
    assert as_role("viewer").post(f"/me/invitations/{inv_id}/accept").status_code == 404
    page = soup(elsewhere.get("/me"))
    assert "Test table" in page.select_one("#offers").text and "one table" in page.select_one("#offers").text
    assert elsewhere.post(f"/me/invitations/{inv_id}/accept").status_code == 303
    moved = member(app, did)
    assert (moved.tenant_id, moved.role) == (inviting.user.tenant_id, "dm")
    elsewhere._csrf = None  # their table changed: the next page carries a renewed CSRF token
    assert elsewhere.post(f"/me/invitations/{inv_id}/accept").status_code == 404  # used
