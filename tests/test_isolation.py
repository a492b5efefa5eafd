"""Tenant isolation, walked over the whole URL map: every route that names a resource, asked by a
user of another tenant — in every role, plain and htmx — with the real ids of the demo table's
campaign, NPC, session, entity, person and sign-in session, answers exactly 404 (never 403: the
row is looked up in the actor's tenant before the role is checked), and nothing of the demo table
changes. A new route with a new kind of parameter fails here
until this table knows how to fill it."""

from __future__ import annotations

import re

import psycopg
import pytest
from sqlalchemy import func, select

from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import (
    Campaign,
    LoginSession,
    NpcDefinition,
    ProviderConfig,
    TenantInvitation,
    User,
    VoiceSample,
)
from glyphoxa_htmx.seed import DEMO_CAMPAIGN, DEMO_TENANT, seed_demo
from tests.conftest import Browser

# Routes that are not tenant resources: operator pages (cross-tenant by design, tested in
# test_authz), sign-in providers, static files.
NOT_TENANT_SCOPED = {
    "admin.tenant_status",
    "admin.user_status",
    "admin.guild_assign",
    "auth.oauth_start",
    "auth.oauth_callback",
    "static",
    "admin.tenant_detail",
    # the drill-down's actions on any table (test_tenant_actions)
    "admin.tenant_tier",
    "admin.tenant_revoke_sign_ins",
    # operators' support pages answer any table's ticket (test_support_tickets)
    "support.admin_show",
    "support.admin_answer",
    # adoption: operator pages over gateway tenants (test_adoption), and the signed invite link
    "adoption.adopt_form",
    "adoption.adopt",
    "auth.invite",
    # a signed-in person accepting a signed invite link (test_team): the token is the key
    "auth.invite_accept",
    # /me: the signed-in person's own sign-in providers, named by provider (test_profile)
    "profile.link",
    "profile.unlink",
    # accepting an invitation addressed to my own Discord id (test_team: anyone else's is 404)
    "profile.accept_invitation",
    # the onboarding wizard's steps, named by step (test_welcome): the caller's own table
    "welcome.step",
    "welcome.skip",
    "welcome.save",
}


@pytest.fixture
def demo(app, database_url, monkeypatch, tmp_path):
    with app.app_context():
        seed_demo()
        owner = db.session.execute(
            select(User).where(User.tenant_id == DEMO_TENANT, User.role == "tenant_owner")
        ).scalar_one()
        ids = {
            "campaign_id": DEMO_CAMPAIGN,
            "npc_id": db.session.execute(
                select(NpcDefinition.id).where(NpcDefinition.tenant_id == DEMO_TENANT).order_by(NpcDefinition.name)
            )
            .scalars()
            .first(),
            "user_id": owner.id,
        }
        owner_ns = type("U", (), {"id": owner.id, "tenant_id": DEMO_TENANT})
    owner_browser = Browser(app).login(owner_ns)
    with app.app_context():
        ids["login_session_id"] = db.session.execute(
            select(LoginSession.id).where(LoginSession.user_id == owner_ns.id)
        ).scalar_one()
    with psycopg.connect(database_url) as conn:
        ids["session_id"] = conn.execute(
            "SELECT id FROM public.sessions WHERE tenant_id = %s ORDER BY started_at DESC LIMIT 1", (DEMO_TENANT,)
        ).fetchone()[0]
        ids["entity_id"] = conn.execute(
            f"SELECT id FROM tenant_{DEMO_TENANT}.entities WHERE campaign_id = %s LIMIT 1", (DEMO_CAMPAIGN,)
        ).fetchone()[0]
    # A provider slot with a saved key (write-only): its id must be 404 to everyone else.
    assert (
        owner_browser.post(
            "/settings/providers", {"slot": "tts", "provider": "elevenlabs", "api_key": "xi-demo-table-key-0123456789"}
        ).status_code
        == 303
    )
    with app.app_context():
        ids["config_id"] = db.session.execute(
            select(ProviderConfig.id).where(ProviderConfig.tenant_id == DEMO_TENANT)
        ).scalar_one()
    # A voice sample in the demo table's library (real audio, local storage): its id and its
    # signed playback URL must be 404 to everyone else.
    import io

    from tests.test_voice_samples import make_audio

    monkeypatch.delenv("S3_BUCKET", raising=False)
    monkeypatch.setenv("VOICE_SAMPLES_DIR", str(tmp_path / "voice-samples"))
    assert (
        owner_browser.post(
            "/voice-library",
            {"name": "Demo voice", "file": (io.BytesIO(make_audio(tmp_path, "demo.wav")), "demo.wav")},
            content_type="multipart/form-data",
        ).status_code
        == 303
    )
    with app.app_context():
        ids["sample_id"] = db.session.execute(
            select(VoiceSample.id).where(VoiceSample.tenant_id == DEMO_TENANT)
        ).scalar_one()
    # A pending invitation of the demo table (issue 12): revoking it is 404 to everyone else.
    assert owner_browser.post("/team/invitations", {"kind": "link", "role": "viewer"}).status_code == 200
    with app.app_context():
        ids["invitation_id"] = db.session.execute(
            select(TenantInvitation.id).where(TenantInvitation.tenant_id == DEMO_TENANT)
        ).scalar_one()
    resp = owner_browser.post("/support", {"subject": "Demo table ticket", "body": "help", "category": "question"})
    assert resp.status_code == 303
    ids["ticket_id"] = resp.headers["Location"].rsplit("/", 1)[1]
    ids["action"] = "mute"
    ids["owner_browser"] = owner_browser
    return ids


