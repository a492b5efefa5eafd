"""Settings → Voice & AI providers: write-only keys through the secrets adapter (local keyring
and Vault Transit over hvac), the Test button against local fakes of ElevenLabs and an
OpenAI-compatible server, per-tenant use of the TTS key by voice previews and the voice list."""

from __future__ import annotations

import base64
import json
import logging

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import select

from glyphoxa_htmx.adapters.secrets import key_version
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import AuditLog, ProviderConfig
from tests.conftest import GATEWAY_SECRET, Browser, make_settings, soup
from tests.support.fake_elevenlabs import FAKE_MP3, FakeElevenLabs
from tests.support.fake_openai import FakeOpenAI
from tests.support.fake_vault import FakeVault

XI_KEY = "xi-tenant-a-3b9f0c2d7e1a4f5b8c6d"
OAI_KEY = "sk-proj-tenantA-Zq8w7e6r5t4y3u2i1o0p"
OTHER_KEY = "xi-tenant-b-ffffeeee0000dddd9999"
RACHEL = "21m00Tcm4TlvDq8ikWAM"


@pytest.fixture(scope="module")
def fakes():
    xi, oai = FakeElevenLabs(api_key=XI_KEY).start(), FakeOpenAI(api_key=OAI_KEY).start()
    yield xi, oai
    xi.stop()
    oai.stop()


@pytest.fixture
def xi(fakes, monkeypatch, tmp_path):
    server = fakes[0]
    server.requests.clear()
    server.rate_limit_next = 0
    monkeypatch.setenv("ELEVENLABS_API_BASE", server.base)
    monkeypatch.delenv("ELEVENLABS_API_KEY", raising=False)
    monkeypatch.delenv("TTS_ENGINE", raising=False)
    monkeypatch.setenv("TTS_CACHE_DIR", str(tmp_path / "tts-cache"))
    from glyphoxa_htmx.services import voice

    voice._voice_lists.clear()
    return server


@pytest.fixture
def oai(fakes):
    server = fakes[1]
    server.requests.clear()
    server.rate_limit_next = 0
    return server


@pytest.fixture(scope="module")
def vault():
    server = FakeVault().start()
    yield server
    server.stop()


def _vault_app(database_url, simulator, addr):
    from glyphoxa_htmx.app import create_app

    application = create_app(
        make_settings(
            database_url,
            gateway_grpc_addr=simulator.address,
            gateway_secret=GATEWAY_SECRET,
            vault_addr=addr,
            vault_token="test-vault-token",
        )
    )
    application.config["TESTING"] = True
    return application


def _dispose(application) -> None:
    """Close the extra app's connection pool (parallel suites share one PostgreSQL)."""
    with application.app_context():
        db.engine.dispose()


@pytest.fixture(scope="module")
def vault_app(app, database_url, simulator, vault):
    """The same database, with Vault Transit (the fake, over HTTP) as the secrets backend."""
    application = _vault_app(database_url, simulator, vault.addr)
    yield application
    _dispose(application)


def _owner(app, make_user, role="tenant_owner", tenant_id=None):
    user = make_user(role=role, tenant_id=tenant_id)
    b = Browser(app).login(user)
    b.user = user
    return b


def _save(b, slot="tts", htmx=False, **fields):
    data = {"slot": slot, "provider": "elevenlabs", "model": "", "base_url": "", "options": "", **fields}
    return b.post("/settings/providers", data, htmx=htmx)


def _row(app, tenant_id, slot="tts") -> ProviderConfig | None:
    with app.app_context():
        row = db.session.execute(
            select(ProviderConfig).where(ProviderConfig.tenant_id == tenant_id, ProviderConfig.slot == slot)
        ).scalar_one_or_none()
        if row is not None:
            db.session.expunge(row)
        return row


