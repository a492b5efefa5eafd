"""``/me`` (issue 12): display name, e-mail, linked sign-in providers (link through the local
OAuth provider; never unlink the last one), deleting my account (refused while last owner)."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import LoginSession, User
from tests.conftest import Browser, soup
from tests.test_adoption import discord_sign_in
from tests.test_team import as_discord, snowflake


def test_profile_shows_and_renames(app, as_role):
    b = as_role("dm")
    page = soup(b.get("/me"))
    assert page.select_one("#name")["value"] == "dm user"
    assert "linked" in page.select_one("#provider-discord").text
    assert b.post("/me/name", {"name": "  "}).status_code == 422
    assert b.post("/me/name", {"name": "Brother Ansel"}).status_code == 303
    assert soup(b.get("/me")).select_one("#name")["value"] == "Brother Ansel"
    assert "/me" in b.get("/dashboard").get_data(as_text=True)  # in the account menu


def test_link_another_provider_and_never_unlink_the_last(app, oauth_app, make_tenant, provider):
    tid = make_tenant()
    with app.app_context():
        user = User(
            id=str(uuid.uuid4()), tenant_id=tid, name="Git person", role="dm", github_id="gh-" + uuid.uuid4().hex
        )
        db.session.add(user)
        db.session.commit()
        ns = type("U", (), {"id": user.id, "tenant_id": tid})
    b = Browser(oauth_app).login(ns)
    resp = b.post("/me/unlink/github", htmx=True)
    assert resp.status_code == 422 and "only way to sign in" in resp.get_data(as_text=True)
    did = snowflake()
    as_discord(provider, did, "Git person")
    start = b.post("/me/link/discord")
    assert start.status_code == 303 and start.headers["Location"].startswith("/auth/discord")
    assert discord_sign_in(b, provider, start.headers["Location"]).status_code == 303
    with app.app_context():
        linked = db.session.get(User, ns.id)
        assert linked.discord_id == did and linked.github_id  # the same person, both providers
        assert db.session.execute(select(User).where(User.discord_id == did)).scalar_one().id == ns.id
    assert b.post("/me/unlink/github").status_code == 303
    with app.app_context():
        assert db.session.get(User, ns.id).github_id is None


def test_delete_my_account(app, as_role, make_user):
    owner = as_role("tenant_owner")
    dm_user = make_user(role="dm", tenant_id=owner.user.tenant_id)
    # The last owner of a table with other members can't.
    resp = owner.post("/me/delete", {"confirm": "delete"}, htmx=True)
    assert resp.status_code == 422 and "last owner" in resp.get_data(as_text=True)
    dm = Browser(app).login(dm_user)
    assert dm.post("/me/delete", {"confirm": "nope"}).status_code == 422
    resp = dm.post("/me/delete", {"confirm": "delete"})
    assert resp.status_code == 303
    with app.app_context():
        assert db.session.get(User, dm_user.id) is None
        assert db.session.execute(select(LoginSession).where(LoginSession.user_id == dm_user.id)).first() is None
    nxt = dm.get("/campaigns")
    assert nxt.status_code in (302, 303) and "/auth" in nxt.headers["Location"]
