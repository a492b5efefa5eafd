"""Game-night polish (issue 11) checks that need no browser: wording, stale facts, setup
guidance, the first run's dev sign-in and create-admin."""

from __future__ import annotations

import json

from click.testing import CliRunner
from markupsafe import Markup

from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import Tenant, User
from tests.conftest import Browser, soup


def test_device_names_come_from_the_user_agent_parser():
    from glyphoxa_htmx.services.devices import device_name

    assert device_name("Mozilla/5.0 (Android 14; Mobile; rv:128.0) Gecko/128.0 Firefox/128.0") == "Firefox on Android"
    assert (
        device_name(
            "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
            "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
        )
        == "Safari on iPhone"
    )
    assert (
        device_name(
            "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
            "Chrome/126.0.0.0 Safari/537.36"
        )
        == "Chrome on Windows"
    )
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
    resp = owner.post(
        f"/campaigns/{cid}/npcs",
        {"name": "Deep Thinker", "personality": "Thinks.", "engine": "sentence_cascade", "budget_tier": "deep"},
    )
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


def test_demo_dm_is_the_preselected_dev_user_and_create_admin_takes_a_name(
    app, database_url, visitor, make_user, monkeypatch
):
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


# ---- sessions: start warning, live page, stop reload, setup guidance --------------------------


def _table(app, as_role, role="dm"):
    from types import SimpleNamespace

    from tests.support.ws_server import gateway_tenant, make_campaign

    dm = as_role(role)
    guilds = gateway_tenant(app, dm.user.tenant_id)
    return SimpleNamespace(
        dm=dm, tenant=dm.user.tenant_id, guild=guilds[0], campaign=make_campaign(app, dm.user.tenant_id)
    )


def _start(t, **extra):
    return t.dm.post(
        "/sessions/new", {"campaign_id": t.campaign, "guild_id": t.guild, "channel_id": "987654321098765432", **extra}
    )


def test_campaign_without_npcs_asks_before_starting_without_js(app, as_role, database_url):
    from tests.support.ws_server import sql, stop_live_sessions

    t = _table(app, as_role)
    try:
        resp = _start(t)
        assert resp.status_code == 422
        page = soup(resp)
        assert "This campaign has no NPCs — start anyway?" in page.select_one("#empty-cast").get_text()
        assert page.select_one("#empty-cast button[name=empty_cast_ok][value='1']") is not None
        assert page.select_one("#channel_id")["value"] == "987654321098765432"  # nothing retyped
        assert not sql(database_url, "SELECT id FROM public.sessions WHERE tenant_id = %s", (t.tenant,))
        resp = _start(t, empty_cast_ok="1")
        assert resp.status_code == 303 and resp.headers["Location"].endswith("/live")
        # No flashed "Session starting…" that would outlive the start: the live page says it.
        live = soup(t.dm.get(resp.headers["Location"]))
        assert not [n for n in live.select(".notice") if "Session starting" in n.get_text()]
        assert live.select_one("#live-actions button").get_text() == "Stop session"
        assert live.select_one("#live-timer")["data-started"]
        assert "reported by the voice service" in live.select_one("#npc-controls").get_text()
    finally:
        stop_live_sessions(app, database_url, t.tenant)


def test_viewer_sees_the_timer_but_no_stop(app, as_role, database_url):
    from tests.support.ws_server import stop_live_sessions

    t = _table(app, as_role)
    try:
        resp = _start(t, empty_cast_ok="1")
        sid = resp.headers["Location"].split("/")[2]
        viewer = Browser(app).login(type("U", (), {"id": _user(app, t.tenant, "viewer").id}))
        page = soup(viewer.get(f"/sessions/{sid}/live"))
        assert page.select_one("#live-timer") is not None
        assert page.select_one("#live-actions form") is None
    finally:
        stop_live_sessions(app, database_url, t.tenant)


def _user(app, tenant_id, role):
    import uuid

    with app.app_context():
        user = User(
            id=str(uuid.uuid4()),
            tenant_id=tenant_id,
            name=f"{role} person",
            role=role,
            discord_id="test-" + uuid.uuid4().hex[:12],
        )
        db.session.add(user)
        db.session.commit()
        return type("U", (), {"id": user.id})


