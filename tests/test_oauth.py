"""Discord OAuth2 sign-in against a local provider over real HTTP (state + PKCE)."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import requests
from sqlalchemy import select

from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import User
from tests.conftest import Browser


def _start(b: Browser):
    resp = b.get("/auth/discord")
    assert resp.status_code == 302
    return resp.headers["Location"]


def test_full_authorization_code_flow_signs_up(oauth_app, provider):
    b = Browser(oauth_app)
    authorize_url = _start(b)
    params = parse_qs(urlsplit(authorize_url).query)
    assert authorize_url.startswith(provider.base + "/oauth2/authorize")
    assert params["scope"] == ["identify guilds email"]
    assert params["code_challenge_method"] == ["S256"] and params["state"][0]
    # The browser goes to the provider, which redirects back with a code.
    back = requests.get(authorize_url, allow_redirects=False, timeout=5).headers["Location"]
    cb = urlsplit(back)
    resp = b.get(cb.path + "?" + cb.query)
    assert resp.status_code == 303 and resp.headers["Location"] == "/dashboard"
    assert provider.token_requests[-1]["code_verifier"]  # PKCE verifier was sent and verified
    with oauth_app.app_context():
        user = db.session.execute(select(User).where(User.discord_id == provider.user["id"])).scalar_one()
        assert user.name == "Nelly the Bard" and user.role == "tenant_owner"
        assert user.email == "nelly@example.com" and user.email_verified
        assert {g["name"] for g in user.discord_guilds} == {"Tavern of Tales", "Dice Goblins"}
        assert user.tenant_id == "nelly_the_bard"
    assert b.get("/dashboard").status_code == 200


def test_second_sign_in_reuses_the_account(oauth_app, provider):
    for _ in range(2):
        b = Browser(oauth_app)
        back = requests.get(_start(b), allow_redirects=False, timeout=5).headers["Location"]
        cb = urlsplit(back)
        assert b.get(cb.path + "?" + cb.query).status_code == 303
    with oauth_app.app_context():
        assert len(db.session.execute(select(User)).scalars().all()) == 1


def test_callback_with_wrong_state_is_refused(oauth_app, provider):
    b = Browser(oauth_app)
    back = requests.get(_start(b), allow_redirects=False, timeout=5).headers["Location"]
    code = parse_qs(urlsplit(back).query)["code"][0]
    resp = b.get(f"/auth/discord/callback?code={code}&state=forged")
    assert resp.status_code == 400
    assert "no longer valid" in resp.get_data(as_text=True)
    with oauth_app.app_context():
        assert db.session.execute(select(User)).first() is None


def test_callback_without_state_is_refused(oauth_app, provider):
    b = Browser(oauth_app)
    back = requests.get(_start(b), allow_redirects=False, timeout=5).headers["Location"]
    code = parse_qs(urlsplit(back).query)["code"][0]
    assert b.get(f"/auth/discord/callback?code={code}").status_code == 400


def test_callback_in_another_browser_is_refused(oauth_app, provider):
    """The state lives in the starting browser's cookie; a link replayed elsewhere fails."""
    starter = Browser(oauth_app)
    back = requests.get(_start(starter), allow_redirects=False, timeout=5).headers["Location"]
    cb = urlsplit(back)
    assert Browser(oauth_app).get(cb.path + "?" + cb.query).status_code == 400


def test_provider_error_is_explained(oauth_app):
    resp = Browser(oauth_app).get("/auth/discord/callback?error=access_denied")
    assert resp.status_code == 400 and "cancelled" in resp.get_data(as_text=True)


def test_unconfigured_provider_is_404(oauth_app):
    assert Browser(oauth_app).get("/auth/google").status_code == 404


def test_auth_routes_are_rate_limited_per_ip(oauth_app):
    b = Browser(oauth_app)
    codes = [b.get("/auth/discord").status_code for _ in range(12)]
    assert codes[:10] == [302] * 10 and codes[10] == 429


def test_unverified_email_is_not_kept(oauth_app, provider):
    provider.user = {**provider.user, "id": "80351110224678999", "email": "victim@example.com", "verified": False}
    try:
        b = Browser(oauth_app)
        back = requests.get(_start(b), allow_redirects=False, timeout=5).headers["Location"]
        cb = urlsplit(back)
        assert b.get(cb.path + "?" + cb.query).status_code == 303
        with oauth_app.app_context():
            user = db.session.execute(select(User).where(User.discord_id == "80351110224678999")).scalar_one()
            assert user.email is None and not user.email_verified
    finally:
        provider.user = {**provider.user, "id": "80351110224678912", "email": "nelly@example.com", "verified": True}