def _scan_database(database_url, needles: list[str]) -> list[str]:
    """Every text-like column of every table (web, public, tenant_*) that contains a needle."""
    hits = []
    with psycopg.connect(database_url) as conn:
        cols = conn.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns "
            "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') "
            "AND data_type IN ('text', 'character varying', 'character', 'json', 'jsonb', 'ARRAY', 'USER-DEFINED') "
            "AND table_name IN (SELECT table_name FROM information_schema.tables t "
            "                   WHERE t.table_schema = columns.table_schema AND t.table_type = 'BASE TABLE')"
        ).fetchall()
        assert len(cols) > 30  # really walked the schema
        for schema, table, column in cols:
            for needle in needles:
                found = conn.execute(
                    f'SELECT count(*) FROM "{schema}"."{table}" WHERE "{column}"::text LIKE %s', (f"%{needle}%",)
                ).fetchone()[0]
                if found:
                    hits.append(f"{schema}.{table}.{column}")
    return hits


# ---- the page and permissions ---------------------------------------------------------------------


def test_page_lists_every_slot_and_dms_see_status_only(app, make_user):
    owner = _owner(app, make_user)
    page = soup(owner.get("/settings/providers"))
    assert [s["id"] for s in page.select("section.provider-slot")] == [
        "slot-llm",
        "slot-stt",
        "slot-tts",
        "slot-s2s",
        "slot-vad",
        "slot-embeddings",
    ]
    assert page.select_one("#tts-api-key")["type"] == "password"
    assert not page.select("[style]") and not page.select("script:not([src])")  # strict CSP
    assert {o["value"] for o in page.select("#llm-provider option")} == {
        "openai",
        "anthropic",
        "groq",
        "gemini",
        "local",
    }
    assert "Voice & AI providers" in soup(owner.get("/settings")).get_text()
    block = owner.get("/settings/providers", htmx=True)
    assert "<html" not in block.get_data(as_text=True) and soup(block).select("section.provider-slot")

    dm = _owner(app, make_user, role="dm", tenant_id=owner.user.tenant_id)
    assert _save(owner, api_key=XI_KEY).status_code == 303
    dm_page = soup(dm.get("/settings/providers"))
    assert dm_page.select_one("#slot-tts .provider-key").text == "••••" + XI_KEY[-4:]
    assert dm_page.select("form[action='/settings/providers']") == [] and dm_page.select_one("#tts-api-key") is None
    row = _row(app, owner.user.tenant_id)
    assert _save(dm, api_key=OTHER_KEY).status_code == 403
    assert dm.post(f"/settings/providers/{row.id}/test").status_code == 403
    assert dm.post(f"/settings/providers/{row.id}/key/remove", {"confirmed": "1"}).status_code == 403
    assert _row(app, owner.user.tenant_id).api_key_enc == row.api_key_enc
    viewer = _owner(app, make_user, role="viewer", tenant_id=owner.user.tenant_id)
    assert viewer.get("/settings/providers").status_code == 200


def test_key_is_write_only_local_keyring(app, make_user, database_url, caplog):
    caplog.set_level(logging.DEBUG)
    b = _owner(app, make_user)
    resp = _save(b, api_key=XI_KEY, model="eleven_multilingual_v2", options='{"stability": 0.4, "x-gw": [1]}')
    assert resp.status_code == 303
    row = _row(app, b.user.tenant_id)
    assert row.api_key_enc.startswith("local:v") and row.api_key_hint == XI_KEY[-4:]
    assert row.options == {"stability": 0.4, "x-gw": [1]}
    page = b.get("/settings/providers")
    html = page.get_data(as_text=True)
    assert XI_KEY not in html and row.api_key_enc not in html
    assert soup(page).select_one("#slot-tts .provider-key").text == "••••" + XI_KEY[-4:]
    assert soup(page).select_one("#tts-api-key").get("value") is None  # never rendered back
    # Replace: the audit log says so, without before/after key material.
    assert (
        _save(
            b, api_key=OTHER_KEY, model="eleven_multilingual_v2", options='{"stability": 0.4, "x-gw": [1]}'
        ).status_code
        == 303
    )
    replaced = _row(app, b.user.tenant_id)
    assert replaced.api_key_enc != row.api_key_enc and replaced.api_key_hint == OTHER_KEY[-4:]
    with app.app_context():
        audits = (
            db.session.execute(select(AuditLog).where(AuditLog.action == "provider.update").order_by(AuditLog.id))
            .scalars()
            .all()
        )
        assert [a.details["key"] for a in audits] == ["key added", "key replaced"]
        assert "changes" not in audits[1].details or "api_key" not in json.dumps(audits[1].details["changes"])
    # Saving without a key keeps the key (and the unchanged options exactly).
    assert _save(b, model="eleven_turbo_v2_5", options='{"x-gw": [1], "stability": 0.4}').status_code == 303
    kept = _row(app, b.user.tenant_id)
    assert kept.api_key_enc == replaced.api_key_enc and kept.model == "eleven_turbo_v2_5"
    needles = [XI_KEY, OTHER_KEY, base64.b64encode(XI_KEY.encode()).decode()[:24]]
    assert _scan_database(database_url, needles) == []
    assert not any(n in caplog.text for n in needles)