def _url(rule, ids) -> str:
    def fill(match):
        name = match.group(1)
        if name == "session_id" and rule.endpoint.startswith("account."):
            return ids["login_session_id"]
        assert name in ids, f"{rule.rule}: teach test_isolation how to fill <{name}>"
        return str(ids[name])

    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", fill, rule.rule)


def _snapshot(app, database_url):
    with app.app_context():
        campaign = db.session.get(Campaign, (DEMO_TENANT, DEMO_CAMPAIGN))
        npcs = db.session.execute(
            select(func.count()).select_from(NpcDefinition).where(NpcDefinition.tenant_id == DEMO_TENANT)
        ).scalar_one()
        roles = sorted(u.role for u in db.session.execute(select(User).where(User.tenant_id == DEMO_TENANT)).scalars())
        keys = db.session.execute(
            select(
                ProviderConfig.provider,
                ProviderConfig.api_key_enc,
                ProviderConfig.updated_at,
                ProviderConfig.last_tested_at,
            ).where(ProviderConfig.tenant_id == DEMO_TENANT)
        ).all()
        samples = db.session.execute(
            select(VoiceSample.id, VoiceSample.status, VoiceSample.provider_voice_id, VoiceSample.deleting_at).where(
                VoiceSample.tenant_id == DEMO_TENANT
            )
        ).all()
        invites = db.session.execute(
            select(TenantInvitation.id, TenantInvitation.revoked_at, TenantInvitation.uses).where(
                TenantInvitation.tenant_id == DEMO_TENANT
            )
        ).all()
        state = (
            campaign.name,
            campaign.version,
            campaign.archived_at,
            npcs,
            tuple(roles),
            tuple(keys),
            tuple(samples),
            tuple(invites),
        )
    with psycopg.connect(database_url) as conn:
        gw = conn.execute("SELECT campaign_id, guild_ids FROM public.tenants WHERE id = %s", (DEMO_TENANT,)).fetchone()
    return state, gw


def _operator_without_a_table(app) -> Browser:
    import uuid

    with app.app_context():
        user = User(
            id=str(uuid.uuid4()),
            tenant_id=None,
            name="Operator",
            role="super_admin",
            discord_id="op-" + uuid.uuid4().hex[:10],
        )
        db.session.add(user)
        db.session.commit()
        ns = type("U", (), {"id": user.id, "tenant_id": None})
    return Browser(app).login(ns)


# Every role, each from another table (the super admin too: their cross-tenant powers are the
# operator pages, never another table's resources), and an operator who belongs to no table.
ROLES = ["tenant_owner", "super_admin", "dm", "viewer", "super_admin_without_table"]


