"""The onboarding wizard (issue 12) over plain HTTP (no JavaScript): each step saves through the
same service as its full page, can be skipped, and the wizard resumes at the first step neither
done nor skipped; the bot token goes to the gateway (UpdateTenant) and is never echoed."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import Campaign, NpcDefinition, Tenant, User
from tests.conftest import soup
from tests.test_adoption import gateway_ids, gateway_tenant

GUILD = "41771983423143937"


def test_wizard_end_to_end_without_javascript(app, as_role):
    owner = as_role("tenant_owner")
    tid = owner.user.tenant_id
    gateway_tenant(app, tid)
    with app.app_context():
        user = db.session.get(User, owner.user.id)
        user.discord_guilds = [{"id": GUILD, "name": "Tavern of Tales", "owner": True, "manage": True}]
        user.discord_guilds_at = datetime.now(UTC)
        db.session.commit()
    assert soup(owner.get("/dashboard")).select_one("a#open-wizard[href='/welcome']")
    assert owner.get("/welcome").headers["Location"] == "/welcome/name"
    page = soup(owner.get("/welcome/name"))
    assert page.select_one("#progress-name[aria-current=step]")
    assert not page.select("#progress-plan")  # billing disabled: no plan step
    assert owner.post("/welcome/name", {"name": ""}).status_code == 422
    assert owner.post("/welcome/name", {"name": "Thursday Crew"}).headers["Location"] == "/welcome"
    assert owner.get("/welcome").headers["Location"] == "/welcome/campaign"
    assert owner.post("/welcome/campaign", {"name": "Curse of Strahd", "game_system": "D&D 5e"}).status_code == 303
    assert owner.get("/welcome").headers["Location"] == "/welcome/discord"
    page = soup(owner.get("/welcome/discord"))
    assert page.select_one(f"input[name=guild_id][value='{GUILD}']")
    add = page.select_one(".guild-choice a")
    assert add is None or "discord.com/oauth2/authorize" in add["href"]
    token = "MTA" + "x" * 60
    bad = owner.post("/welcome/discord", {"bot_token": "short", "guild_id": GUILD})
    assert bad.status_code == 422 and "short" not in soup(bad).select_one("#bot_token").get("value", "")
    assert owner.post("/welcome/discord", {"bot_token": token, "guild_id": GUILD}).status_code == 303
    from glyphoxa_htmx.core.deps import gateway

    with app.app_context():
        assert GUILD in gateway().get_tenant(tid).guild_ids
    assert token not in owner.get("/welcome/discord").get_data(as_text=True)
    assert owner.get("/welcome").headers["Location"] == "/welcome/npc"
    with app.app_context():
        cid = db.session.execute(select(Campaign.id).where(Campaign.tenant_id == tid)).scalar_one()
    assert owner.post("/welcome/npc", {"campaign_id": cid, "name": "Ireena", "personality": "Brave"}).status_code == 303
    done = owner.get("/welcome")
    assert done.headers["Location"] == "/dashboard"
    with app.app_context():
        assert db.session.get(Tenant, tid).name == "Thursday Crew"
        assert (
            db.session.execute(select(NpcDefinition.name).where(NpcDefinition.tenant_id == tid)).scalar_one()
            == "Ireena"
        )
    assert tid in gateway_ids(app)


def test_wizard_steps_skip_and_resume(app, as_role):
    owner = as_role("tenant_owner")
    assert owner.post("/welcome/name/skip").status_code == 303
    assert owner.get("/welcome").headers["Location"] == "/welcome/campaign"
    assert owner.post("/welcome/campaign/skip").status_code == 303
    # Resumes where it was left (a later visit, the same browser).
    assert owner.get("/welcome").headers["Location"] == "/welcome/discord"
    page = soup(owner.get("/welcome/discord"))
    assert "done" in page.select_one("#progress-name").text and "done" in page.select_one("#progress-campaign").text
    assert owner.get("/welcome/nope").status_code == 404
    assert as_role("dm").get("/welcome/name").status_code == 403