def test_key_is_write_only_vault_transit(vault_app, make_user, vault, database_url, caplog, xi):
    caplog.set_level(logging.DEBUG)
    b = _owner(vault_app, make_user)
    vault.requests.clear()
    resp = _save(b, api_key=XI_KEY, htmx=True)
    assert resp.status_code == 200 and "saved" in resp.headers["HX-Trigger"]
    assert XI_KEY not in resp.get_data(as_text=True)
    row = _row(vault_app, b.user.tenant_id)
    assert row.api_key_enc.startswith("vault:v1:")
    (enc,) = [r for r in vault.requests if r["path"] == "/v1/transit/encrypt/glyphoxa-provider-keys"]
    assert json.loads(enc["body"])["plaintext"] == base64.b64encode(XI_KEY.encode()).decode()
    # The Test button decrypts through Vault, in memory, and the provider sees the real key.
    tested = b.post(f"/settings/providers/{row.id}/test", htmx=True)
    assert tested.status_code == 200 and "accepted the key" in tested.headers["HX-Trigger"]
    assert any(r["path"] == "/v1/transit/decrypt/glyphoxa-provider-keys" for r in vault.requests)
    assert xi.requests[-1]["headers"]["Xi-Api-Key"] == XI_KEY
    needles = [XI_KEY, base64.b64encode(XI_KEY.encode()).decode()]
    assert _scan_database(database_url, needles) == []
    assert not any(n in caplog.text for n in needles)
    assert vault_app.test_client().get("/readyz").json["secrets_backend"] == "vault"


def test_secrets_backend_down_refuses_and_writes_nothing(app, make_user, database_url, simulator):
    down = _vault_app(database_url, simulator, "http://127.0.0.1:9")
    try:
        _refused_while_down(app, down, make_user)
    finally:
        _dispose(down)


def _refused_while_down(app, down, make_user):
    b = _owner(down, make_user)
    page = soup(b.get("/settings/providers"))
    assert "can't be added or replaced right now" in page.select_one("#secrets-down").text
    resp = _save(b, api_key=XI_KEY, htmx=True)
    assert resp.status_code == 422
    error = soup(resp).select_one("#api_key-error").text
    assert "secrets store is unavailable" in error and "Nothing was saved" in error
    assert XI_KEY not in resp.get_data(as_text=True)
    assert _row(app, b.user.tenant_id) is None  # no half row
    with app.app_context():
        assert db.session.execute(select(AuditLog).where(AuditLog.action.like("provider.%"))).first() is None
    ready = down.test_client().get("/readyz")
    assert ready.status_code == 503 and ready.json["failed"] == ["secrets"]
    assert ready.json["checks"]["secrets"] == "fail: unreachable" and ready.json["secrets_backend"] == "vault"


