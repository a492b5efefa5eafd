"""Sign-in, signup, sign-out, rotation and expiry of server-side sessions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import grpc
import psycopg
import pytest
from sqlalchemy import select

from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import AuditLog, LoginSession, Tenant, User
from glyphoxa_htmx.services import tenants
from tests.conftest import Browser, soup


def _dev_signup(visitor: Browser, name: str):
    return visitor.post("/auth/dev", {"name": name, "role": "tenant_owner"})


def test_dev_signup_creates_owner_and_gateway_tenant(app, visitor, database_url):
    resp = _dev_signup(visitor, "Mira Stormwind")
    assert resp.status_code == 303 and resp.headers["Location"] == "/dashboard"
    with app.app_context():
        user = db.session.execute(select(User).where(User.name == "Mira Stormwind")).scalar_one()
        assert user.role == "tenant_owner"
        assert user.tenant_id == "mira_stormwind"
        assert tenants.valid_tenant_id(user.tenant_id)
        assert db.session.get(Tenant, user.tenant_id).name == "Mira Stormwind's table"
        actions = {a.action for a in db.session.execute(select(AuditLog)).scalars()}
        assert {"tenant.create", "user.signup", "user.sign_in"} <= actions
    # The tenant went through the gateway's CreateTenant: the gateway-owned row exists.
    with psycopg.connect(database_url) as conn:
        row = conn.execute("SELECT license_tier FROM public.tenants WHERE id = 'mira_stormwind'").fetchone()
    assert row == ("shared",)
    page = visitor.get("/dashboard")
    assert page.status_code == 200
    assert soup(page).select_one(".page-head h1").text == "Mira Stormwind's table"


def test_signup_slug_collisions_get_a_suffix(app):
    for _ in range(3):
        Browser(app).post("/auth/dev", {"name": "Mira", "role": "tenant_owner"})
    with app.app_context():
        ids = sorted(t.id for t in db.session.execute(select(Tenant)).scalars())
    assert ids == ["mira", "mira_2", "mira_3"]


def test_slug_collision_with_a_gateway_only_tenant(app, simulator):
    """A tenant created on the gateway outside the web service still blocks its slug."""
    from glyphoxa_htmx.core.deps import gateway

    with app.app_context():
        gateway().create_tenant("rowan", license_tier="shared")
        assert tenants.unique_tenant_id("Rowan") == "rowan_2"


@pytest.mark.parametrize(
    "name, expected",
    [
        ("Ærwyn the 3rd!", "aerwyn_the_3rd"),
        ("123 Dice Goblins", "t_123_dice_goblins"),
        ("", "table"),
        ("🐉🐉", "table"),
        ("x" * 200, "x" * 40),
    ],
)
def test_slug_base_is_gateway_valid(name, expected):
    slug = tenants.slug_base(name)
    assert slug == expected
    assert tenants.valid_tenant_id(slug)


def test_long_slug_with_suffix_stays_within_56(app):
    ids = list(zip(range(3), tenants.candidate_ids("y" * 300), strict=False))
    for _, candidate in ids:
        assert tenants.valid_tenant_id(candidate) and len(candidate) <= 56


def _token_row(app, token):
    from glyphoxa_htmx.services.auth import hash_token

    with app.app_context():
        return db.session.execute(select(LoginSession).where(LoginSession.token_hash == hash_token(token))).scalar_one()


def test_session_token_is_stored_hashed(app, as_role):
    b = as_role("dm")
    row = _token_row(app, b.token)
    assert row.token_hash != b.token and len(row.token_hash) == 64
    with app.app_context():
        raw = db.session.execute(select(LoginSession.token_hash)).scalars().all()
    assert b.token not in raw


def test_cookie_flags(app, visitor):
    resp = _dev_signup(visitor, "Cookie Tester")
    cookie = [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("gx_session=")][0]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Max-Age=604800" in cookie


def test_logout_revokes_server_side(app, as_role):
    b = as_role("dm")
    old = b.token
    resp = b.post("/auth/logout")
    assert resp.status_code == 303
    # Even if a copy of the cookie survives, it no longer works.
    b.client.set_cookie("gx_session", old)
    assert b.get("/dashboard").status_code == 303
    assert _token_row(app, old).revoked_reason == "sign_out"


def test_refresh_rotates_and_reuse_revokes_family(app, as_role):
    b = as_role("dm")
    old = b.token
    resp = b.post("/auth/refresh")
    assert resp.status_code == 303
    new = (
        [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("gx_session=")][0].split(";")[0].split("=", 1)[1]
    )
    assert new and new != old
    assert b.get("/dashboard").status_code == 200  # client now holds the new cookie
    # Someone else (another browser: the grace window for in-flight requests is bound to the
    # rotating browser's user agent) presents the rotated (old) token: refused, and the whole
    # family is revoked.
    thief = Browser(app)
    thief.client.set_cookie("gx_session", old)
    assert thief.get("/dashboard", headers={"User-Agent": "curl/8.5.0"}).status_code == 303
    assert b.get("/dashboard").status_code == 303
    assert _token_row(app, new).revoked_reason == "reuse_detected"
    with app.app_context():
        assert db.session.execute(select(AuditLog).where(AuditLog.action == "session.reuse_detected")).first()


def _age_session(app, token, **changes):
    from glyphoxa_htmx.services.auth import hash_token

    with app.app_context():
        row = db.session.execute(select(LoginSession).where(LoginSession.token_hash == hash_token(token))).scalar_one()
        for key, value in changes.items():
            setattr(row, key, value)
        db.session.commit()


def test_idle_expiry(app, as_role):
    b = as_role("dm")
    _age_session(app, b.token, last_seen_at=datetime.now(UTC) - timedelta(days=1))
    assert b.get("/dashboard").status_code == 303


def test_absolute_expiry(app, as_role):
    b = as_role("dm")
    _age_session(app, b.token, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    assert b.get("/dashboard").status_code == 303


def test_suspended_user_is_refused_on_next_request(app, as_role):
    b = as_role("dm")
    assert b.get("/dashboard").status_code == 200
    with app.app_context():
        db.session.get(User, b.user.id).status = "suspended"
        db.session.commit()
    assert b.get("/dashboard").status_code == 303


def test_expired_session_htmx_gets_hx_redirect_not_a_fragment(app, as_role):
    b = as_role("dm")
    _age_session(app, b.token, expires_at=datetime.now(UTC) - timedelta(seconds=1))
    resp = b.get("/team", htmx=True, headers={"HX-Current-URL": "http://localhost/team"})
    assert resp.headers["HX-Redirect"].startswith("/auth/signin")
    assert "expired=1" in resp.headers["HX-Redirect"]
    assert resp.get_data(as_text=True) == ""


def test_sessions_page_lists_and_revokes(app, as_role):
    b = as_role("tenant_owner")
    other = Browser(app).login(b.user)  # a second browser of the same person
    page = soup(b.get("/account/sessions"))
    rows = page.select("#session-list tbody tr")
    assert len(rows) == 2
    with app.app_context():
        other_row = _token_row(app, other.token)
    resp = b.post(f"/account/sessions/{other_row.id}/revoke", htmx=True)
    assert resp.status_code == 200
    assert len(soup(resp).select("tbody tr")) == 1
    assert other.get("/dashboard").status_code == 303
    assert b.get("/dashboard").status_code == 200


def test_cannot_revoke_someone_elses_session(app, as_role):
    a = as_role("tenant_owner")
    victim = as_role("tenant_owner")
    row = _token_row(app, victim.token)
    assert a.post(f"/account/sessions/{row.id}/revoke").status_code == 404
    assert victim.get("/dashboard").status_code == 200


def test_dev_signin_refused_in_production_mode(app, database_url):
    from glyphoxa_htmx.app import create_app
    from tests.conftest import make_settings

    prod_like = create_app(make_settings(database_url, dev_login=False))
    b = Browser(prod_like)
    assert b.post("/auth/dev", {"name": "x"}).status_code == 404
    assert "development sign-in" not in b.get("/auth/signin").get_data(as_text=True)


def test_signin_next_is_same_site_only(app, visitor):
    resp = visitor.post("/auth/dev", {"name": "Nia", "role": "tenant_owner", "next": "//evil.example/x"})
    assert resp.headers["Location"] == "/dashboard"
    resp = Browser(app).post("/auth/dev", {"name": "Nia", "role": "tenant_owner", "next": "/team"})
    assert resp.headers["Location"] == "/team"


def test_signup_stops_when_the_gateway_store_fails(app, database_url, make_user):
    """The gateway reports ALREADY_EXISTS for any store error; a failing gateway must not make
    one signup walk thousands of suffixes. GetTenant tells a real collision from a failure."""
    from glyphoxa_htmx.app import create_app
    from tests.conftest import make_settings
    from tests.gateway.conftest import MGMT, ScriptedServer

    server = ScriptedServer((MGMT,)).start()
    try:
        server.behaviour["CreateTenant"] = [grpc.StatusCode.ALREADY_EXISTS]
        server.behaviour["GetTenant"] = [grpc.StatusCode.NOT_FOUND]
        flaky = create_app(make_settings(database_url, gateway_grpc_addr=server.address, gateway_secret="s"))
        resp = Browser(flaky).post("/auth/dev", {"name": "Unlucky", "role": "tenant_owner"})
        assert resp.status_code == 503
        assert "couldn't create your table" in soup(resp).get_text()
        assert server.calls["CreateTenant"] == 1
        with app.app_context():
            assert db.session.execute(select(Tenant)).first() is None
            assert db.session.execute(select(User)).first() is None
    finally:
        server.stop()


def test_signup_skips_ids_really_taken_on_the_gateway(app, simulator):
    from glyphoxa_htmx.core.deps import gateway

    with app.app_context():
        gateway().create_tenant("bard", license_tier="shared")
        gateway().create_tenant("bard_2", license_tier="shared")
    Browser(app).post("/auth/dev", {"name": "Bard", "role": "tenant_owner"})
    with app.app_context():
        assert [t.id for t in db.session.execute(select(Tenant)).scalars()] == ["bard_3"]


def test_revoking_without_javascript_asks_first(app, as_role):
    b = as_role("tenant_owner")
    other = Browser(app).login(b.user)
    row = _token_row(app, other.token)
    ask = b.post(f"/account/sessions/{row.id}/revoke")
    assert ask.status_code == 200 and soup(ask).select_one("h1").text == "Sign out this session?"
    assert other.get("/dashboard").status_code == 200  # nothing happened yet
    assert b.post(f"/account/sessions/{row.id}/revoke", {"confirmed": "1"}).status_code == 303
    assert other.get("/dashboard").status_code == 303


def test_current_user_resolves_as_flask_login_does(app, as_role):
    """``current_user`` goes through extensions._get_user (fewer proxies, issue 18): it must be in
    place and answer as flask-login's own _get_user in every state — no request, a visitor, a
    signed-in user (loaded once, on first use), after a sign-out in the request."""
    import flask_login
    from flask import g
    from flask_login import current_user, logout_user

    from glyphoxa_htmx import extensions

    assert flask_login.utils._get_user is extensions._get_user
    original = extensions.flask_login_get_user
    assert original is not extensions._get_user
    with app.app_context():
        assert extensions._get_user() is None and original() is None
    with app.test_request_context("/dashboard"):
        assert "_login_user" not in g
        ours = extensions._get_user()
        assert ours is original() and not ours.is_authenticated  # a visitor, loaded once
    b = as_role("dm")
    with app.test_request_context("/dashboard", headers={"Cookie": f"gx_session={b.token}"}):
        assert "_login_user" not in g
        ours = extensions._get_user()
        assert ours.is_authenticated and ours.user_id == b.user.id
        assert original() is ours and current_user._get_current_object() is ours
        logout_user()
        assert extensions._get_user() is original() and not current_user.is_authenticated


def test_current_user_takes_flask_logins_own_path_whenever_it_would_do_more(app, as_role):
    """extensions._get_user calls the request loader itself only when that is all flask-login's
    _load_user would do; with a remember-me cookie, session protection or a signal receiver it
    takes flask-login's own path, and either way the same user (or visitor) comes out."""
    import flask_login
    from flask import g

    from glyphoxa_htmx import extensions

    b = as_role("dm")
    manager = app.login_manager
    cookie = f"gx_session={b.token}"

    def resolve(headers, expect_lean):
        with app.test_request_context("/dashboard", headers=headers):
            from flask import request

            assert extensions._request_loader_only(manager, app, request) is expect_lean
            ours = extensions._get_user()
            g.pop("_login_user")
            manager._load_user()  # flask-login's own, on the same request
            theirs = g._login_user
            return ours, theirs

    ours, theirs = resolve({"Cookie": cookie}, True)
    assert ours.is_authenticated and ours == theirs and ours.user_id == b.user.id
    ours, theirs = resolve({}, True)
    assert not ours.is_authenticated and not theirs.is_authenticated
    # A remember-me cookie (never set by this app): flask-login reads it instead of the loader.
    ours, theirs = resolve({"Cookie": f"{cookie}; {app.config['REMEMBER_COOKIE_NAME']}=forged"}, False)
    assert ours.is_authenticated == theirs.is_authenticated
    # Someone listening for flask-login's signals: they are sent.
    heard = []

    def listener(sender, **_kw):
        heard.append(sender)

    flask_login.user_accessed.connect(listener)
    try:
        ours, theirs = resolve({"Cookie": cookie}, False)
    finally:
        flask_login.user_accessed.disconnect(listener)
    assert heard and ours == theirs
    app.config["SESSION_PROTECTION"] = "basic"
    try:
        ours, theirs = resolve({"Cookie": cookie}, False)
    finally:
        del app.config["SESSION_PROTECTION"]
    assert ours == theirs
