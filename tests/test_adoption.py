"""Adopting an existing gateway tenant: the admin list of tenants "not yet managed here", the
adopt form (Discord id and/or one-time signed expiring link), joining on Discord sign-in
instead of founding a new tenant, the CLI, and the audit trail. Real gRPC to the simulator,
real HTTP to the local OAuth provider."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import pytest
import requests
from click.testing import CliRunner
from sqlalchemy import select

from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import AuditLog, Tenant, TenantInvitation, User
from tests.conftest import GATEWAY_SECRET, Browser, soup


def gateway_tenant(app, tenant_id=None, **kw) -> str:
    """A tenant that exists only on the gateway (as a long-running installation has them)."""
    from glyphoxa_htmx.core.deps import gateway

    tenant_id = tenant_id or "gw_" + uuid.uuid4().hex[:10]
    with app.app_context():
        gateway().create_tenant(tenant_id, license_tier="shared", **kw)
    return tenant_id


def discord_sign_in(b: Browser, provider, next_path: str = "/auth/discord"):
    resp = b.get(next_path)
    assert resp.status_code == 302, resp.status_code
    back = requests.get(resp.headers["Location"], allow_redirects=False, timeout=5).headers["Location"]
    cb = urlsplit(back)
    return b.get(cb.path + "?" + cb.query)


def gateway_ids(app) -> set[str]:
    from glyphoxa_htmx.core.deps import gateway

    with app.app_context():
        return {t.id for t in gateway().list_tenants()}


def test_admin_lists_gateway_tenants_not_yet_managed_here(app, as_role, make_tenant):
    managed = make_tenant()
    gateway_tenant(app, managed)
    lone = gateway_tenant(app, campaign_id="c1", guild_ids=["123456789012345678"])
    admin = as_role("super_admin")
    page = soup(admin.get("/admin/tenants"))
    assert page.select_one("#unmanaged[hx-get='/admin/tenants/unmanaged']")  # loaded after the page
    assert page.select_one("#unmanaged a[href='/admin/tenants/unmanaged']")  # and without JavaScript
    block = soup(admin.get("/admin/tenants/unmanaged", htmx=True))
    rows = {tr.select_one("td.mono").text: tr for tr in block.select("tbody tr")}
    assert lone in rows and managed not in rows
    assert "not yet managed here" in rows[lone].text and "c1" in rows[lone].text
    assert rows[lone].select_one("a")["href"] == f"/admin/tenants/{lone}/adopt"
    assert soup(admin.get("/admin/tenants/unmanaged")).select_one("title").text.startswith("Gateway tenants")


@pytest.mark.parametrize("role", ["tenant_owner", "dm", "viewer"])
def test_only_super_admins_adopt(app, as_role, role):
    lone = gateway_tenant(app)
    b = as_role(role)
    assert b.get("/admin/tenants/unmanaged").status_code == 403
    assert b.get(f"/admin/tenants/{lone}/adopt").status_code == 403
    assert (
        b.post(f"/admin/tenants/{lone}/adopt", {"name": "x", "owner_discord_id": "123456789012345678"}).status_code
        == 403
    )
    with app.app_context():
        assert db.session.get(Tenant, lone) is None


def test_adopt_form_refuses_bad_input_and_writes_nothing(app, as_role):
    lone = gateway_tenant(app)
    admin = as_role("super_admin")
    assert admin.get("/admin/tenants/nobody_here/adopt").status_code == 404
    resp = admin.post(f"/admin/tenants/{lone}/adopt", {"name": "", "owner_discord_id": "12ab"}, htmx=True)
    assert resp.status_code == 422
    page = soup(resp)
    assert "Give the table a name" in page.select_one("#name-error").text
    assert "17–20 digits" in page.select_one("#owner_discord_id-error").text
    resp = admin.post(f"/admin/tenants/{lone}/adopt", {"name": "Rabenheim"})
    assert resp.status_code == 422 and "invite link" in soup(resp).select_one("#owner_discord_id-error").text
    with app.app_context():
        assert db.session.get(Tenant, lone) is None
        assert db.session.execute(select(TenantInvitation)).first() is None


def test_adopted_owner_joins_on_discord_sign_in_instead_of_founding_a_tenant(app, oauth_app, as_role, provider):
    lone = gateway_tenant(app, campaign_id="c1")
    before = gateway_ids(app)
    admin = as_role("super_admin")
    resp = admin.post(
        f"/admin/tenants/{lone}/adopt",
        {"name": "Rabenheim Nights", "owner_discord_id": provider.user["id"], "expires_days": "7"},
    )
    assert resp.status_code == 200
    assert "now managed here" in soup(resp).select_one(".notice").text
    # Adopting again is refused (already managed), and the list no longer shows it.
    again = admin.post(f"/admin/tenants/{lone}/adopt", {"name": "x", "owner_discord_id": provider.user["id"]})
    assert again.status_code == 422 and "already managed" in again.get_data(as_text=True)
    assert lone not in admin.get("/admin/tenants/unmanaged").get_data(as_text=True)

    b = Browser(oauth_app)
    assert discord_sign_in(b, provider).status_code == 303
    with oauth_app.app_context():
        user = db.session.execute(select(User).where(User.discord_id == provider.user["id"])).scalar_one()
        assert (user.tenant_id, user.role) == (lone, "tenant_owner")
        assert db.session.get(Tenant, lone).name == "Rabenheim Nights"
        inv = db.session.execute(select(TenantInvitation).where(TenantInvitation.tenant_id == lone)).scalar_one()
        assert inv.used_by == user.id and inv.used_at is not None
        actions = [
            a
            for (a,) in db.session.execute(
                select(AuditLog.action).where(AuditLog.tenant_id == lone).order_by(AuditLog.id)
            )
        ]
        assert actions[:1] == ["tenant.adopt"] and "tenant.invitation_accept" in actions and "user.signup" in actions
        assert "tenant.create" not in actions
    assert gateway_ids(app) == before  # no second tenant was founded on the gateway
    assert "Rabenheim Nights" in b.get("/dashboard").get_data(as_text=True)


def test_invite_link_is_signed_one_time_and_expires(app, oauth_app, as_role, provider):
    lone = gateway_tenant(app)
    admin = as_role("super_admin")
    resp = admin.post(f"/admin/tenants/{lone}/adopt", {"name": "Linked table", "link": "1"})
    assert resp.status_code == 200
    link = soup(resp).select_one("#invite-link")["value"]
    path = urlsplit(link).path
    assert path.startswith("/auth/invite/")
    assert Browser(oauth_app).get(path[:-3] + "xyz").status_code == 404  # tampered signature

    b = Browser(oauth_app)
    landing = b.get(path)
    assert landing.status_code == 200 and "Linked table" in landing.get_data(as_text=True)
    assert discord_sign_in(b, provider).status_code == 303
    with oauth_app.app_context():
        user = db.session.execute(select(User).where(User.discord_id == provider.user["id"])).scalar_one()
        assert (user.tenant_id, user.role) == (lone, "tenant_owner")
    # Used: the link is dead now.
    assert Browser(oauth_app).get(path).status_code == 404

    # An expired link is refused too.
    other = gateway_tenant(app)
    resp = admin.post(f"/admin/tenants/{other}/adopt", {"name": "Late table", "link": "1"})
    expired_path = urlsplit(soup(resp).select_one("#invite-link")["value"]).path
    with app.app_context():
        inv = db.session.execute(select(TenantInvitation).where(TenantInvitation.tenant_id == other)).scalar_one()
        inv.expires_at = datetime.now(UTC) - timedelta(minutes=1)
        db.session.commit()
    assert Browser(oauth_app).get(expired_path).status_code == 404


def test_someone_not_invited_still_founds_their_own_tenant(app, oauth_app, as_role, provider):
    lone = gateway_tenant(app)
    admin = as_role("super_admin")
    assert (
        admin.post(
            f"/admin/tenants/{lone}/adopt", {"name": "Not yours", "owner_discord_id": "999999999999999999"}
        ).status_code
        == 200
    )
    b = Browser(oauth_app)
    assert discord_sign_in(b, provider).status_code == 303
    with oauth_app.app_context():
        user = db.session.execute(select(User).where(User.discord_id == provider.user["id"])).scalar_one()
        assert user.tenant_id != lone and user.tenant_id == "nelly_the_bard"


def test_cli_adopt_tenant(app, database_url, simulator, monkeypatch):
    from glyphoxa_htmx.cli import main

    lone = gateway_tenant(app)
    for key, value in {
        "DATABASE_URL": database_url,
        "LOG_JSON": "0",
        "GATEWAY_GRPC_ADDR": simulator.address,
        "GATEWAY_SECRET": GATEWAY_SECRET,
        "GLYPHOXA_GATEWAY_SIMULATOR": "0",
        "PUBLIC_URL": "https://web.example",
    }.items():
        monkeypatch.setenv(key, value)
    result = CliRunner().invoke(
        main, ["adopt-tenant", lone, "--owner-discord-id", "123456789012345678", "--name", "Scripted", "--link"]
    )
    assert result.exit_code == 0, result.output
    assert f"{lone} is now managed here" in result.output
    assert "invite link" in result.output and "https://web.example/auth/invite/" in result.output
    with app.app_context():
        assert db.session.get(Tenant, lone).name == "Scripted"
        inv = db.session.execute(select(TenantInvitation).where(TenantInvitation.tenant_id == lone)).scalar_one()
        assert inv.discord_id == "123456789012345678" and inv.link and inv.created_by is None
        audit = db.session.execute(select(AuditLog).where(AuditLog.action == "tenant.adopt")).scalar_one()
        assert audit.details["via"] == "cli"
    bad = CliRunner().invoke(main, ["adopt-tenant", "no_such_tenant", "--owner-discord-id", "123456789012345678"])
    assert bad.exit_code == 1 and "no tenant with that id" in bad.output
    twice = CliRunner().invoke(main, ["adopt-tenant", lone, "--owner-discord-id", "123456789012345679"])
    assert twice.exit_code == 1 and "already managed" in twice.output


def test_a_link_used_while_the_tab_was_open_refuses_instead_of_founding(app, oauth_app, as_role, provider):
    lone = gateway_tenant(app)
    admin = as_role("super_admin")
    resp = admin.post(f"/admin/tenants/{lone}/adopt", {"name": "Contested", "link": "1"})
    path = urlsplit(soup(resp).select_one("#invite-link")["value"]).path
    slow, fast = Browser(oauth_app), Browser(oauth_app)
    assert slow.get(path).status_code == 200  # opened, not signed in yet
    assert fast.get(path).status_code == 200
    original = dict(provider.user)
    try:
        provider.user = {**original, "id": "80351110224670001", "global_name": "Fast Fay", "email": "fay@example.com"}
        assert discord_sign_in(fast, provider).status_code == 303
        provider.user = {**original, "id": "80351110224670002", "global_name": "Slow Sam", "email": "sam@example.com"}
        late = discord_sign_in(slow, provider)
    finally:
        provider.user = original
    assert late.status_code == 404 and "has been used or has expired" in late.get_data(as_text=True)
    with oauth_app.app_context():
        assert db.session.execute(select(User).where(User.discord_id == "80351110224670002")).first() is None
        fay = db.session.execute(select(User).where(User.discord_id == "80351110224670001")).scalar_one()
        assert fay.tenant_id == lone