def test_validation_errors_at_the_fields_never_echo_the_key(app, make_user):
    b = _owner(app, make_user)
    bad_url = _save(b, slot="llm", provider="openai", base_url="http://api.example.com/v1", api_key=OAI_KEY, htmx=True)
    assert bad_url.status_code == 422
    doc = soup(bad_url)
    assert "only allowed for localhost" in doc.select_one("#base_url-error").text
    assert doc.select_one("#llm-base-url")["value"] == "http://api.example.com/v1"
    assert OAI_KEY not in bad_url.get_data(as_text=True)
    assert _save(b, slot="llm", provider="openai", options="[1, 2]", htmx=True).status_code == 422
    leaky = _save(b, slot="llm", provider="openai", options='{"extra": {"api_key": "sk-123456789"}}', htmx=True)
    assert leaky.status_code == 422 and "stored unencrypted" in soup(leaky).select_one("#options-error").text
    assert _save(b, slot="llm", provider="elevenlabs", htmx=True).status_code == 422  # not an LLM provider
    assert _save(b, slot="llm", provider="openai", api_key="has space in it", htmx=True).status_code == 422
    assert _save(b, slot="stt", provider="whisper", htmx=True).status_code == 422  # needs a base URL
    assert b.post("/settings/providers", {"slot": "nope", "provider": "openai"}).status_code == 404
    assert _row(app, b.user.tenant_id, "llm") is None
    assert _save(b, slot="llm", provider="openai", options='{"max_tokens": 400}').status_code == 303  # not a secret
    ok = _save(b, slot="stt", provider="whisper", base_url="http://localhost:9000/v1")
    assert ok.status_code == 303 and _row(app, b.user.tenant_id, "stt").base_url == "http://localhost:9000/v1"
    # Switching provider with a saved key needs the new provider's key.
    assert _save(b, slot="llm", provider="openai", api_key=OAI_KEY).status_code == 303
    switch = _save(b, slot="llm", provider="anthropic", htmx=True)
    assert switch.status_code == 422 and "Anthropic" in soup(switch).select_one("#api_key-error").text


def test_remove_key_and_forget(app, make_user):
    b = _owner(app, make_user)
    _save(b, api_key=XI_KEY)
    row = _row(app, b.user.tenant_id)
    confirm = b.post(f"/settings/providers/{row.id}/key/remove")  # no JS: a confirmation step first
    assert confirm.status_code == 200 and _row(app, b.user.tenant_id).api_key_enc
    assert b.post(f"/settings/providers/{row.id}/key/remove", {"confirmed": "1"}).status_code == 303
    gone = _row(app, b.user.tenant_id)
    assert gone.api_key_enc == "" and gone.api_key_hint == "" and gone.provider == "elevenlabs"
    assert soup(b.get("/settings/providers")).select_one("#slot-tts .badge-warn").text == "no key"
    assert b.post(f"/settings/providers/{row.id}/delete", htmx=True).status_code == 200
    assert _row(app, b.user.tenant_id) is None
    with app.app_context():
        actions = db.session.execute(select(AuditLog.action, AuditLog.details).order_by(AuditLog.id)).all()
    assert [a for a, _ in actions] == ["provider.update", "provider.key_remove", "provider.delete"]
    assert actions[1][1]["key"] == "key removed"


# ---- the Test button ------------------------------------------------------------------------------


def test_test_button_reports_each_outcome(app, make_user, xi, oai):
    b = _owner(app, make_user)
    _save(b, api_key=XI_KEY)
    _save(b, slot="llm", provider="openai", base_url=oai.base, api_key=OAI_KEY)
    tts_row, llm_row = _row(app, b.user.tenant_id), _row(app, b.user.tenant_id, "llm")

    def test(row):
        resp = b.post(f"/settings/providers/{row.id}/test", htmx=True)
        assert resp.status_code == 200
        assert XI_KEY not in resp.get_data(as_text=True) and OAI_KEY not in resp.get_data(as_text=True)
        return _row(app, b.user.tenant_id, row.slot)

    assert test(tts_row).last_test_status == "ok"
    assert xi.requests[-1]["path"] == "/v1/voices" and xi.requests[-1]["headers"]["Xi-Api-Key"] == XI_KEY
    ok = test(llm_row)
    assert ok.last_test_status == "ok" and ok.last_tested_at is not None
    assert (
        oai.requests[-1]["path"] == "/v1/models" and oai.requests[-1]["headers"]["Authorization"] == f"Bearer {OAI_KEY}"
    )
    xi.rate_limit_next = 1
    assert test(tts_row).last_test_status == "rate_limited"
    oai.rate_limit_next = 1
    limited = test(llm_row)
    assert limited.last_test_status == "rate_limited" and "rate-limiting" in limited.last_test_message
    page = soup(b.get("/settings/providers"))
    assert page.select_one("#slot-llm .provider-test .badge").text == "Rate-limited"
    _save(b, slot="llm", provider="openai", base_url=oai.base, api_key="sk-wrong-key-000000000000")
    failed = test(llm_row)
    # OpenAI echoes part of the key in its error: we never pass the provider's body on.
    assert failed.last_test_status == "auth_failed" and "rejected the key" in failed.last_test_message
    assert "sk-" not in failed.last_test_message
    _save(b, slot="llm", provider="openai", base_url="http://127.0.0.1:9/v1", api_key=OAI_KEY)
    assert test(llm_row).last_test_status == "unreachable"


