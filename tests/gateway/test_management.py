"""ManagementService through GatewayClient against the simulator over a real gRPC channel:
tenants, usage, bot status and the gateway's status codes mapped to domain errors."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import grpc
import pytest

from glyphoxa_htmx.adapters.gateway import (
    AlreadyExists,
    BotNotConnected,
    InvalidArgument,
    NotFound,
    TenantInfo,
)

from .conftest import unique_guild, unique_tenant


def test_create_get_list_tenant(gw, db):
    tid = unique_tenant()
    guild = unique_guild()
    created = gw.create_tenant(
        tid, "dedicated", bot_token="plain.bot.token", guild_ids=[guild], dm_role_id="42", campaign_id="camp_a"
    )
    assert isinstance(created, TenantInfo)
    assert (created.id, created.license_tier, created.guild_ids, created.dm_role_id, created.campaign_id) == (
        tid,
        "dedicated",
        [guild],
        "42",
        "camp_a",
    )
    assert created.monthly_session_hours == 0.0
    assert created.created_at is not None and created.created_at.tzinfo is not None

    assert gw.get_tenant(tid) == created
    assert tid in {t.id for t in gw.list_tenants()}
    # the token is written through (the simulator has no Vault) but never returned
    assert db.execute("SELECT bot_token FROM public.tenants WHERE id = %s", (tid,)).fetchone()[0] == "plain.bot.token"
    assert not hasattr(created, "bot_token")


def test_tenant_without_guilds_is_stored_as_null_and_read_as_empty(gw, db):
    tid = unique_tenant()
    assert gw.create_tenant(tid).guild_ids == []
    assert db.execute("SELECT guild_ids FROM public.tenants WHERE id = %s", (tid,)).fetchone()[0] is None
    assert gw.get_tenant(tid).guild_ids == []


def test_update_tenant_applies_only_given_fields_and_clear_flags(gw, db):
    tid = unique_tenant()
    gw.create_tenant(tid, guild_ids=["1"], dm_role_id="role", campaign_id="camp")
    db.execute("UPDATE public.tenants SET monthly_session_hours = 12.5 WHERE id = %s", (tid,))

    updated = gw.update_tenant(tid, license_tier="dedicated", guild_ids=["2", "3"])
    assert (updated.license_tier, updated.guild_ids, updated.dm_role_id, updated.campaign_id) == (
        "dedicated",
        ["2", "3"],
        "role",
        "camp",
    )
    assert updated.monthly_session_hours == 12.5  # quota hours are untouched by updates

    cleared = gw.update_tenant(tid, clear_dm_role_id=True, clear_campaign_id=True)
    assert (cleared.dm_role_id, cleared.campaign_id, cleared.guild_ids) == ("", "", ["2", "3"])
    assert gw.update_tenant(tid, campaign_id="camp_b").campaign_id == "camp_b"
    assert cleared.updated_at >= updated.updated_at

    with pytest.raises(InvalidArgument):  # the gateway cannot empty the guild list
        gw.update_tenant(tid, guild_ids=[])
    with pytest.raises(InvalidArgument) as exc:
        gw.update_tenant(tid, license_tier="guild")
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(NotFound):
        gw.update_tenant(unique_tenant(), license_tier="shared")


def test_delete_tenant_removes_only_the_tenant_row(gw, db):
    tid = unique_tenant()
    gw.create_tenant(tid)
    db.execute(
        "INSERT INTO public.usage_records (tenant_id, period, llm_tokens) VALUES (%s, date_trunc('month', now()), 5)",
        (tid,),
    )
    gw.delete_tenant(tid)
    with pytest.raises(NotFound):
        gw.get_tenant(tid)
    # nothing is cascaded (contract 6.3)
    assert db.execute("SELECT llm_tokens FROM public.usage_records WHERE tenant_id = %s", (tid,)).fetchone()[0] == 5
    with pytest.raises(NotFound) as exc:
        gw.delete_tenant(tid)
    assert exc.value.code == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("bad_id", ["", "Rabenheim", "raben-heim", str(uuid.uuid4()), "9lives", "a" * 57, "ünïcode"])
def test_create_tenant_rejects_ids_the_gateway_rejects(gw, bad_id):
    with pytest.raises(InvalidArgument) as exc:
        gw.create_tenant(bad_id)
    assert exc.value.code == grpc.StatusCode.INVALID_ARGUMENT
    assert exc.value.message  # something the UI can show


def test_create_tenant_accepts_the_longest_valid_id(gw):
    tid = "a" + uuid.uuid4().hex[:12] + "_" * 43
    assert len(tid) == 56
    assert gw.create_tenant(tid).id == tid


@pytest.mark.parametrize("tier", ["", "free", "Shared", "guild"])
def test_create_tenant_rejects_unknown_tiers(gw, tier):
    with pytest.raises(InvalidArgument):
        gw.create_tenant(unique_tenant(), license_tier=tier)


def test_duplicate_tenant_is_already_exists(gw):
    tid = unique_tenant()
    gw.create_tenant(tid)
    with pytest.raises(AlreadyExists) as exc:
        gw.create_tenant(tid, "dedicated")
    assert exc.value.code == grpc.StatusCode.ALREADY_EXISTS


def test_get_unknown_tenant_is_not_found(gw):
    with pytest.raises(NotFound):
        gw.get_tenant(unique_tenant())


def test_usage_is_zero_without_a_row_and_reads_a_given_month(gw, db):
    tid = unique_tenant()
    gw.create_tenant(tid)
    usage = gw.get_usage(tid)
    today = datetime.now(UTC).date()
    assert usage.period == today.replace(day=1)
    assert (usage.tenant_id, usage.session_hours, usage.llm_tokens, usage.stt_seconds, usage.tts_chars) == (
        tid,
        0.0,
        0,
        0.0,
        0,
    )

    db.execute(
        "INSERT INTO public.usage_records (tenant_id, period, session_hours, llm_tokens, stt_seconds, tts_chars) "
        "VALUES (%s, '2025-03-01', 4.25, 1200, 33.5, 900)",
        (tid,),
    )
    march = gw.get_usage(tid, date(2025, 3, 17))  # any day of the month selects the month
    assert (march.period, march.session_hours, march.llm_tokens, march.stt_seconds, march.tts_chars) == (
        date(2025, 3, 1),
        4.25,
        1200,
        33.5,
        900,
    )
    assert gw.get_usage(tid, date(2025, 4, 1)).llm_tokens == 0
    with pytest.raises(InvalidArgument):
        gw.get_usage("")


def test_bot_status(gw, gw_sim):
    tid = unique_tenant()
    gw.create_tenant(tid, guild_ids=[unique_guild(), unique_guild()])
    status = gw.get_bot_status(tid)
    assert (status.tenant_id, status.state, status.guild_count) == (tid, "connected", 2)
    gw_sim.set_bot_connected(tid, False)
    try:
        assert gw.get_bot_status(tid).state == "disconnected"
    finally:
        gw_sim.set_bot_connected(tid, True)
    assert gw.get_bot_status(unique_tenant()).state == "disconnected"  # unknown tenant
    with pytest.raises(InvalidArgument):
        gw.get_bot_status("")


def test_list_active_sessions_requires_a_tenant(gw):
    with pytest.raises(InvalidArgument):
        gw.list_active_sessions("")
    assert gw.list_active_sessions(unique_tenant()) == []


def test_start_session_with_disconnected_bot_is_bot_not_connected(gw, gw_sim, tenant):
    gw_sim.set_bot_connected(tenant.id, False)
    try:
        with pytest.raises(BotNotConnected) as exc:
            gw.start_web_session(tenant.id, tenant.guild_ids[0], "chan")
        assert exc.value.code == grpc.StatusCode.FAILED_PRECONDITION
    finally:
        gw_sim.set_bot_connected(tenant.id, True)
    with pytest.raises(BotNotConnected):  # no such tenant: no bot either
        gw.start_web_session(unique_tenant(), unique_guild(), "chan")


def test_one_client_is_shared_by_many_threads(gw):
    from concurrent.futures import ThreadPoolExecutor

    tid = unique_tenant()
    gw.create_tenant(tid, guild_ids=[unique_guild()])
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: gw.get_bot_status(tid).guild_count, range(64)))
    assert results == [1] * 64
    assert gw.breaker_state == "closed"
