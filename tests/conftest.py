"""Shared fixtures. Every test talks to a real PostgreSQL: the system server when reachable
(TEST_DATABASE_URL or 127.0.0.1:5432), else the embedded pgserver one under instance/. The
gateway is the simulator, over a real gRPC channel on localhost."""

from __future__ import annotations

import os
import re
import secrets
import uuid
from pathlib import Path

import psycopg
import pytest
from bs4 import BeautifulSoup

from glyphoxa_htmx import embedded

ROOT = Path(__file__).resolve().parent.parent
# One database per test run (pid), so concurrent runs on one machine never trample each other.
TEST_DB = f"glyphoxa_test_{os.getpid()}"
TEST_SECRET_KEY = "test-secret-key-" + "x" * 32
GATEWAY_SECRET = "test-mgmt-secret"


def _server_url() -> str:
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        return explicit
    if embedded.reachable(embedded.SYSTEM_URL):
        return embedded.SYSTEM_URL
    return embedded.embedded_server_url(ROOT / "instance" / "pgtest")


@pytest.fixture(scope="session")
def database_url():
    """libpq URL (postgresql://...) of a database created empty for this test run, dropped after."""
    server = _server_url()
    url = embedded.recreate_database(server, TEST_DB)
    yield url
    # WITH (FORCE) ends the app's pooled connections; a leftover database would only waste disk.
    with psycopg.connect(embedded.libpq_url(server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{TEST_DB}" WITH (FORCE)')


@pytest.fixture(scope="session")
def gateway_schema(database_url):
    """The gateway-owned public.* tables, created by the simulator's copy of the gateway DDL."""
    from glyphoxa_htmx.simulator.ddl import ensure_public_schema

    with psycopg.connect(database_url, autocommit=True) as conn:
        ensure_public_schema(conn)
    return database_url


@pytest.fixture(scope="session")
def simulator(gateway_schema):
    from glyphoxa_htmx.simulator.server import GatewaySimulator

    sim = GatewaySimulator(
        gateway_schema,
        secret=GATEWAY_SECRET,
        listen="127.0.0.1:0",
        activation_delay=0.2,
        line_interval=0.3,
        heartbeat_interval=0.5,
    )
    sim.start()
    yield sim
    sim.stop()


def make_settings(database_url: str, tmp_path_factory=None, **overrides):
    from glyphoxa_htmx.config import load_settings

    base = dict(
        env="development",
        secret_key=TEST_SECRET_KEY,
        database_url=database_url,
        instance_dir=str(ROOT / "instance" / "test"),
        log_json=False,
        log_level="WARNING",
        dev_login=True,
        seed_demo=False,
        gateway_simulator=False,
    )
    base.update(overrides)
    return load_settings(environ={}, **base)


@pytest.fixture(scope="session")
def app(database_url, simulator):
    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.bootstrap import migrate_db

    application = create_app(
        make_settings(
            database_url, gateway_grpc_addr=simulator.address, gateway_secret=GATEWAY_SECRET, gateway_timeout=3.0
        )
    )
    application.config["TESTING"] = True
    migrate_db(application)
    return application


@pytest.fixture(scope="module")
def provider():
    """A local Discord OAuth2 provider over real HTTP (tests/support/oauth_provider.py)."""
    from tests.support.oauth_provider import FakeDiscord

    fake = FakeDiscord().start()
    yield fake
    fake.stop()


@pytest.fixture
def oauth_app(app, database_url, simulator, provider):
    """An app that signs in with Discord through the local provider (no dev sign-in)."""
    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.extensions import db

    application = create_app(
        make_settings(
            database_url,
            dev_login=False,
            discord_client_id=provider.client_id,
            discord_client_secret=provider.client_secret,
            discord_api_base=provider.base,
            gateway_grpc_addr=simulator.address,
            gateway_secret=GATEWAY_SECRET,
        )
    )
    application.config["TESTING"] = True
    yield application
    with application.app_context():
        db.engine.dispose()  # the database server is shared: don't keep this app's pool open


WEB_TABLES = [
    "web.audit_log",
    "web.login_sessions",
    "web.users",
    "web.tenants",
    "web.campaigns",
    "web.npc_positions",
    "web.guild_claims",
    "web.provider_configs",
    "web.tenant_invitations",
    "web.campaign_tombstones",
    "web.subscriptions",
    "web.invoices",
    "web.billing_events",
    "web.voice_samples",
    "web.support_replies",
    "web.support_tickets",
]
GATEWAY_TABLES = ["public.sessions", "public.usage_records", "public.npc_definitions", "public.tenants"]


@pytest.fixture(autouse=True)
def clean_db(request, database_url):
    """Each test starts from empty tables (web-owned and gateway-owned) and no tenant schemas."""
    if "app" not in request.fixturenames and "client" not in request.fixturenames:
        yield
        return
    app = request.getfixturevalue("app")
    from glyphoxa_htmx.extensions import limiter

    limiter.reset()  # rate-limit counters are per process; each test starts fresh
    from glyphoxa_htmx.services import campaigns, sessions, transcripts

    transcripts.forget_settled()  # ended sessions' transcript figures are cached per process; ids repeat
    transcripts.forget_memory_tables()  # which memory tables exist: per process too, and schemas go
    campaigns.forget_directories()  # the campaign directories are per process too; tables are emptied
    sessions.forget_kept_rows()  # settled sessions' rows, per process too; ids repeat
    yield
    with app.app_context():
        from glyphoxa_htmx.extensions import db

        db.session.remove()
    with psycopg.connect(database_url, autocommit=True) as conn:
        tables = [
            t
            for t in WEB_TABLES + GATEWAY_TABLES
            if conn.execute("SELECT to_regclass(%s)", (t,)).fetchone()[0] is not None
        ]
        extra = [
            r[0]
            for r in conn.execute(
                "SELECT table_schema || '.' || table_name FROM information_schema.tables "
                "WHERE table_schema = 'web' AND table_name <> 'alembic_version'"
            )
        ]
        tables = sorted(set(tables) | set(extra))
        if tables:
            conn.execute("TRUNCATE " + ", ".join(tables) + " RESTART IDENTITY CASCADE")
        for (schema,) in conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'tenant\\_%'").fetchall():
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


# ---- factories and a browser-like client ---------------------------------------------------


@pytest.fixture
def make_tenant(app):
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import Tenant

    def _make(tenant_id: str | None = None, name: str = "Test table", status: str = "active"):
        tenant_id = tenant_id or "t_" + uuid.uuid4().hex[:10]
        with app.app_context():
            db.session.add(Tenant(id=tenant_id, name=name, status=status))
            db.session.commit()
        return tenant_id

    return _make


@pytest.fixture
def make_user(app, make_tenant):
    """A user (and a tenant unless one is given). Returns a plain namespace, detached from any session."""
    from types import SimpleNamespace

    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import User

    def _make(role: str = "tenant_owner", tenant_id: str | None = None, name: str | None = None, status="active"):
        tenant_id = tenant_id or make_tenant()
        with app.app_context():
            user = User(
                id=str(uuid.uuid4()),
                tenant_id=tenant_id,
                name=name or f"{role} user",
                role=role,
                discord_id="test-" + secrets.token_hex(6),
                status=status,
            )
            db.session.add(user)
            db.session.commit()
            return SimpleNamespace(id=user.id, tenant_id=tenant_id, role=role, name=user.name)

    return _make


class Browser:
    """Flask test client that behaves like our pages: sends the CSRF header htmx would send."""

    CSRF_RE = re.compile(r'"X-CSRFToken": "([^"]+)"')

    def __init__(self, app):
        self.app = app
        self.client = app.test_client()
        self._csrf: str | None = None

    def csrf_token(self) -> str:
        """The token a page would carry now. CSRF tokens are renewed at sign-in, sign-out and
        privilege gains, so it is fetched again after each of those (the landing page renders it
        for visitors; a signed-in user is sent on, and their sessions page renders it)."""
        if self._csrf is None:
            match = None
            for url in ("/", "/account/sessions"):
                match = self.CSRF_RE.search(self.client.get(url).get_data(as_text=True))
                if match:
                    break
            assert match, "no CSRF token on the landing or sessions page"
            self._csrf = match.group(1)
        return self._csrf

    def login(self, user) -> Browser:
        from glyphoxa_htmx.extensions import db
        from glyphoxa_htmx.models import User
        from glyphoxa_htmx.services import auth

        self.csrf_token()  # a visitor's token first, like a browser that opened the site before signing in
        with self.app.test_request_context():
            token = auth.start_session(db.session.get(User, user.id), ip="127.0.0.1", user_agent="pytest")
        self.client.set_cookie("gx_session", token)
        self.token = token
        self._csrf = None  # renewed at sign-in
        return self

    def _headers(self, htmx: bool, headers: dict | None) -> dict:
        out = dict(headers or {})
        if htmx:
            out.setdefault("HX-Request", "true")
        return out

    def get(self, url, htmx=False, headers=None, **kw):
        return self._after(url, self.client.get(url, headers=self._headers(htmx, headers), **kw))

    def _after(self, url: str, resp):
        if url.startswith("/auth/") and resp.status_code < 400:
            self._csrf = None  # signed in, out or rotated: the page would carry a renewed token
        return resp

    def post(self, url, data=None, htmx=False, headers=None, csrf=True, **kw):
        h = self._headers(htmx, headers)
        if csrf:
            h.setdefault("X-CSRFToken", self.csrf_token())
        return self._after(url, self.client.post(url, data=data or {}, headers=h, **kw))

    def request(self, method, url, htmx=False, headers=None, csrf=True, **kw):
        h = self._headers(htmx, headers)
        if csrf and method.upper() not in {"GET", "HEAD", "OPTIONS"}:
            h.setdefault("X-CSRFToken", self.csrf_token())
        return self._after(url, self.client.open(url, method=method, headers=h, **kw))


@pytest.fixture
def visitor(app):
    """An anonymous Browser (the name `browser` belongs to pytest-playwright)."""
    return Browser(app)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def as_role(app, make_user):
    """as_role('dm') -> a Browser signed in as a new user with that role in a new tenant."""

    def _as(role: str = "tenant_owner", tenant_id: str | None = None):
        user = make_user(role=role, tenant_id=tenant_id)
        b = Browser(app).login(user)
        b.user = user
        return b

    return _as


def soup(response) -> BeautifulSoup:
    return BeautifulSoup(response.get_data(as_text=True), "html.parser")


# -- the live area's shared fixtures (sessions, live page, faults, transcript order, German) ----------


@pytest.fixture(scope="module")
def server(app):
    """A real HTTP + WebSocket server (werkzeug, a thread) serving the app, one per test module."""
    from tests.support.ws_server import LiveServer

    s = LiveServer(app)
    yield s
    s.close()


@pytest.fixture
def table(app, as_role, database_url):
    """A DM in a tenant registered with the simulated gateway, with one campaign; the tenant's
    live sessions are stopped afterwards. (test_usage and test_tenant_delete have tables of
    their own.)"""
    from types import SimpleNamespace

    from tests.support.ws_server import gateway_tenant, make_campaign, stop_live_sessions

    dm = as_role("dm")
    tenant = dm.user.tenant_id
    guild = gateway_tenant(app, tenant)[0]
    campaign = make_campaign(app, tenant)
    yield SimpleNamespace(dm=dm, tenant=tenant, guild=guild, campaign=campaign)
    stop_live_sessions(app, database_url, tenant)