def test_test_button_is_rate_limited_per_tenant(app, make_user, oai):
    b = _owner(app, make_user)
    _save(b, slot="llm", provider="openai", base_url=oai.base, api_key=OAI_KEY)
    row = _row(app, b.user.tenant_id, "llm")
    co_owner = _owner(app, make_user, tenant_id=b.user.tenant_id)
    dm = _owner(app, make_user, role="dm", tenant_id=b.user.tenant_id)
    for _ in range(8):  # refused before any provider call: doesn't spend the table's allowance
        assert dm.post(f"/settings/providers/{row.id}/test").status_code == 403
    for i in range(6):
        who = b if i % 2 else co_owner  # the allowance is the table's, not each person's
        assert who.post(f"/settings/providers/{row.id}/test").status_code == 303
    assert b.post(f"/settings/providers/{row.id}/test", htmx=True).status_code == 429
    assert co_owner.post(f"/settings/providers/{row.id}/test").status_code == 429
    assert len(oai.requests) == 6
    other = _owner(app, make_user)
    _save(other, slot="llm", provider="openai", base_url=oai.base, api_key=OAI_KEY)
    assert other.post(f"/settings/providers/{_row(app, other.user.tenant_id, 'llm').id}/test").status_code == 303


def test_other_tenants_config_is_404(app, make_user):
    a, b = _owner(app, make_user), _owner(app, make_user)
    _save(a, api_key=XI_KEY)
    row = _row(app, a.user.tenant_id)
    for url in (
        f"/settings/providers/{row.id}/test",
        f"/settings/providers/{row.id}/key/remove",
        f"/settings/providers/{row.id}/delete",
    ):
        assert b.post(url, {"confirmed": "1"}).status_code == 404
    assert _row(app, a.user.tenant_id).api_key_enc == row.api_key_enc


# ---- use: voice preview and the voice list --------------------------------------------------------


def _npc(app, user):
    from glyphoxa_htmx.core.authz import Actor, Role
    from glyphoxa_htmx.services import campaigns, npcs

    actor = Actor(user_id=user.id, tenant_id=user.tenant_id, role=Role(user.role))
    with app.app_context():
        campaign = campaigns.create(actor, {"name": "Voices"})
        return npcs.create(
            actor,
            campaign.id,
            {
                "name": "Greta",
                "voice": {"provider": "elevenlabs", "voice_id": RACHEL, "pitch_shift": 0, "speed_factor": 1.0},
            },
        ).id


def test_preview_uses_the_tenants_own_key_and_never_another(app, make_user, xi, monkeypatch):
    a = _owner(app, make_user)
    _save(a, api_key=XI_KEY)
    b = _owner(app, make_user)
    npc_a, npc_b = _npc(app, a.user), _npc(app, b.user)

    heard = a.post(f"/npcs/{npc_a}/voice-preview", {"preview_text": "Well met."})
    assert heard.status_code == 200 and heard.data == FAKE_MP3
    assert [r["headers"]["Xi-Api-Key"] for r in xi.requests] == [XI_KEY]
    assert a.get("/voices?provider=elevenlabs").status_code == 200
    assert xi.requests[-1]["path"] == "/v1/voices" and xi.requests[-1]["headers"]["Xi-Api-Key"] == XI_KEY

    # Tenant B has no key: no platform fallback unless the operator allows it, and A's key (or
    # A's cached voice list) is never used for B.
    xi.requests.clear()
    monkeypatch.setenv("ELEVENLABS_API_KEY", XI_KEY)  # the operator's key happens to be set
    refused = b.post(f"/npcs/{npc_b}/voice-preview", {"preview_text": "Well met."}, htmx=True)
    assert refused.status_code == 422 and "No ElevenLabs API key" in refused.headers["HX-Trigger"]
    listing = b.get("/voices?provider=elevenlabs", htmx=True)
    assert "No ElevenLabs API key" in soup(listing).select_one(".notice-error").text
    assert soup(listing).select(".voice-option") == [] and xi.requests == []

    # B saves its own key: B's requests carry B's key, never A's.
    _save(b, api_key=OTHER_KEY)
    denied = b.post(f"/npcs/{npc_b}/voice-preview", {"preview_text": "Again."})
    assert denied.status_code == 502 and "API key" in soup(denied).get_text()
    b.get("/voices?provider=elevenlabs")
    assert xi.requests and all(r["headers"]["Xi-Api-Key"] == OTHER_KEY for r in xi.requests)


