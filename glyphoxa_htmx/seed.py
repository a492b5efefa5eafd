"""Demo data for `make run`: a demo DM with a table, a campaign, a cast of NPCs and past
sessions (written through the gateway simulator's own DDL, so shapes are the gateway's)."""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import select

from glyphoxa_htmx.core import audit
from glyphoxa_htmx.core.deps import gateway
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import Campaign, NpcDefinition, NpcPosition, Tenant, User

log = logging.getLogger(__name__)

DEMO_TENANT = "demo_table"
DEMO_CAMPAIGN = "cmp_sunken_crown"
DEMO_NPCS: list[dict[str, Any]] = [
    {
        "name": "Greta Ironbraid",
        "personality": "Gruff dwarven smith of Saltmere. Fair prices, no patience for haggling.",
        "voice_id": "en-gb",
        "knowledge_scope": ["smithing", "Saltmere gossip"],
        "budget_tier": "fast",
    },
    {
        "name": "Brother Aldric",
        "personality": "Soft-spoken keeper of the drowned chapel. Knows more than he says.",
        "voice_id": "en-us",
        "knowledge_scope": ["the Sunken Crown", "chapel history"],
        "budget_tier": "standard",
    },
    {
        "name": "Pip Thistlewick",
        "personality": "Halfling fence and rumour-monger; talks fast, laughs faster.",
        "voice_id": "en-scottish",
        "knowledge_scope": ["thieves' guild", "the docks"],
        "budget_tier": "fast",
    },
    {
        "name": "The Narrator",
        "personality": "Helps the DM with rules look-ups and recaps.",
        "voice_id": "en-us",
        "knowledge_scope": ["rules"],
        "budget_tier": "deep",
        "gm_helper": True,
    },
]


def seed_demo() -> None:
    if db.session.get(Tenant, DEMO_TENANT) is not None:
        return
    client = gateway()
    if client is not None:
        from glyphoxa_htmx.adapters.gateway.errors import AlreadyExists

        try:
            client.create_tenant(
                DEMO_TENANT, license_tier="shared", guild_ids=["111111111111111111"], campaign_id=DEMO_CAMPAIGN
            )
        except AlreadyExists:
            pass
    # The active campaign is the gateway's tenants.campaign_id (set by CreateTenant above).
    db.session.add(Tenant(id=DEMO_TENANT, name="The Sunken Crown table"))
    owner = User(
        id=str(uuid.uuid4()),
        tenant_id=DEMO_TENANT,
        name="Demo DM",
        role="tenant_owner",
        discord_id="dev-demo-dm",
        discord_guilds=[{"id": "111111111111111111", "name": "Saltmere Adventurers", "owner": True}],
    )
    co_dm = User(id=str(uuid.uuid4()), tenant_id=DEMO_TENANT, name="Co-DM Sam", role="dm", discord_id="dev-demo-codm")
    player = User(
        id=str(uuid.uuid4()), tenant_id=DEMO_TENANT, name="Player Rowan", role="viewer", discord_id="dev-demo-player"
    )
    db.session.add_all([owner, co_dm, player])
    db.session.add(
        Campaign(
            id=DEMO_CAMPAIGN,
            tenant_id=DEMO_TENANT,
            name="The Sunken Crown",
            game_system="D&D 5e",
            description="A drowned kingdom, a stolen crown, and a town that remembers too much.",
            settings={
                "language": "en",
                "tone": "mysterious, a little grim",
                "lines_veils": ["no harm to children"],
                "house_rules": "Flanking gives advantage.",
            },
        )
    )
    npcs = []
    has_npc_table = db.session.execute(select(db.func.to_regclass("public.npc_definitions"))).scalar() is not None
    if has_npc_table:
        for position, spec in enumerate(DEMO_NPCS):
            npc_id = str(uuid.uuid4())
            npcs.append({"id": npc_id, **spec})
            db.session.add(
                NpcDefinition(
                    id=npc_id,
                    tenant_id=DEMO_TENANT,
                    campaign_id=DEMO_CAMPAIGN,
                    name=spec["name"],
                    personality=spec["personality"],
                    engine="cascaded",
                    voice={"provider": "espeak", "voice_id": spec["voice_id"], "pitch_shift": 0, "speed_factor": 1.0},
                    knowledge_scope=spec["knowledge_scope"],
                    secret_knowledge=[],
                    behavior_rules=[],
                    tools=[],
                    budget_tier=spec["budget_tier"],
                    gm_helper=spec.get("gm_helper", False),
                    address_only=False,
                    attributes={},
                )
            )
            db.session.add(
                NpcPosition(npc_id=npc_id, tenant_id=DEMO_TENANT, campaign_id=DEMO_CAMPAIGN, position=position)
            )
    audit.record("tenant.create", "tenant", DEMO_TENANT, tenant_id=DEMO_TENANT, details={"via": "seed"})
    db.session.commit()
    try:
        from glyphoxa_htmx.embedded import libpq_url
        from glyphoxa_htmx.simulator.seed import seed_history

        seed_history(
            libpq_url(str(db.engine.url.render_as_string(hide_password=False))),
            DEMO_TENANT,
            DEMO_CAMPAIGN,
            npcs,
            sessions=3,
        )
    except ImportError:  # pragma: no cover
        log.info("simulator seed not available; demo has no past sessions")
    log.info("demo table seeded", extra={"tenant_id": DEMO_TENANT})
