"""Table settings: name and the Discord connection (guilds and bot token go to the gateway)."""

from __future__ import annotations

from datetime import UTC

import psycopg
from sqlalchemy import select

from glyphoxa_htmx.core.deps import gateway
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import AuditLog, Tenant
from tests.conftest import Browser, soup

GUILD_A, GUILD_B = "111111111111111111", "222222222222222222"
TOKEN = "MTA5ODc2NTQzMjEwOTg3NjU0.GaBcDe.abcdefghijklmnopqrstuvwxyz0123456789AB"


def _owner_with_gateway_tenant(app) -> Browser:
    """An owner whose table exists on the gateway, who signed in with Discord a moment ago and
    manages GUILD_A and GUILD_B there (what adding a server requires)."""
    from datetime import datetime

    from glyphoxa_htmx.models import User

    b = Browser(app)
    b.post("/auth/dev", {"name": "Settings Owner", "role": "tenant_owner"})  # signs up through CreateTenant
    with app.app_context():
        b.tenant_id = db.session.execute(select(Tenant.id)).scalar_one()
        user = db.session.execute(select(User).where(User.tenant_id == b.tenant_id)).scalar_one()
        user.discord_guilds = [
            {"id": GUILD_A, "name": "Guild A", "owner": True, "manage": True},
            {"id": GUILD_B, "name": "Guild B", "owner": False, "manage": True},
        ]
        user.discord_guilds_at = datetime.now(UTC)
        db.session.commit()
    return b


def test_rename_table(app, as_role):
    b = as_role("tenant_owner")
    resp = b.post("/settings/name", {"name": "The Gloomhaven crew"})
    assert resp.status_code == 303
    assert soup(b.get("/settings")).select_one("#table-name")["value"] == "The Gloomhaven crew"
    with app.app_context():
        row = db.session.execute(select(AuditLog).where(AuditLog.action == "tenant.update")).scalar_one()
        assert row.details["changes"]["name"]["after"] == "The Gloomhaven crew"


def test_rename_validation_at_the_field(app, as_role):
    resp = as_role("tenant_owner").post("/settings/name", {"name": "  "}, htmx=True)
    assert resp.status_code == 422
    assert soup(resp).select_one("#table-name")["aria-invalid"] == "true"


def test_dm_cannot_change_settings_but_can_read_them(app, as_role):
    b = as_role("dm")
    assert b.post("/settings/name", {"name": "x"}).status_code == 403
    assert b.post("/settings/discord", {"guild_ids_text": GUILD_A}).status_code == 403
    page = soup(b.get("/settings"))
    assert page.select_one("#table-name") is None and page.select_one("#bot-token") is None


def test_discord_connection_goes_to_the_gateway_and_the_token_is_never_kept(app, database_url):
    b = _owner_with_gateway_tenant(app)
    resp = b.post(
        "/settings/discord", {"guild_ids_text": f"{GUILD_A}\n{GUILD_B}, {GUILD_A}", "bot_token": TOKEN}, htmx=True
    )
    assert resp.status_code == 200
    assert "2 servers" in resp.headers["HX-Trigger"]
    with app.app_context():
        assert gateway().get_tenant(b.tenant_id).guild_ids == [GUILD_A, GUILD_B]
        audit = db.session.execute(select(AuditLog).where(AuditLog.action == "tenant.discord_update")).scalar_one()
        assert audit.details["bot_token_changed"] is True
    # The gateway received the token (the simulator stores what it was given, like a gateway
    # without Vault); nothing of ours holds it: not the page, not any web table.
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT bot_token FROM public.tenants WHERE id = %s", (b.tenant_id,)).fetchone()[0] == TOKEN
        dump = conn.execute("SELECT string_agg(t::text, ' ') FROM (SELECT * FROM web.audit_log) t").fetchone()[0]
    assert TOKEN not in dump
    assert TOKEN not in b.get("/settings").get_data(as_text=True)


def test_discord_validation_changes_nothing(app):
    b = _owner_with_gateway_tenant(app)
    resp = b.post("/settings/discord", {"guild_ids_text": "not-a-snowflake"}, htmx=True)
    assert resp.status_code == 422
    assert "isn't a Discord server id" in soup(resp).select_one("#guild_ids-error").text
    assert b.post("/settings/discord", {"guild_ids_text": ""}, htmx=True).status_code == 422
    bad_token = b.post("/settings/discord", {"guild_ids_text": GUILD_A, "bot_token": "short"}, htmx=True)
    assert bad_token.status_code == 422 and soup(bad_token).select_one("#bot_token-error")
    with app.app_context():
        assert gateway().get_tenant(b.tenant_id).guild_ids == []


def test_start_form_offers_the_saved_server(app):
    b = _owner_with_gateway_tenant(app)
    assert "no Discord server yet" in b.get("/sessions/new").get_data(as_text=True)
    b.post("/settings/discord", {"guild_ids_text": GUILD_A})
    options = [o["value"] for o in soup(b.get("/sessions/new")).select("#guild_id option")]
    assert options == [GUILD_A]


def _with_discord_guilds(app, tenant_id, guilds):
    from glyphoxa_htmx.models import User

    with app.app_context():
        user = db.session.execute(select(User).where(User.tenant_id == tenant_id)).scalar_one()
        user.discord_guilds = guilds
        db.session.commit()


def test_saving_keeps_servers_that_are_not_the_users_own(app):
    """UpdateTenant replaces the list: a saved server the user isn't in must stay in the form."""
    b = _owner_with_gateway_tenant(app)
    b.post("/settings/discord", {"guild_ids_text": f"{GUILD_A}\n{GUILD_B}"})
    _with_discord_guilds(app, b.tenant_id, [{"id": GUILD_A, "name": "Mine", "owner": True}])
    page = soup(b.get("/settings"))
    assert page.select_one(f"input[name=guild_id][value='{GUILD_A}']").has_attr("checked")
    assert page.select_one("#guild-ids").text.strip() == GUILD_B
    # Re-submitting the form as shown (e.g. only to rotate the token) keeps both servers.
    form = {"guild_id": GUILD_A, "guild_ids_text": page.select_one("#guild-ids").text, "bot_token": TOKEN}
    assert b.post("/settings/discord", form).status_code == 303
    with app.app_context():
        assert sorted(gateway().get_tenant(b.tenant_id).guild_ids) == [GUILD_A, GUILD_B]


def test_a_422_keeps_the_ticked_servers(app):
    b = _owner_with_gateway_tenant(app)
    _with_discord_guilds(app, b.tenant_id, [{"id": GUILD_A, "name": "One"}, {"id": GUILD_B, "name": "Two"}])
    resp = b.post("/settings/discord", {"guild_id": GUILD_B, "bot_token": "short"}, htmx=True)
    assert resp.status_code == 422
    page = soup(resp)
    assert page.select_one(f"input[value='{GUILD_B}']").has_attr("checked")
    assert not page.select_one(f"input[value='{GUILD_A}']").has_attr("checked")