def test_platform_key_is_only_an_operator_fallback(app, make_user, xi, monkeypatch):
    b = _owner(app, make_user)
    npc = _npc(app, b.user)
    monkeypatch.setenv("ELEVENLABS_API_KEY", XI_KEY)
    assert b.post(f"/npcs/{npc}/voice-preview", {"preview_text": "Hi."}).status_code == 422
    monkeypatch.setattr(app.extensions["glyphoxa.settings"], "allow_platform_keys", True)
    assert b.post(f"/npcs/{npc}/voice-preview", {"preview_text": "Hi."}).status_code == 200
    assert xi.requests[-1]["headers"]["Xi-Api-Key"] == XI_KEY
    # A table with its own key uses it even when the platform key is allowed.
    _save(b, api_key=OTHER_KEY)
    b.post(f"/npcs/{npc}/voice-preview", {"preview_text": "Ho."})
    assert xi.requests[-1]["headers"]["Xi-Api-Key"] == OTHER_KEY


def test_tenant_base_url_is_used_for_its_key(app, make_user, xi, monkeypatch):
    monkeypatch.setenv("ELEVENLABS_API_BASE", "http://127.0.0.1:9")  # the platform base is unreachable
    b = _owner(app, make_user)
    _save(b, api_key=XI_KEY, base_url=xi.base)
    resp = b.post(f"/npcs/{_npc(app, b.user)}/voice-preview", {"preview_text": "Hi."})
    assert resp.status_code == 200 and xi.requests[-1]["headers"]["Xi-Api-Key"] == XI_KEY


# ---- rotation + rewrap, end to end ----------------------------------------------------------------


def test_rewrap_secrets_cli_rotates_and_keeps_keys_readable(app, make_user, database_url, tmp_path, monkeypatch, xi):
    from glyphoxa_htmx.adapters.secrets import LocalKeyring
    from glyphoxa_htmx.cli import main

    ring = LocalKeyring(tmp_path / "keyring.json")
    monkeypatch.setitem(app.extensions, "glyphoxa.secrets", ring)
    b = _owner(app, make_user)
    _save(b, api_key=XI_KEY)
    old = _row(app, b.user.tenant_id).api_key_enc
    assert key_version(old) == 1
    env = {
        "DATABASE_URL": database_url,
        "SECRETS_KEYRING": str(tmp_path / "keyring.json"),
        "LOG_JSON": "0",
        "GLYPHOXA_INSTANCE_DIR": str(tmp_path),
    }
    result = CliRunner().invoke(main, ["rewrap-secrets", "--rotate"], env=env)
    assert result.exit_code == 0, result.output
    assert "new key version 2" in result.output and "1 key(s) rewrapped" in result.output
    new = _row(app, b.user.tenant_id).api_key_enc
    assert key_version(new) == 2 and ring.decrypt(new) == XI_KEY == ring.decrypt(old)
    again = CliRunner().invoke(main, ["rewrap-secrets"], env=env)
    assert "0 key(s) rewrapped, 1 already on the newest version" in again.output
    # The rewrapped key still works where it is used.
    assert b.post(f"/npcs/{_npc(app, b.user)}/voice-preview", {"preview_text": "Hi."}).status_code == 200


def test_rewrap_through_vault(vault_app, make_user, vault):
    from glyphoxa_htmx.core.deps import secrets
    from glyphoxa_htmx.services import providers

    b = _owner(vault_app, make_user)
    _save(b, api_key=XI_KEY)
    old = _row(vault_app, b.user.tenant_id).api_key_enc
    with vault_app.app_context():
        backend = secrets()
        version = backend.rotate()
        assert providers.rewrap_all() == (1, 0)
        new = _row(vault_app, b.user.tenant_id).api_key_enc
        assert key_version(new) == version > key_version(old)
        assert backend.decrypt(new) == XI_KEY == backend.decrypt(old)


