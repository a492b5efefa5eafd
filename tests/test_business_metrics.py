"""The plan's business counters move for real: each action, then /metrics is read and the
counter (or gauge) has moved. (Subscription changes are checked in test_billing.)"""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Browser
from tests.test_voice import _npc, fake_xi, xi  # noqa: F401 - the ElevenLabs double fixtures


def scrape(app, name: str, **labels) -> float:
    body = app.test_client().get("/metrics").get_data(as_text=True)
    for family in text_string_to_metric_families(body):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                return sample.value
    return 0.0


def test_signup_counts_by_tier(app, visitor):
    before = scrape(app, "glyphoxa_web_signups_total", tier="self_hosted")
    resp = visitor.post("/auth/dev", {"name": "Counted Carla", "role": "tenant_owner"})
    assert resp.status_code in (302, 303)
    assert scrape(app, "glyphoxa_web_signups_total", tier="self_hosted") == before + 1


def test_active_users_follow_sign_in_and_out(app, make_user):
    first = make_user("tenant_owner")
    a = Browser(app).login(first)
    assert scrape(app, "glyphoxa_web_active_users_total", tenant_id=first.tenant_id) == 1
    Browser(app).login(make_user("dm", tenant_id=first.tenant_id))
    assert scrape(app, "glyphoxa_web_active_users_total", tenant_id=first.tenant_id) == 2
    assert a.post("/auth/logout").status_code in (302, 303)
    assert scrape(app, "glyphoxa_web_active_users_total", tenant_id=first.tenant_id) == 1


def test_voice_previews_are_counted_per_tenant(app, as_role, xi):  # noqa: F811
    b = as_role("dm")
    npc_id = _npc(app, b.user)
    before = scrape(app, "glyphoxa_web_voice_previews_total", tenant_id=b.user.tenant_id)
    assert b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "Counted."}).status_code == 200
    assert scrape(app, "glyphoxa_web_voice_previews_total", tenant_id=b.user.tenant_id) == before + 1
    assert b.post(f"/npcs/{npc_id}/voice-preview", {"preview_text": "Counted."}).status_code == 200  # cache hit
    assert scrape(app, "glyphoxa_web_voice_previews_total", tenant_id=b.user.tenant_id) == before + 2
