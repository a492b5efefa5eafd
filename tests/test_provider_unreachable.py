"""A sign-in provider that can't be reached gives the user a clear message on the sign-in page
(503), never a 500, and /readyz doesn't depend on it. Google's discovery document and Discord's
token endpoint are served by local HTTP servers that go down and come back."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import requests

from tests.conftest import GATEWAY_SECRET, Browser, make_settings, soup
from tests.support.oauth_provider import FakeDiscord


class Discovery:
    """Google's OpenID discovery document, or a 503, as told."""

    def __init__(self):
        self.up = False
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802
                if not owner.up:
                    self.send_response(503)
                    self.end_headers()
                    return
                body = json.dumps(
                    {
                        "issuer": "https://accounts.example",
                        "authorization_endpoint": "https://accounts.example/o/oauth2/v2/auth",
                        "token_endpoint": "https://accounts.example/token",
                        "jwks_uri": "https://accounts.example/certs",
                        "userinfo_endpoint": "https://accounts.example/userinfo",
                    }
                ).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/.well-known/openid-configuration"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def _closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def _app(database_url, simulator, **extra):
    from glyphoxa_htmx.app import create_app

    application = create_app(
        make_settings(
            database_url,
            dev_login=False,
            gateway_grpc_addr=simulator.address,
            gateway_secret=GATEWAY_SECRET,
            google_client_id="g-id",
            google_client_secret="g-secret",
            **extra,
        )
    )
    application.config["TESTING"] = True
    return application


def test_google_discovery_down_then_back(app, database_url, simulator):
    discovery = Discovery()
    application = _app(database_url, simulator, google_discovery_url=discovery.url)
    b = Browser(application)
    resp = b.get("/auth/google")  # the discovery document answers 503
    assert resp.status_code == 503
    alert = soup(resp).select_one(".notice-error, [role=alert]")
    assert alert and "Google sign-in is unavailable right now" in alert.get_text()
    assert application.test_client().get("/readyz").status_code == 200  # readiness doesn't depend on it
    # It comes back: the same button works, straight to Google's authorize endpoint.
    discovery.up = True
    resp = b.get("/auth/google")
    assert resp.status_code == 302
    assert resp.headers["Location"].startswith("https://accounts.example/o/oauth2/v2/auth?")
    discovery.server.shutdown()


def test_google_unreachable_host_and_other_provider_offered(app, database_url, simulator):
    fake = FakeDiscord().start()
    try:
        application = _app(
            database_url,
            simulator,
            google_discovery_url=f"http://127.0.0.1:{_closed_port()}/.well-known/openid-configuration",
            discord_client_id=fake.client_id,
            discord_client_secret=fake.client_secret,
            discord_api_base=fake.base,
        )
        resp = Browser(application).get("/auth/google")
        assert resp.status_code == 503
        text = soup(resp).get_text(" ")
        assert "Google sign-in is unavailable right now" in text and "sign in with Discord" in text
    finally:
        fake.stop()


def test_discord_token_endpoint_down_at_the_callback(app, database_url, simulator):
    fake = FakeDiscord().start()
    application = _app(
        database_url,
        simulator,
        discord_client_id=fake.client_id,
        discord_client_secret=fake.client_secret,
        discord_api_base=fake.base,
    )
    b = Browser(application)
    authorize_url = b.get("/auth/discord").headers["Location"]
    back = requests.get(authorize_url, allow_redirects=False, timeout=5).headers["Location"]
    fake.stop()  # Discord goes away between the consent screen and the callback
    cb = urlsplit(back)
    assert parse_qs(cb.query)["code"]
    resp = b.get(cb.path + "?" + cb.query)
    assert resp.status_code == 503
    assert "Discord sign-in is unavailable right now" in soup(resp).get_text(" ")