# ---- the documented format for the gateway team ---------------------------------------------------


def test_json_schema_matches_what_we_write(app, make_user, tmp_path):
    from pathlib import Path

    import jsonschema

    from glyphoxa_htmx.adapters import providers as catalog

    schema = json.loads((Path(__file__).resolve().parent.parent / "docs" / "provider_configs.schema.json").read_text())
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["properties"]["slot"]["enum"] == list(catalog.SLOTS)
    assert set(schema["properties"]["provider"]["enum"]) == set(catalog.PROVIDERS)
    b = _owner(app, make_user)
    _save(b, api_key=XI_KEY, options='{"stability": 0.5}')
    _save(b, slot="llm", provider="local", base_url="http://localhost:11434/v1")
    with app.app_context():
        rows = db.session.execute(select(ProviderConfig).where(ProviderConfig.tenant_id == b.user.tenant_id)).scalars()
        for row in rows:
            doc = {c.name: getattr(row, c.name) for c in ProviderConfig.__table__.columns}
            doc = {k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in doc.items()}
            jsonschema.validate(doc, schema)
    # A local keyring file as the README describes it validates too, and decrypts as documented.
    from cryptography.hazmat.primitives.ciphers.aead import AESGCM

    from glyphoxa_htmx.adapters.secrets import LocalKeyring

    ring = LocalKeyring(tmp_path / "k.json")
    ct = ring.encrypt(XI_KEY)
    keyring = json.loads((tmp_path / "k.json").read_text())
    jsonschema.validate(keyring, {**schema["$defs"]["localKeyring"], "$schema": schema["$schema"]})
    _, version, body = ct.split(":", 2)
    key = base64.b64decode(next(k["key"] for k in keyring["keys"] if f"v{k['version']}" == version))
    raw = base64.b64decode(body)
    assert AESGCM(key).decrypt(raw[:12], raw[12:], None).decode() == XI_KEY


def test_a_stale_tab_after_another_owner_changed_the_slot(app, make_user, oai):
    a = _owner(app, make_user)
    _save(a, slot="llm", provider="openai", base_url=oai.base, api_key=OAI_KEY)
    row = _row(app, a.user.tenant_id, "llm")
    stale = soup(a.get("/settings/providers"))  # the tab stays open...
    test_url = stale.select_one(f"form[action='/settings/providers/{row.id}/test']")["action"]
    other = _owner(app, make_user, tenant_id=a.user.tenant_id)
    assert other.post(f"/settings/providers/{row.id}/key/remove", {"confirmed": "1"}).status_code == 303
    # ...its Test button now reports the missing key instead of using the removed one.
    resp = a.post(test_url, htmx=True)
    assert resp.status_code == 200 and "No API key is saved" in resp.headers["HX-Trigger"]
    assert oai.requests == []
    assert soup(resp).select_one("#slot-llm .badge-warn").text == "no key"
    assert other.post(f"/settings/providers/{row.id}/delete", {"confirmed": "1"}).status_code == 303
    gone = a.post(test_url, htmx=True)
    assert gone.status_code == 404 and "couldn" in json.loads(gone.headers["HX-Trigger"])["toast"]["message"]


def test_page_query_count_does_not_grow_with_configured_slots(app, make_user):
    from tests.test_campaigns import count_queries

    b = _owner(app, make_user)
    b.get("/settings/providers")
    with count_queries(app) as empty:
        assert b.get("/settings/providers").status_code == 200
    for slot, provider in (
        ("llm", "openai"),
        ("stt", "deepgram"),
        ("tts", "elevenlabs"),
        ("s2s", "openai"),
        ("embeddings", "gemini"),
    ):
        assert _save(b, slot=slot, provider=provider, api_key=XI_KEY).status_code == 303
    assert _save(b, slot="vad", provider="local", base_url="http://localhost:8000/v1").status_code == 303
    with count_queries(app) as full:
        assert b.get("/settings/providers").status_code == 200
    assert len(full) == len(empty)