@pytest.mark.parametrize("role", ROLES)
def test_other_tenants_resources_are_404_on_every_route(app, database_url, demo, as_role, role):
    before = _snapshot(app, database_url)
    stranger = _operator_without_a_table(app) if role == "super_admin_without_table" else as_role(role)
    checked = 0
    wrong: list[str] = []
    for rule in app.url_map.iter_rules():
        if not rule.arguments or rule.endpoint in NOT_TENANT_SCOPED:
            continue
        url = _url(rule, demo)
        headers = {"Origin": "http://localhost"}
        if rule.websocket:  # a plain GET never matches a WebSocket rule (400): do the handshake
            headers.update(
                {
                    "Upgrade": "websocket",
                    "Connection": "Upgrade",
                    "Sec-WebSocket-Version": "13",
                    "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
                }
            )
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            for as_htmx in (False, True):  # a plain request and the same one from htmx
                resp = stranger.request(
                    method,
                    url,
                    data={
                        "name": "x",
                        "npc": "Greta Ironbraid",
                        "speech": "hi",
                        "role": "viewer",
                        "confirm_name": "The Sunken Crown",
                    },
                    headers=headers,
                    htmx=as_htmx and not rule.websocket,
                )
                if resp.status_code != 404:
                    wrong.append(f"{role} {method} {url}{' (htmx)' if as_htmx else ''} -> {resp.status_code}")
                checked += 1
    # Exactly 404 for every role: the row is looked up in the actor's tenant before the
    # permission is checked, so a role refusal (403) never tells anyone the row exists.
    assert not wrong, "\n".join(wrong)
    assert checked >= 70
    assert _snapshot(app, database_url) == before
    # The owner still sees and controls their own table (the ids were real).
    owner = demo["owner_browser"]
    assert owner.get(f"/campaigns/{DEMO_CAMPAIGN}").status_code == 200
    assert owner.get(f"/npcs/{demo['npc_id']}").status_code == 200
    assert owner.get(f"/sessions/{demo['session_id']}/transcript").status_code == 200
    # The demo table's own signed playback URL: it plays for the owner, and is 404 for the stranger.
    page = owner.get("/voice-library").get_data(as_text=True)
    url = re.search(r'<audio[^>]* src="([^"]+)"', page).group(1).replace("&amp;", "&")
    assert owner.get(url).status_code == 200
    assert stranger.get(url).status_code == 404


# Routes without ids (usage, billing) show the caller's own tenant only: the demo table's usage,
# per-campaign hours, export rows and invoices never appear for another tenant.
def test_usage_and_billing_show_only_the_callers_tenant(app, database_url, demo, as_role):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO public.usage_records (tenant_id, period, session_hours, llm_tokens) "
            "VALUES (%s, date_trunc('month', now())::date, 4321.5, 98765432) "
            "ON CONFLICT (tenant_id, period) DO UPDATE SET llm_tokens = 98765432, session_hours = 4321.5",
            (DEMO_TENANT,),
        )
        conn.execute(
            "INSERT INTO web.invoices (id, tenant_id, status, number, created) "
            "VALUES ('in_demo_1', %s, 'paid', 'DEMO-0001', now())",
            (DEMO_TENANT,),
        )
        conn.execute(
            "INSERT INTO web.audit_log (tenant_id, action, resource_type, resource_id, details) "
            "VALUES (%s, 'npc.update', 'npc', 'npc-demo', '{\"changes\": {\"name\": {\"after\": \"DEMO-0001\"}}}')",
            (DEMO_TENANT,),
        )
    owner = demo["owner_browser"]
    assert "98,765,432" in owner.get("/usage").get_data(as_text=True)  # the numbers are real
    stranger = as_role("tenant_owner")
    assert "DEMO-0001" in owner.get("/audit").get_data(as_text=True)  # the audit entry is real
    for url in ("/usage", "/usage/export", "/billing", "/dashboard", "/audit", "/audit/export"):
        body = stranger.get(url).get_data(as_text=True)
        assert "98765432" not in body and "98,765,432" not in body and "4321" not in body, url
        assert "DEMO-0001" not in body and "The Sunken Crown" not in body, url
