"""Browser tests: Debian's Chromium driven by Playwright against the app on a real HTTP server.

Playwright cannot download browsers here, so we launch /usr/bin/chromium. Without Chromium the
tests skip, unless REQUIRE_BROWSER=1 (CI), where a missing browser is a failure."""

from __future__ import annotations

import os
import shutil
import threading

import pytest
from werkzeug.serving import make_server

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


def pytest_collection_modifyitems(config, items):
    if os.path.exists(CHROMIUM):
        return
    if os.environ.get("REQUIRE_BROWSER") == "1":
        raise pytest.UsageError(f"REQUIRE_BROWSER=1 but no Chromium at {CHROMIUM}")
    skip = pytest.mark.skip(reason="Debian's chromium is not installed (apt-get install chromium)")
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(skip)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    }


@pytest.fixture(scope="session")
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def signed_in_page(page, live_server, app):
    """A page signed in through the dev sign-in form as a new table owner."""

    def _sign_in(name: str = "Browser DM"):
        page.goto(live_server + "/auth/signin")
        page.get_by_text("Create a new dev user").click()
        page.fill("#dev-name", name)
        page.get_by_role("button", name="Create and enter").click()
        page.wait_for_url(live_server + "/dashboard")
        return page

    return _sign_in


def tenant_of(app, name: str) -> str:
    """The tenant of the dev user ``signed_in_page`` created under ``name``."""
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import User

    with app.app_context():
        return db.session.query(User).filter_by(name=name).one().tenant_id


@pytest.fixture
def open_transcript(signed_in_page, live_server, page, app, database_url):
    """Signs in as a new table owner ``name``, seeds one ended session with its transcript in a new
    campaign, and opens that transcript; returns (tenant id, session id)."""
    from tests.support.ws_server import make_campaign, seed

    def _open(name: str, campaign_name: str) -> tuple[str, str]:
        signed_in_page(name)
        tenant = tenant_of(app, name)
        campaign = make_campaign(app, tenant, campaign_name)
        (session_id,) = seed(database_url, tenant, campaign, sessions=1)
        page.goto(f"{live_server}/sessions/{session_id}/transcript")
        return tenant, session_id

    return _open
