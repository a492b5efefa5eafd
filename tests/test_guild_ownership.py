"""A Discord server belongs to at most one table, and only someone who manages it on Discord can
connect it (issue 8, item 1). Real parts: the local Discord OAuth provider over HTTP (guilds with
permission bitfields), the gateway simulator over gRPC, PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import psycopg
import requests
from sqlalchemy import select

from glyphoxa_htmx.core.deps import gateway
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import AuditLog, GatewaySession, GuildClaim, User
from tests.conftest import Browser, soup
from tests.support.ws_server import make_campaign, snowflake

TAVERN, GOBLINS, LANTERN, ADMINS = "41771983423143937", "41771983423143938", "41771983423143939", "41771983423143940"


def _grant(app, user_id: str, guilds: list[dict], *, age: timedelta = timedelta(0)) -> None:
    """What a Discord sign-in ``age`` ago would have stored for this person."""
    with app.app_context():
        user = db.session.get(User, user_id)
        user.discord_guilds = guilds
        user.discord_guilds_at = datetime.now(UTC) - age
        db.session.commit()


def _manages(*ids: str) -> list[dict]:
    return [{"id": gid, "name": f"Server {gid[-3:]}", "owner": False, "manage": True} for gid in ids]


def _table(app, as_role, *guild_ids: str, role: str = "tenant_owner"):
    """An owner of a table that is registered on the gateway with ``guild_ids``."""
    b = as_role(role)
    with app.app_context():
        gateway().create_tenant(b.user.tenant_id, license_tier="shared", guild_ids=list(guild_ids))
    return b


def _gateway_guilds(app, tenant_id: str) -> list[str]:
    with app.app_context():
        return list(gateway().get_tenant(tenant_id).guild_ids or [])


def _claims(app) -> dict[str, str]:
    with app.app_context():
        return {c.guild_id: c.tenant_id for c in db.session.execute(select(GuildClaim)).scalars()}


# ---- the attack from the probe ------------------------------------------------------------


def test_an_owner_cannot_claim_another_tables_server(app, as_role):
    victim_guild = snowflake()
    victim = _table(app, as_role, victim_guild)
    attacker = _table(app, as_role, snowflake())
    _grant(app, attacker.user.id, _manages(snowflake()))  # a fresh grant, but not for the victim's server
    resp = attacker.post("/settings/discord", {"guild_ids_text": victim_guild}, htmx=True)
    assert resp.status_code == 422
    error = soup(resp).select_one("#guild_ids-error").text
    assert "Manage Server" in error and victim.user.tenant_id not in error
    # Even someone who does manage it on Discord can't take it from the table that has it.
    _grant(app, attacker.user.id, _manages(victim_guild))
    resp = attacker.post("/settings/discord", {"guild_ids_text": victim_guild}, htmx=True)
    assert resp.status_code == 422
    error = soup(resp).select_one("#guild_ids-error").text
    assert "already connected to another table" in error and victim.user.tenant_id not in resp.get_data(as_text=True)
    assert victim_guild not in _gateway_guilds(app, attacker.user.tenant_id)
    assert victim_guild not in _claims(app)


def test_a_session_never_starts_in_another_tables_server(app, as_role, database_url):
    """The gateway may list a server for two tables (written before servers had one owner, or by
    other tools): a start there is refused before the gateway is called; the rightful table starts."""
    shared = snowflake()
    rightful = _table(app, as_role, shared, role="tenant_owner")
    squatter = _table(app, as_role, shared, role="tenant_owner")
    _grant(app, rightful.user.id, _manages(shared))
    assert rightful.post("/settings/discord", {"guild_ids_text": shared}).status_code == 422  # contested: refused
    with app.app_context():  # an operator sorts it out (see the admin test); here the claim says who owns it
        db.session.add(GuildClaim(guild_id=shared, tenant_id=rightful.user.tenant_id))
        db.session.commit()
    campaign = make_campaign(app, squatter.user.tenant_id)
    form = {
        "campaign_id": campaign,
        "guild_id": shared,
        "channel_id": "987654321098765432",
        "empty_cast_ok": "1",
    }  # these campaigns have no NPCs: confirm starting without any
    resp = squatter.post("/sessions/new", form, htmx=True)
    assert resp.status_code == 422
    assert "connected to another table" in soup(resp).select_one("#guild_id-error").text
    with app.app_context():
        assert (
            db.session.execute(
                select(GatewaySession).where(GatewaySession.tenant_id == squatter.user.tenant_id)
            ).first()
            is None
        )
    mine = make_campaign(app, rightful.user.tenant_id)
    started = rightful.post("/sessions/new", {**form, "campaign_id": mine})
    assert started.status_code == 303, started.get_data(as_text=True)
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "UPDATE public.sessions SET state = 'ended', ended_at = now() WHERE tenant_id = %s",
            (rightful.user.tenant_id,),
        )


def test_unclaimed_server_listed_twice_is_refused_for_both(app, as_role):
    shared = snowflake()
    one, two = _table(app, as_role, shared), _table(app, as_role, shared)
    for b in (one, two):
        campaign = make_campaign(app, b.user.tenant_id)
        resp = b.post(
            "/sessions/new",
            {"campaign_id": campaign, "guild_id": shared, "channel_id": "987654321098765432"},
            htmx=True,
        )
        assert resp.status_code == 422 and soup(resp).select_one("#guild_id-error")


# ---- saving servers ---------------------------------------------------------------------------


def test_a_managed_server_is_claimed_and_released(app, as_role):
    first, second = snowflake(), snowflake()
    owner = _table(app, as_role, first)
    _grant(app, owner.user.id, _manages(first, second))
    assert owner.post("/settings/discord", {"guild_ids_text": f"{first}\n{second}"}).status_code == 303
    assert _gateway_guilds(app, owner.user.tenant_id) == [first, second]
    assert _claims(app) == {first: owner.user.tenant_id, second: owner.user.tenant_id}
    assert owner.post("/settings/discord", {"guild_ids_text": second}).status_code == 303
    assert _claims(app) == {second: owner.user.tenant_id}  # released: another table may connect it now
    other = _table(app, as_role, snowflake())
    _grant(app, other.user.id, _manages(first))
    assert other.post("/settings/discord", {"guild_ids_text": first}).status_code == 303
    assert _claims(app)[first] == other.user.tenant_id


def test_a_stale_grant_asks_to_sign_in_with_discord_again(app, as_role):
    gid = snowflake()
    owner = _table(app, as_role, snowflake())
    _grant(app, owner.user.id, _manages(gid), age=timedelta(hours=2))
    resp = owner.post("/settings/discord", {"guild_ids_text": gid}, htmx=True)
    assert resp.status_code == 422
    assert "Sign in with Discord again" in soup(resp).select_one("#guild_ids-error").text
    assert soup(resp).select_one("#discord-reconsent")
    _grant(app, owner.user.id, _manages(gid))  # signed in again a moment ago
    assert owner.post("/settings/discord", {"guild_ids_text": gid}).status_code == 303


def test_without_a_discord_sign_in_no_server_can_be_added(app, as_role):
    owner = _table(app, as_role, snowflake())  # never signed in with Discord
    resp = owner.post("/settings/discord", {"guild_ids_text": snowflake()}, htmx=True)
    assert resp.status_code == 422 and "sign in with discord" in soup(resp).select_one("#guild_ids-error").text.lower()


def test_servers_already_on_the_table_are_kept_without_a_fresh_grant(app, as_role):
    """A second owner (or a stale grant) can still save the token: only new servers need proof."""
    kept = snowflake()
    owner = _table(app, as_role, kept)
    token = "MTA5ODc2NTQzMjEwOTg3NjU0.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"
    assert owner.post("/settings/discord", {"guild_ids_text": kept, "bot_token": token}).status_code == 303
    assert _claims(app) == {kept: owner.user.tenant_id}


def test_two_tables_claiming_one_server_at_once_one_wins(app, as_role):
    gid = snowflake()
    owners = [_table(app, as_role, snowflake()) for _ in range(2)]
    for b in owners:
        _grant(app, b.user.id, _manages(gid))
        b.csrf_token()
    barrier = threading.Barrier(2)
    codes = []

    def save(b):
        barrier.wait()
        codes.append(b.post("/settings/discord", {"guild_ids_text": gid}, htmx=True).status_code)

    threads = [threading.Thread(target=save, args=(b,)) for b in owners]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200, 422]
    winners = [b.user.tenant_id for b in owners if gid in _gateway_guilds(app, b.user.tenant_id)]
    assert len(winners) == 1 and _claims(app) == {gid: winners[0]}


def test_settings_page_offers_only_managed_servers(app, as_role):
    owner = _table(app, as_role, snowflake())
    managed, member = snowflake(), snowflake()
    _grant(
        app,
        owner.user.id,
        [
            {"id": managed, "name": "Mine", "owner": False, "manage": True},
            {"id": member, "name": "Just a member", "owner": False, "manage": False},
        ],
    )
    page = soup(owner.get("/settings"))
    assert not page.select_one(f"input[name=guild_id][value='{managed}']").has_attr("disabled")
    assert page.select_one(f"input[name=guild_id][value='{member}']").has_attr("disabled")


# ---- operators reassign a server --------------------------------------------------------------


def test_operator_reassigns_a_server_and_it_is_audited(app, as_role):
    gid, other = snowflake(), snowflake()
    wrong = _table(app, as_role, gid, other)
    right = _table(app, as_role, snowflake())
    with app.app_context():
        db.session.add(GuildClaim(guild_id=gid, tenant_id=wrong.user.tenant_id))
        db.session.commit()
    admin = as_role("super_admin")
    page = soup(admin.get(f"/admin/guilds?guild_id={gid}"))
    assert page.select_one("#guild-owner").text == wrong.user.tenant_id
    assert owner_refused(wrong, gid)
    resp = admin.post(f"/admin/guilds/{gid}/assign", {"tenant_id": right.user.tenant_id}, htmx=True)
    assert resp.status_code == 204 and resp.headers["HX-Redirect"] == f"/admin/guilds?guild_id={gid}"
    assert _claims(app) == {gid: right.user.tenant_id}
    assert gid in _gateway_guilds(app, right.user.tenant_id)
    assert _gateway_guilds(app, wrong.user.tenant_id) == [other]
    with app.app_context():
        rows = db.session.execute(select(AuditLog).where(AuditLog.action == "guild.reassign")).scalars().all()
        assert {r.tenant_id for r in rows} == {wrong.user.tenant_id, right.user.tenant_id}
        assert all(r.user_id == admin.user.id and r.resource_id == gid for r in rows)
    assert soup(admin.get(f"/admin/guilds?guild_id={gid}")).select_one("#guild-owner").text == right.user.tenant_id


def owner_refused(b: Browser, gid: str) -> bool:
    """Nobody but an operator may reassign."""
    return b.post(f"/admin/guilds/{gid}/assign", {"tenant_id": b.user.tenant_id}).status_code == 403


def test_reassign_validation_and_no_js_confirmation(app, as_role):
    admin = as_role("super_admin")
    gid = snowflake()
    bad = admin.post(f"/admin/guilds/{gid}/assign", {"tenant_id": "no_such_table"}, htmx=True)
    assert bad.status_code == 422 and "No table" in soup(bad).select_one("#tenant_id-error").text
    confirm = admin.post(f"/admin/guilds/{gid}/assign", {"tenant_id": "x"})  # without JavaScript: asks first
    assert confirm.status_code == 200 and soup(confirm).select_one("input[name=confirmed]")
    assert _claims(app) == {}
    assert admin.get("/admin/guilds?guild_id=12ab", htmx=True).status_code == 200
    assert "17 to 20 digits" in admin.get("/admin/guilds?guild_id=12ab").get_data(as_text=True)


# ---- the grant itself comes from Discord's permission bits ------------------------------------


def _discord_sign_in(b: Browser) -> None:
    start = b.get("/auth/discord?next=/settings")
    back = requests.get(start.headers["Location"], allow_redirects=False, timeout=5).headers["Location"]
    cb = urlsplit(back)
    assert b.get(cb.path + "?" + cb.query).status_code == 303


def test_discord_sign_in_records_which_servers_the_person_manages(oauth_app, provider):
    saved = provider.guilds
    provider.guilds = saved + [
        {"id": LANTERN, "name": "Lantern Keepers", "owner": False, "permissions": str(0x20)},
        {"id": ADMINS, "name": "Admins Only", "owner": False, "permissions": str(0x8)},
        {"id": "41771983423143941", "name": "Odd", "owner": False, "permissions": "not-a-number"},
    ]
    try:
        b = Browser(oauth_app)
        _discord_sign_in(b)
        with oauth_app.app_context():
            user = db.session.execute(select(User).where(User.discord_id == provider.user["id"])).scalar_one()
            manage = {gd["id"]: gd["manage"] for gd in user.discord_guilds}
            assert manage == {TAVERN: True, GOBLINS: False, LANTERN: True, ADMINS: True, "41771983423143941": False}
            assert datetime.now(UTC) - user.discord_guilds_at < timedelta(minutes=1)
            tenant_id = user.tenant_id
        # The owner connects a server they manage; one where they are only a member is refused.
        assert b.post("/settings/discord", {"guild_id": TAVERN}).status_code == 303
        refused = b.post("/settings/discord", {"guild_id": [TAVERN, GOBLINS]}, htmx=True)
        assert refused.status_code == 422 and GOBLINS in soup(refused).select_one("#guild_ids-error").text
        with oauth_app.app_context():
            assert gateway().get_tenant(tenant_id).guild_ids == [TAVERN]
    finally:
        provider.guilds = saved


def test_reconsent_link_signs_in_with_discord_and_comes_back(oauth_app, provider):
    b = Browser(oauth_app)
    _discord_sign_in(b)
    with oauth_app.app_context():
        user = db.session.execute(select(User).where(User.discord_id == provider.user["id"])).scalar_one()
        user.discord_guilds_at = datetime.now(UTC) - timedelta(days=1)
        db.session.commit()
    resp = b.post("/settings/discord", {"guild_id": TAVERN}, htmx=True)
    assert resp.status_code == 422
    link = soup(resp).select_one("#discord-reconsent a")["href"]
    assert link == "/auth/discord?next=/settings"
    _discord_sign_in(b)  # what the link does
    assert b.post("/settings/discord", {"guild_id": TAVERN}).status_code == 303
