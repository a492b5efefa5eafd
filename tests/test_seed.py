"""The demo table that `make run` seeds: people, a campaign, NPCs and past sessions."""

from __future__ import annotations

import psycopg
from sqlalchemy import func, select

from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import Campaign, NpcDefinition, User
from glyphoxa_htmx.seed import DEMO_CAMPAIGN, DEMO_TENANT, seed_demo


def test_seed_demo_is_complete_and_idempotent(app, database_url):
    with app.app_context():
        seed_demo()
        seed_demo()  # second run changes nothing
        roles = sorted(u.role for u in db.session.execute(select(User).where(User.tenant_id == DEMO_TENANT)).scalars())
        assert roles == ["dm", "tenant_owner", "viewer"]
        assert db.session.get(Campaign, (DEMO_TENANT, DEMO_CAMPAIGN)).tenant_id == DEMO_TENANT
        npcs = db.session.execute(
            select(func.count()).select_from(NpcDefinition).where(NpcDefinition.tenant_id == DEMO_TENANT)
        ).scalar_one()
        assert npcs == 4
    with psycopg.connect(database_url) as conn:
        ended = conn.execute(
            "SELECT count(*) FROM public.sessions WHERE tenant_id = %s AND state = 'ended'", (DEMO_TENANT,)
        ).fetchone()[0]
        lines = conn.execute(f"SELECT count(*) FROM tenant_{DEMO_TENANT}.session_entries").fetchone()[0]
        gateway_tenant = conn.execute("SELECT campaign_id FROM public.tenants WHERE id = %s", (DEMO_TENANT,)).fetchone()
    assert ended == 3 and lines > 10
    assert gateway_tenant == (DEMO_CAMPAIGN,)


def test_demo_seeding_defaults_to_the_embedded_database_only():
    from glyphoxa_htmx.config import load_settings

    assert load_settings(environ={}).seed_demo is True  # embedded database: the demo table
    real = {"DATABASE_URL": "postgresql://gw@db.example/glyphoxa"}
    assert load_settings(environ=real).seed_demo is False  # a real installation is never seeded by default
    assert load_settings(environ={**real, "GLYPHOXA_SEED_DEMO": "0"}).seed_demo is False
    assert load_settings(environ={**real, "GLYPHOXA_SEED_DEMO": "1"}).seed_demo is True  # only when asked for
    assert load_settings(environ={"GLYPHOXA_SEED_DEMO": "0"}).seed_demo is False
    assert load_settings(environ={**real, "GLYPHOXA_ENV": "production", "GLYPHOXA_SEED_DEMO": "1"}).seed_demo is True
