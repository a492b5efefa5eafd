"""Admission modes (GLYPHOXA_ADMISSION=open|invite|allowlist, fail closed) and accepting TERMS_URL at
signup (issue 12). Real HTTP to the local OAuth provider, real PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from glyphoxa_htmx.config import ConfigError
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import User
from tests.conftest import GATEWAY_SECRET, Browser, make_settings, soup
from tests.test_adoption import discord_sign_in
from tests.test_team import as_discord, create_link, member, snowflake


def discord_app(database_url, simulator, provider, **kw):
    from glyphoxa_htmx.app import create_app

    application = create_app(
        make_settings(
            database_url,
            dev_login=False,
            discord_client_id=provider.client_id,
            discord_client_secret=provider.client_secret,
            discord_api_base=provider.base,
            gateway_grpc_addr=simulator.address,
            gateway_secret=GATEWAY_SECRET,
            **kw,
        )
    )
    application.config["TESTING"] = True
    return application


def test_unknown_admission_mode_refuses_to_start(database_url):
    from glyphoxa_htmx.app import create_app

    with pytest.raises(ConfigError, match="GLYPHOXA_ADMISSION"):
        create_app(make_settings(database_url, admission="opn"))


def test_invite_mode_admits_only_invited_people(app, database_url, simulator, provider, as_role):
    closed = discord_app(database_url, simulator, provider, admission="invite")
    stranger = snowflake()
    as_discord(provider, stranger)
    resp = discord_sign_in(Browser(closed), provider)
    assert resp.status_code == 403 and "isn't open for sign-ups" in soup(resp).text
    assert member(app, stranger) is None
    # Invited: admitted.
    owner = as_role("tenant_owner")
    path = create_link(owner, role="viewer")
    invited = snowflake()
    as_discord(provider, invited)
    b = Browser(closed)
    assert b.get(path).status_code == 200
    assert discord_sign_in(b, provider).status_code == 303
    assert member(app, invited).tenant_id == owner.user.tenant_id


def test_allowlist_mode_admits_listed_discord_ids(app, database_url, simulator, provider):
    listed = snowflake()
    listed_app = discord_app(
        database_url, simulator, provider, admission="allowlist", admission_allowlist=f"111111111111111111, {listed}"
    )
    other = snowflake()
    as_discord(provider, other)
    resp = discord_sign_in(Browser(listed_app), provider)
    assert resp.status_code == 403 and "on its list" in soup(resp).text
    assert member(app, other) is None
    as_discord(provider, listed)
    assert discord_sign_in(Browser(listed_app), provider).status_code == 303
    assert member(app, listed).role == "tenant_owner"


def test_terms_must_be_accepted_at_signup_and_the_time_is_stored(app, database_url, simulator, provider):
    terms_app = discord_app(database_url, simulator, provider, terms_url="https://example.com/terms")
    b = Browser(terms_app)
    page = soup(b.get("/auth/signin"))
    assert page.select_one("input#accept-terms[name=accept_terms]")
    assert page.select_one("a[href='https://example.com/terms']")
    did = snowflake()
    as_discord(provider, did)
    resp = discord_sign_in(b, provider, "/auth/discord")  # didn't tick the box
    assert resp.status_code == 403 and "accept the terms" in soup(resp).text
    assert member(app, did) is None
    assert discord_sign_in(b, provider, "/auth/discord?accept_terms=1").status_code == 303
    user = member(app, did)
    assert user is not None and user.terms_accepted_at is not None
    # Signing in again later isn't asked again.
    assert discord_sign_in(Browser(terms_app), provider, "/auth/discord").status_code == 303
    with app.app_context():
        assert (
            db.session.execute(select(User.terms_accepted_at).where(User.id == user.id)).scalar_one()
            == user.terms_accepted_at
        )