def test_reloading_the_stop_confirmation_shows_the_session(app, as_role, database_url):
    from tests.support.ws_server import stop_live_sessions

    t = _table(app, as_role)
    try:
        sid = _start(t, empty_cast_ok="1").headers["Location"].split("/")[2]
        confirm = t.dm.post(f"/sessions/{sid}/stop")  # no JavaScript: the confirmation page
        assert confirm.status_code == 200 and "Stop this session" in confirm.get_data(as_text=True)
        reload = t.dm.get(f"/sessions/{sid}/stop")
        assert reload.status_code == 303 and reload.headers["Location"] == f"/sessions/{sid}"
        assert Browser(app).get(f"/sessions/{sid}/stop").status_code in (302, 303)  # signed out: sign-in
    finally:
        stop_live_sessions(app, database_url, t.tenant)


def test_channel_id_is_checked_inline_and_recent_channels_are_offered(app, as_role, database_url):
    from tests.support.ws_server import stop_live_sessions

    t = _table(app, as_role)
    bad = t.dm.post("/sessions/new/check-channel", {"channel_id": "12ab"}, htmx=True)
    assert "isn't a channel id" in bad.get_data(as_text=True)
    good = t.dm.post("/sessions/new/check-channel", {"channel_id": "987654321098765432"}, htmx=True)
    assert "Looks like a channel id" in good.get_data(as_text=True)
    try:
        _start(t, empty_cast_ok="1")
        page = soup(t.dm.get("/sessions/new"))
        assert [o["value"] for o in page.select("#recent-channels option")] == ["987654321098765432"]
        assert page.select_one("#channel_id")["list"] == "recent-channels"
    finally:
        stop_live_sessions(app, database_url, t.tenant)


def test_no_discord_server_links_to_the_fix_and_the_bot_badge_agrees(app, as_role):
    owner = as_role("tenant_owner")
    app.extensions["glyphoxa.gateway"].create_tenant(owner.user.tenant_id, license_tier="shared", guild_ids=[])
    start = soup(owner.get("/sessions/new"))
    note = start.select_one(".notice-warn")
    assert "no Discord server" in note.get_text() and note.select_one("a")["href"].startswith("/settings")
    listing = soup(owner.get("/sessions"))
    assert "Bot connected" not in listing.get_text()
    assert listing.select_one("a.badge")["href"].startswith("/settings")


def test_team_is_in_the_navigation(app, as_role):
    page = soup(as_role("viewer").get("/dashboard"))
    assert [a for a in page.select("nav#nav a") if a.get_text(strip=True) == "Team"][0]["href"] == "/team"


def test_bad_jump_to_time_comes_back_with_the_lines_and_the_field(app, as_role, database_url):
    from tests.support.ws_server import make_campaign, seed

    owner = as_role("tenant_owner")
    (sid,) = seed(database_url, owner.user.tenant_id, make_campaign(app, owner.user.tenant_id), sessions=1)
    resp = owner.get(f"/sessions/{sid}/transcript?at=soon", htmx=True)
    assert resp.status_code == 422
    page = soup(resp)
    assert "hours:minutes" in page.select_one("[role=alert]").get_text()
    field = page.select_one("#at-field[hx-swap-oob]")
    assert field.select_one("#t-at")["aria-invalid"] == "true"


def test_remembered_navigation_follows_role_page_and_language(app, as_role):
    """The side navigation is rendered once per (page, permissions, language) and reused: an
    owner's "Audit log", an operator's "Admin" or one page's highlight never leak into another
    request's navigation."""

    def nav(browser, url, lang="en"):
        html = soup(browser.get(url, headers={"Accept-Language": lang}))
        links = html.select("nav#nav li a")
        return [a.get_text(strip=True) for a in links], [a.get_text(strip=True) for a in links if a.get("aria-current")]

    owner, dm, operator = as_role("tenant_owner"), as_role("dm"), as_role("super_admin")
    for _round in range(2):  # the second round is served from what the first remembered
        names, current = nav(owner, "/sessions")
        assert "Audit log" in names and "Admin" not in names and current == ["Sessions"]
        names, current = nav(dm, "/sessions")
        assert "Audit log" not in names and "Admin" not in names and current == ["Sessions"]
        names, current = nav(operator, "/sessions")
        assert "Admin" in names and current == ["Sessions"]
        names, current = nav(dm, "/campaigns")
        assert current == ["Campaigns"]
        names, current = nav(dm, "/sessions", "de")
        assert "Sitzungen" in names and "Sessions" not in names and current == ["Sitzungen"]


