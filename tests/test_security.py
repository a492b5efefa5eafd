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
from tests.support.polling import wait_healthy

PROD = dict(
    env="production",
    secret_key="k" * 40,
    discord_client_id="id",
    discord_client_secret="sec",
    database_url="postgresql://db/x",
    gateway_grpc_addr="gw:50051",
    gateway_secret="s",
    public_url="https://app.example",
    metrics_token="m" * 24,
)


def _dispose(*apps) -> None:
    """Close the pooled connections of apps built inside a test (the database server is shared)."""
    for application in apps:
        with application.app_context():
            db.engine.dispose()


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
    _dispose(public, forced)


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


@pytest.mark.parametrize(
    "method, url, data, status",
    [
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
    ],
)
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

WS_HEADERS = {
    "Upgrade": "websocket",
    "Connection": "Upgrade",
    "Sec-WebSocket-Version": "13",
    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
}


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
    _dispose(behind_proxy)


# ---- 7. CSRF tokens are renewed at sign-in, sign-out and privilege gains ---------------------

CSRF_EXPIRED = "Your form expired"


def _post_with(b: Browser, url: str, token: str, data=None):
    return b.client.post(url, data=data or {}, headers={"X-CSRFToken": token})


def test_csrf_token_from_before_sign_in_stops_working_after_it(app, visitor):
    before = visitor.csrf_token()
    assert visitor.post("/auth/dev", {"name": "Renewed Rita"}).status_code == 303
    stale = _post_with(visitor, "/settings/name", before, {"name": "Stale"})
    assert stale.status_code == 400 and CSRF_EXPIRED in stale.get_data(as_text=True)
    fresh = visitor.csrf_token()
    assert fresh != before
    assert _post_with(visitor, "/settings/name", fresh, {"name": "Fresh"}).status_code == 303


def test_csrf_token_from_before_sign_out_stops_working_after_it(app, as_role):
    b = as_role("tenant_owner")
    signed_in = b.csrf_token()
    assert b.post("/auth/logout").status_code == 303
    assert _post_with(b, "/auth/dev", signed_in, {"name": "After"}).status_code == 400
    assert b.post("/auth/dev", {"name": "After"}).status_code == 303


def test_csrf_token_is_renewed_when_privileges_grow_but_kept_when_they_shrink(app, as_role, make_user):
    owner = as_role("tenant_owner")
    viewer_user = make_user(role="viewer", tenant_id=owner.user.tenant_id)
    viewer = Browser(app).login(viewer_user)
    as_viewer = viewer.csrf_token()
    assert owner.post(f"/team/{viewer_user.id}/role", {"role": "tenant_owner"}).status_code == 303
    stale = _post_with(viewer, "/settings/name", as_viewer, {"name": "Promoted"})
    assert stale.status_code == 400 and CSRF_EXPIRED in stale.get_data(as_text=True)
    viewer._csrf = None  # reload the page
    as_owner = viewer.csrf_token()
    assert as_owner != as_viewer
    assert _post_with(viewer, "/settings/name", as_owner, {"name": "Promoted"}).status_code == 303
    # Demoted again: the token stays (it can do less now), and the refusal is the role's 403.
    assert owner.post(f"/team/{viewer_user.id}/role", {"role": "viewer"}).status_code == 303
    assert _post_with(viewer, "/settings/name", as_owner, {"name": "Again"}).status_code == 403


# ---- 6. a rotation doesn't sign out requests already in flight ------------------------------


def _session_rows(app, user_id):
    from glyphoxa_htmx.models import LoginSession

    with app.app_context():
        return [
            (r.revoked_at, r.revoked_reason, r.rotated_at)
            for r in db.session.execute(
                select(LoginSession).where(LoginSession.user_id == user_id).order_by(LoginSession.created_at)
            ).scalars()
        ]


