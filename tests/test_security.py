"""Security hardening (issue 8): fail-closed configuration, dev sign-in limits, bad bytes in
parameters, the WebSocket Origin check, CSRF renewal, refresh races and auth rate limits."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select

from glyphoxa_htmx.config import ConfigError, load_settings
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import User
from tests.conftest import Browser, make_settings, soup

PROD = dict(env="production", secret_key="k" * 40, discord_client_id="id", discord_client_secret="sec",
            database_url="postgresql://db/x", gateway_grpc_addr="gw:50051", gateway_secret="s",
            public_url="https://app.example", metrics_token="m" * 24)


# ---- 2. GLYPHOXA_ENV is exact; dev sign-in needs loopback or an explicit opt-in ----------------


@pytest.mark.parametrize("value", ["prod", "Production", "PRODUCTION", "production ", "dev", ""])
def test_mistyped_env_refuses_to_start_naming_the_value(value):
    with pytest.raises(ConfigError) as err:
        load_settings(environ={"GLYPHOXA_ENV": value}).validate()
    assert repr(value) in str(err.value) and "development, test, production" in str(err.value)


@pytest.mark.parametrize("value", ["development", "test", "production"])
def test_exact_env_values_are_accepted(value):
    s = load_settings(environ={"GLYPHOXA_ENV": value}, **({k: v for k, v in PROD.items() if k != "env"}))
    s.validate()
    assert s.production is (value == "production")


def test_mistyped_production_never_serves_dev_signin(database_url):
    from glyphoxa_htmx.app import create_app

    with pytest.raises(ConfigError):
        create_app(make_settings(database_url, env="Production"))


def test_dev_signin_needs_a_loopback_bind():
    assert load_settings(environ={"HOST": "127.0.0.1"}).dev_login_enabled
    assert load_settings(environ={"HOST": "::1"}).dev_login_enabled
    assert load_settings(environ={"HOST": "localhost"}).dev_login_enabled
    assert not load_settings(environ={"HOST": "0.0.0.0"}).dev_login_enabled
    assert not load_settings(environ={"HOST": "192.168.1.20"}).dev_login_enabled
    forced = load_settings(environ={"HOST": "0.0.0.0", "GLYPHOXA_DEV_LOGIN": "1"})
    assert forced.dev_login_enabled and "DEV SIGN-IN IS ON" in forced.dev_login_warning
    assert load_settings(environ={"HOST": "127.0.0.1"}).dev_login_warning is None


def test_dev_signin_on_a_public_bind_is_404_unless_forced(app, database_url, caplog):
    from glyphoxa_htmx.app import create_app

    public = create_app(make_settings(database_url, host="0.0.0.0"))
    assert Browser(public).post("/auth/dev", {"name": "x"}).status_code == 404
    assert "development sign-in" not in public.test_client().get("/auth/signin").get_data(as_text=True)
    with caplog.at_level(logging.WARNING):
        forced = create_app(make_settings(database_url, host="0.0.0.0", dev_login_forced=True))
    assert any("DEV SIGN-IN IS ON" in r.getMessage() for r in caplog.records)  # loud, at every start
    assert Browser(forced).post("/auth/dev", {"name": "Forced"}).status_code == 303


def test_dev_form_never_creates_a_super_admin(app, visitor):
    resp = visitor.post("/auth/dev", {"name": "Mallory", "role": "super_admin"})
    assert resp.status_code == 422
    assert "CLI" in soup(resp).select_one("#role-error").text
    assert visitor.get("/admin/").status_code in (302, 303, 401)  # not signed in at all
    with app.app_context():
        assert db.session.execute(select(User).where(User.role == "super_admin")).first() is None
    page = soup(visitor.get("/auth/signin"))
    assert "super_admin" not in [o["value"] for o in page.select("#dev-role option")]


def test_dev_form_cannot_join_a_table_as_super_admin(app, visitor, make_tenant):
    tenant = make_tenant()
    resp = visitor.post("/auth/dev", {"name": "Mallory", "role": "super_admin", "tenant_id": tenant})
    assert resp.status_code == 422
    with app.app_context():
        assert db.session.execute(select(User).where(User.role == "super_admin")).first() is None


# ---- 4. production requires an https PUBLIC_URL ---------------------------------------------


def test_production_refuses_http_public_url():
    with pytest.raises(ConfigError) as err:
        load_settings(environ={}, **{**PROD, "public_url": "http://app.example"}).validate()
    assert "PUBLIC_URL" in str(err.value) and "https://" in str(err.value)
    allowed = load_settings(environ={"ALLOW_INSECURE_PUBLIC_URL": "1"}, **{**PROD, "public_url": "http://app.example"})
    allowed.validate()  # explicit opt-in
    load_settings(environ={}, **PROD).validate()


# ---- 3. NUL (and other unstorable characters) are refused in one place -----------------------

NUL_MESSAGE = "a NUL byte or an invalid Unicode character"


@pytest.mark.parametrize("method, url, data, status", [
    ("GET", "/campaigns?q=a%00b", None, 400),
    ("GET", "/campaigns/%00", None, 400),
    ("GET", "/npcs/x%00y", None, 400),
    ("GET", "/sessions?state=%00", None, 400),
    ("GET", "/sessions/search?q=%00", None, 400),
    ("GET", "/knowledge?q=%00", None, 400),
    ("GET", "/admin/users?q=%00", None, 400),
    ("POST", "/campaigns", {"name": "Sunken\x00Crown"}, 422),
    ("POST", "/settings/name", {"name": "Table\x00"}, 422),
    ("POST", "/settings/discord", {"guild_ids_text": "1\x00"}, 422),
    ("POST", "/campaigns", {"na\x00me": "x"}, 422),
])
def test_nul_bytes_are_refused_with_a_clear_message(app, as_role, method, url, data, status):
    b = as_role("super_admin") if url.startswith("/admin") else as_role("tenant_owner")
    page = b.request(method, url, data=data)
    assert page.status_code == status
    assert NUL_MESSAGE in page.get_data(as_text=True)  # a full error page
    fragment = b.request(method, url, data=data, htmx=True)
    assert fragment.status_code == status
    assert NUL_MESSAGE in fragment.headers["HX-Trigger"] and fragment.headers["HX-Reswap"] == "none"  # a toast


def test_unstorable_characters_include_lone_surrogates():
    from glyphoxa_htmx.core.parse import unstorable

    assert unstorable(["ok", "a\x00"]) and unstorable(["\ud800"]) and unstorable(["x\udfff"])
    assert not unstorable(["ordinary", "ünïcödé ✓ 🐉", "\ufffd"])


# ---- 8. the WebSocket Origin check compares scheme, host and port ----------------------------

WS_HEADERS = {"Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
              "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ=="}


def _handshake(app, origin: str | None, base_url: str = "http://localhost") -> int:
    """403: Origin refused; 401: Origin accepted (then refused for the missing sign-in)."""
    headers = dict(WS_HEADERS, **({"Origin": origin} if origin is not None else {}))
    return app.test_client().get("/sessions/s1/ws", headers=headers, base_url=base_url).status_code


def test_websocket_origin_must_match_scheme_host_and_port(app):
    assert _handshake(app, "http://localhost") == 401
    assert _handshake(app, "http://localhost:80") == 401
    assert _handshake(app, "https://localhost") == 403  # same host, other scheme
    assert _handshake(app, "http://localhost:8080") == 403  # same host, other port
    assert _handshake(app, "http://localhost.evil.example") == 403
    assert _handshake(app, "null") == 403
    assert _handshake(app, None) == 403
    assert _handshake(app, "http://127.0.0.1:5000", base_url="http://127.0.0.1:5000") == 401
    assert _handshake(app, "https://127.0.0.1:5000", base_url="http://127.0.0.1:5000") == 403


def test_websocket_origin_against_public_url(app, database_url):
    from glyphoxa_htmx.app import create_app

    behind_proxy = create_app(make_settings(database_url, public_url="https://app.example"))
    assert _handshake(behind_proxy, "https://app.example") == 401
    assert _handshake(behind_proxy, "https://app.example:443") == 401
    assert _handshake(behind_proxy, "http://app.example") == 403
    assert _handshake(behind_proxy, "https://app.example:8443") == 403
