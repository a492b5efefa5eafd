"""Game-night polish (issue 11) checks that need no browser: wording, stale facts, setup
guidance, the first run's dev sign-in and create-admin."""

from __future__ import annotations

import json

from click.testing import CliRunner

from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import Tenant, User
from tests.conftest import Browser, soup


def test_device_names_come_from_the_user_agent_parser():
    from glyphoxa_htmx.services.devices import device_name

    assert device_name("Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0") == "Firefox on Android"
    assert device_name("Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
                       "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1") == "Safari on iPhone"
    assert device_name("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                       "Chrome/126.0.0.0 Safari/537.36") == "Chrome on Windows"
    assert device_name("") == "Unknown browser"
    assert device_name(None) == "Unknown browser"


def test_account_sessions_show_device_names_not_raw_strings(app, make_user):
    user = make_user()
    b = Browser(app)
    b.csrf_token()
    from glyphoxa_htmx.services import auth

    ua = "Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0"
    with app.test_request_context():
        token = auth.start_session(db.session.get(User, user.id), ip="127.0.0.1", user_agent=ua)
    b.client.set_cookie("gx_session", token)
    page = soup(b.get("/account/sessions"))
    cell = page.select_one("#session-list tbody td")
    assert "Firefox on Android" in cell.get_text()
    assert "Gecko/128.0" not in cell.get_text()


def test_role_change_toast_names_the_role(app, as_role, make_user):
    owner = as_role("tenant_owner")
    pat = make_user(role="viewer", tenant_id=owner.user.tenant_id, name="Pat")
    resp = owner.post(f"/team/{pat.id}/role", data={"role": "dm"}, htmx=True)
    assert json.loads(resp.headers["HX-Trigger"])["toast"]["message"] == "Pat is now a Dungeon Master."
    resp = owner.post(f"/team/{pat.id}/role", data={"role": "viewer"}, htmx=True)
    assert json.loads(resp.headers["HX-Trigger"])["toast"]["message"] == "Pat is now a Viewer."


def test_cast_badges_show_engine_and_tier_labels(app, as_role):
    from tests.test_npcs import new_campaign

    owner = as_role("tenant_owner")
    cid = new_campaign(app, owner.user)
    resp = owner.post(f"/campaigns/{cid}/npcs", {
        "name": "Deep Thinker", "personality": "Thinks.", "engine": "sentence_cascade", "budget_tier": "deep"})
    assert resp.status_code == 303, resp.get_data(as_text=True)
    page = soup(owner.get(f"/campaigns/{cid}"))
    badges = [b.get_text(strip=True) for b in page.select(".cast .badge")]
    assert "Sentence cascade" in badges and "Deep tier" in badges
    assert "sentence_cascade" not in badges and "deep" not in badges


def test_dev_sign_in_records_the_last_sign_in(app, visitor, make_user):
    user = make_user(name="Returning DM")
    with app.app_context():
        assert db.session.get(User, user.id).last_login_at is None
    resp = visitor.post("/auth/dev", data={"user_id": user.id})
    assert resp.status_code == 303
    with app.app_context():
        assert db.session.get(User, user.id).last_login_at is not None


def test_suspended_table_is_told_so_not_that_the_session_ended(app, as_role):
    b = as_role("dm")
    with app.app_context():
        db.session.get(Tenant, b.user.tenant_id).status = "suspended"
        db.session.commit()
    resp = b.get("/dashboard")
    assert resp.status_code == 303 and "blocked=table_suspended" in resp.headers["Location"]
    page = soup(b.get(resp.headers["Location"]))
    assert "This table is suspended — contact support." in page.get_text()
    assert "Your session ended" not in page.get_text()
    htmx = b.get("/team", htmx=True, headers={"HX-Current-URL": "http://localhost/team"})
    assert "blocked=table_suspended" in htmx.headers["HX-Redirect"]


def test_demo_dm_is_the_preselected_dev_user_and_create_admin_takes_a_name(app, database_url, visitor, make_user,
                                                                         monkeypatch):
    from glyphoxa_htmx.cli import main
    from glyphoxa_htmx.seed import seed_demo

    with app.app_context():
        seed_demo()
    make_user(name="Someone Newer")
    page = soup(visitor.get("/auth/signin"))
    first = page.select_one("#dev-user option")
    assert first.get_text().startswith("Demo DM")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("LOG_JSON", "0")
    result = CliRunner().invoke(main, ["create-admin", "--name", "Demo DM"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.query(User).filter_by(name="Demo DM").one().role == "super_admin"
    make_user(name="Twin")
    make_user(name="Twin")
    twice = CliRunner().invoke(main, ["create-admin", "--name", "Twin"])
    assert twice.exit_code == 1 and "--user-id" in twice.output