def test_parallel_requests_with_the_previous_cookie_survive_a_rotation(app, as_role):
    """A real threaded server; one browser (one user agent) renews its session while a burst of
    htmx requests still carries the previous cookie. Nobody is signed out."""
    import threading

    import requests

    from tests.support.ws_server import LiveServer

    b = as_role("dm")
    old = b.token
    server = LiveServer(app)
    ua = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64) Chromium/131"}
    try:
        browser = requests.Session()
        browser.headers.update(ua)
        browser.cookies.set("gx_session", old)
        page = browser.get(server.url + "/account/sessions", timeout=10)
        token = Browser.CSRF_RE.search(page.text).group(1)
        barrier = threading.Barrier(9)
        codes: list[int] = []
        refreshed = {}

        def in_flight():
            barrier.wait()
            for _ in range(3):
                resp = requests.get(
                    server.url + "/sessions",
                    headers={**ua, "HX-Request": "true"},
                    cookies={"gx_session": old, **{k: v for k, v in browser.cookies.items() if k == "gx_flash"}},
                    allow_redirects=False,
                    timeout=10,
                )
                codes.append(resp.status_code)

        def renew():
            barrier.wait()
            resp = browser.post(
                server.url + "/auth/refresh", headers={"X-CSRFToken": token}, allow_redirects=False, timeout=10
            )
            refreshed["status"] = resp.status_code
            refreshed["token"] = resp.cookies.get("gx_session")

        threads = [threading.Thread(target=in_flight) for _ in range(8)] + [threading.Thread(target=renew)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert refreshed["status"] == 303 and refreshed["token"] and refreshed["token"] != old
        assert codes == [200] * 24, codes
        # After the burst: the previous cookie still resolves within the grace window (same
        # browser), the new one works, and the family is intact.
        again = requests.get(
            server.url + "/dashboard", headers=ua, cookies={"gx_session": old}, allow_redirects=False, timeout=10
        )
        assert again.status_code == 200
        new = requests.get(
            server.url + "/dashboard",
            headers=ua,
            cookies={"gx_session": refreshed["token"]},
            allow_redirects=False,
            timeout=10,
        )
        assert new.status_code == 200
        assert all(revoked is None for revoked, _, _ in _session_rows(app, b.user.id))
    finally:
        server.close()


def test_previous_cookie_after_the_grace_window_revokes_the_family(app, as_role):
    from datetime import timedelta

    from glyphoxa_htmx.models import LoginSession
    from glyphoxa_htmx.services.auth import ROTATION_GRACE, hash_token

    b = as_role("dm")
    old = b.token
    resp = b.post("/auth/refresh")
    assert resp.status_code == 303 and b.get("/dashboard").status_code == 200
    with app.app_context():
        row = db.session.execute(select(LoginSession).where(LoginSession.token_hash == hash_token(old))).scalar_one()
        row.rotated_at = row.rotated_at - ROTATION_GRACE - timedelta(seconds=1)
        db.session.commit()
    late = Browser(app)
    late.client.set_cookie("gx_session", old)
    assert late.get("/dashboard").status_code == 303  # same user agent, but too late: reuse
    assert b.get("/dashboard").status_code == 303  # the whole family is revoked
    assert {reason for _, reason, _ in _session_rows(app, b.user.id)} == {"reuse_detected"}


def test_concurrent_refreshes_with_one_token_rotate_once(app, as_role):
    import threading

    b = as_role("dm")
    token = b.csrf_token()
    barrier = threading.Barrier(4)
    results = []

    def refresh():
        client = app.test_client()
        client.set_cookie("gx_session", b.token)
        for name, value in ((c.key, c.value) for c in b.client._cookies.values() if c.key == "gx_flash"):
            client.set_cookie(name, value)
        barrier.wait()
        resp = client.post("/auth/refresh", headers={"X-CSRFToken": token})
        results.append(
            (resp.status_code, [h for h in resp.headers.getlist("Set-Cookie") if h.startswith("gx_session=")])
        )

    threads = [threading.Thread(target=refresh) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [status for status, _ in results] == [303] * 4
    assert sum(1 for _, cookies in results if cookies) == 1  # one rotation; the others change nothing
    rows = _session_rows(app, b.user.id)
    assert len(rows) == 2 and all(revoked is None for revoked, _, _ in rows)


# ---- 9. every /auth/* route is rate limited --------------------------------------------------


def test_every_auth_route_is_limited_per_ip(app, visitor):
    from glyphoxa_htmx.extensions import limiter

    fill = {"provider": "discord"}
    checked = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith("auth.") or rule.endpoint == "auth.refresh":
            continue
        url = rule.rule.replace("<provider>", fill["provider"])
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            limiter.reset()
            b = Browser(app)
            codes = [b.request(method, url, data={"name": f"Limited {n}"}).status_code for n in range(11)]
            assert 429 not in codes[:10], (method, url, codes)
            assert codes[10] == 429, (method, url, codes)
            checked.append(rule.endpoint)
    assert {"auth.signin", "auth.oauth_start", "auth.oauth_callback", "auth.dev_signin", "auth.logout"} <= set(checked)


def test_refresh_is_limited_per_sign_in_session_not_per_ip(app, as_role):
    busy, neighbour = as_role("dm"), as_role("dm")  # two browsers behind one address
    codes = [busy.post("/auth/refresh").status_code for _ in range(11)]
    assert codes[:10] == [303] * 10 and codes[10] == 429
    assert busy.get("/dashboard").status_code == 200  # still signed in (with the last token)
    assert neighbour.post("/auth/refresh").status_code == 303  # its own budget


def test_refresh_without_a_session_is_limited_per_ip(app):
    codes = []
    for _ in range(11):
        b = Browser(app)
        b.client.set_cookie("gx_session", "not-a-session")
        codes.append(b.post("/auth/refresh").status_code)
    assert 429 not in codes[:10] and codes[10] == 429


def test_gunicorn_on_all_interfaces_serves_no_dev_signin(app, database_url, tmp_path):
    """Under gunicorn the real bind decides (deploy/gunicorn.conf.py passes it on as HOST): a
    development server listening on 0.0.0.0 has no dev sign-in unless it is forced."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    import requests

    from tests.test_gunicorn import ROOT, _free_port

    port = _free_port()
    env = {
        **os.environ,
        "GLYPHOXA_ENV": "development",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "g" * 40,
        "GUNICORN_BIND": f"0.0.0.0:{port}",
        "WEB_CONCURRENCY": "1",
        "LOG_LEVEL": "WARNING",
        "HOST": "127.0.0.1",
        "METRICS_ENABLED": "0",
    }
    env.pop("GLYPHOXA_DEV_LOGIN", None)
    proc = subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        page = requests.get(base + "/auth/signin", timeout=5)
        assert page.status_code == 200 and "development sign-in" not in page.text
    finally:
        proc.terminate()
        proc.wait(timeout=20)