def test_per_list_urls_match_url_for_for_ids_minted_by_others(app):
    """id_url builds a list's URL once and fills in each row's id: every result must be
    url_for's, including ids the gateway minted with spaces, slashes, percent signs or umlauts."""
    from flask import render_template_string, url_for

    odd = ["npc_1", "a b", "x/y", "Grüße", "%41", "?q#f", "<b>&'\"", 42]
    with app.test_request_context("/campaigns/c1"):
        html = render_template_string(
            "{% set edit = id_url('npcs.edit', 'npc_id') %}{% for i in ids %}{{ edit(i) }}\n{% endfor %}"
            "{% set nested = id_url('npcs.index', 'campaign_id', page=2) %}{% for i in ids %}{{ nested(i) }}\n{% endfor %}",
            ids=odd,
        )
        expected = [str(Markup.escape(url_for("npcs.edit", npc_id=i))) for i in odd] + [
            str(Markup.escape(url_for("npcs.index", campaign_id=i, page=2))) for i in odd
        ]
    assert html.splitlines() == expected


def test_a_rows_several_urls_match_url_for(app):
    """id_urls quotes a row's id once for several endpoints whose converters are alike (the cast's
    edit, move, duplicate and delete links); each URL must be url_for's, odd ids included, and an
    endpoint whose shape can't be split falls back to url_for for all of them."""
    from flask import url_for

    from glyphoxa_htmx.core.markup import id_urls

    odd = ["npc_1", "a b", "x/y", "Grüße", "%41", "?q#f", "<b>&'\"", 42]
    endpoints = ("npcs.edit", "npcs.move", "npcs.duplicate", "npcs.confirm_delete")
    with app.test_request_context("/campaigns/c1"):
        urls = id_urls("npc_id", *endpoints)
        assert [urls(i) for i in odd] == [tuple(url_for(e, npc_id=i) for e in endpoints) for i in odd]
        mixed = id_urls("campaign_id", "campaigns.show", "campaigns.index")  # the 2nd: no such path argument
        assert [mixed(i) for i in odd] == [
            (url_for("campaigns.show", campaign_id=i), url_for("campaigns.index", campaign_id=i)) for i in odd
        ]


def test_template_url_for_with_one_path_argument_matches_url_for(app):
    """Templates' url_for remembers the shape of a URL whose one argument is in its path (app.py
    template_url_for): every result must still be Flask's url_for's, for odd ids, under another
    script root, and for arguments that aren't in the path (query strings) or aren't str/int."""
    from flask import render_template_string, url_for

    odd = ["c1", "a b", "x/y", "Grüße", "%41", "?q#f", "<b>&'\"", 42, "", None, 4.5]
    calls = [
        ("campaigns.show", "campaign_id"),
        ("npcs.edit", "npc_id"),
        ("sessions.transcript", "session_id"),
        ("static", "filename"),
        ("campaigns.index", "page"),  # a query argument, not in the path
        ("campaigns.index", "q"),
    ]
    for root in ("", "/gx"):
        with app.test_request_context("/campaigns", environ_base={"SCRIPT_NAME": root}):
            for endpoint, arg in calls:
                for value in odd:
                    try:
                        want = url_for(endpoint, **{arg: value})
                    except Exception as exc:  # noqa: BLE001 - the template must fail the same way
                        want = type(exc).__name__
                    for _ in range(2):  # (the second time from the remembered shape)
                        try:
                            got = render_template_string("{{ url_for(e, **{a: v}) }}", e=endpoint, a=arg, v=value)
                        except Exception as exc:  # noqa: BLE001
                            got = type(exc).__name__
                        assert got == (str(Markup.escape(want)) if "/" in want else want), (root, endpoint, value)
