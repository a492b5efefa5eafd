"""Wire compatibility with the Glyphoxa v1 gateway: every message, field number, type and
cardinality of glyphoxa.v1 must match the table below, written from gateway-contract.md
section 2.2 (and 2.4 for NPCConfig). A renumbered, retyped or added field fails here."""

from __future__ import annotations

import pytest
from google.protobuf.descriptor import FieldDescriptor as F

from glyphoxa_htmx.adapters.gateway.pb import management_pb2 as mpb
from glyphoxa_htmx.adapters.gateway.pb import session_pb2 as spb

S, D, B, I32, I64, E, M = (
    F.TYPE_STRING,
    F.TYPE_DOUBLE,
    F.TYPE_BOOL,
    F.TYPE_INT32,
    F.TYPE_INT64,
    F.TYPE_ENUM,
    F.TYPE_MESSAGE,
)
TS = "google.protobuf.Timestamp"
REP = "repeated"

# message -> [(field, number, type, repeated?, referenced type or None)]
CONTRACT = {
    "TenantInfo": [
        ("id", 1, S),
        ("license_tier", 2, S),
        ("guild_ids", 3, S, REP),
        ("dm_role_id", 4, S),
        ("campaign_id", 5, S),
        ("monthly_session_hours", 6, D),
        ("created_at", 7, M, TS),
        ("updated_at", 8, M, TS),
    ],
    "CreateTenantRequest": [
        ("id", 1, S),
        ("license_tier", 2, S),
        ("bot_token", 3, S),
        ("guild_ids", 4, S, REP),
        ("dm_role_id", 5, S),
        ("campaign_id", 6, S),
    ],
    "GetTenantRequest": [("id", 1, S)],
    "DeleteTenantRequest": [("id", 1, S)],
    "ListTenantsRequest": [],
    "ListTenantsResponse": [("tenants", 1, M, REP, "glyphoxa.v1.TenantInfo")],
    "TenantResponse": [("tenant", 1, M, "glyphoxa.v1.TenantInfo")],
    "DeleteTenantResponse": [],
    "UpdateTenantRequest": [
        ("id", 1, S),
        ("license_tier", 2, S),
        ("bot_token", 3, S),
        ("guild_ids", 4, S, REP),
        ("dm_role_id", 5, S),
        ("campaign_id", 6, S),
        ("clear_dm_role_id", 7, B),
        ("clear_campaign_id", 8, B),
    ],
    "StartWebSessionRequest": [("tenant_id", 1, S), ("campaign_id", 2, S), ("guild_id", 3, S), ("channel_id", 4, S)],
    "StartWebSessionResponse": [("session_id", 1, S)],
    "StopWebSessionRequest": [("session_id", 1, S)],
    "StopWebSessionResponse": [],
    "ListActiveSessionsRequest": [("tenant_id", 1, S)],
    "ActiveSessionInfo": [
        ("session_id", 1, S),
        ("tenant_id", 2, S),
        ("campaign_id", 3, S),
        ("guild_id", 4, S),
        ("channel_id", 5, S),
        ("license_tier", 6, S),
        ("state", 7, E, "glyphoxa.v1.SessionState"),
        ("error", 8, S),
        ("started_at", 9, M, TS),
    ],
    "ListActiveSessionsResponse": [("sessions", 1, M, REP, "glyphoxa.v1.ActiveSessionInfo")],
    "GetUsageRequest": [("tenant_id", 1, S), ("period", 2, M, TS)],
    "GetUsageResponse": [
        ("tenant_id", 1, S),
        ("period", 2, M, TS),
        ("session_hours", 3, D),
        ("llm_tokens", 4, I64),
        ("stt_seconds", 5, D),
        ("tts_chars", 6, I64),
    ],
    "GetBotStatusRequest": [("tenant_id", 1, S)],
    "GetBotStatusResponse": [
        ("tenant_id", 1, S),
        ("state", 2, E, "glyphoxa.v1.BotConnectionState"),
        ("guild_count", 3, I32),
        ("error", 4, S),
    ],
    "NPCConfig": [
        ("name", 1, S),
        ("personality", 2, S),
        ("engine", 3, S),
        ("voice_id", 4, S),
        ("knowledge_scope", 5, S, REP),
        ("budget_tier", 6, S),
        ("gm_helper", 7, B),
        ("address_only", 8, B),
    ],
}

ENUMS = {
    "SessionState": {
        "SESSION_STATE_UNSPECIFIED": 0,
        "SESSION_STATE_PENDING": 1,
        "SESSION_STATE_ACTIVE": 2,
        "SESSION_STATE_ENDED": 3,
    },
    "BotConnectionState": {
        "BOT_CONNECTION_STATE_UNSPECIFIED": 0,
        "BOT_CONNECTION_STATE_CONNECTED": 1,
        "BOT_CONNECTION_STATE_DISCONNECTED": 2,
        "BOT_CONNECTION_STATE_ERROR": 3,
    },
}

MANAGEMENT_RPCS = {
    "CreateTenant": ("CreateTenantRequest", "TenantResponse"),
    "GetTenant": ("GetTenantRequest", "TenantResponse"),
    "ListTenants": ("ListTenantsRequest", "ListTenantsResponse"),
    "UpdateTenant": ("UpdateTenantRequest", "TenantResponse"),
    "DeleteTenant": ("DeleteTenantRequest", "DeleteTenantResponse"),
    "StartWebSession": ("StartWebSessionRequest", "StartWebSessionResponse"),
    "StopWebSession": ("StopWebSessionRequest", "StopWebSessionResponse"),
    "ListActiveSessions": ("ListActiveSessionsRequest", "ListActiveSessionsResponse"),
    "GetUsage": ("GetUsageRequest", "GetUsageResponse"),
    "GetBotStatus": ("GetBotStatusRequest", "GetBotStatusResponse"),
}
WORKER_RPCS = {"GetStatus", "ListNPCs", "MuteNPC", "UnmuteNPC", "MuteAllNPCs", "UnmuteAllNPCs", "SpeakNPC"}


def _descriptor(name: str):
    for module in (mpb, spb):
        if name in module.DESCRIPTOR.message_types_by_name:
            return module.DESCRIPTOR.message_types_by_name[name]
    raise AssertionError(f"message glyphoxa.v1.{name} is missing")


def _normalise(spec: tuple) -> tuple:
    name, number, ftype, *rest = spec
    repeated = REP in rest
    ref = next((r for r in rest if r != REP), None)
    return name, number, ftype, repeated, ref


@pytest.mark.parametrize("message", sorted(CONTRACT))
def test_message_fields_match_the_contract(message):
    desc = _descriptor(message)
    assert desc.full_name == f"glyphoxa.v1.{message}"
    actual = []
    for f in desc.fields:
        ref = f.message_type.full_name if f.message_type else (f.enum_type.full_name if f.enum_type else None)
        actual.append((f.name, f.number, f.type, f.is_repeated, ref))
    expected = [_normalise(s) for s in CONTRACT[message]]
    assert sorted(actual, key=lambda x: x[1]) == sorted(expected, key=lambda x: x[1])


def test_proto_files_keep_the_gateways_names_and_package():
    assert mpb.DESCRIPTOR.name == "glyphoxa/v1/management.proto"
    assert spb.DESCRIPTOR.name == "glyphoxa/v1/session.proto"
    assert mpb.DESCRIPTOR.package == spb.DESCRIPTOR.package == "glyphoxa.v1"
    assert [d.name for d in mpb.DESCRIPTOR.dependencies] == [
        "google/protobuf/timestamp.proto",
        "glyphoxa/v1/session.proto",
    ]


@pytest.mark.parametrize("enum", sorted(ENUMS))
def test_enums_match_the_contract(enum):
    module = spb if enum == "SessionState" else mpb
    desc = module.DESCRIPTOR.enum_types_by_name[enum]
    assert {v.name: v.number for v in desc.values} == ENUMS[enum]


def test_management_service_methods_and_paths():
    service = mpb.DESCRIPTOR.services_by_name["ManagementService"]
    assert service.full_name == "glyphoxa.v1.ManagementService"
    got = {m.name: (m.input_type.name, m.output_type.name) for m in service.methods}
    assert got == MANAGEMENT_RPCS
    assert all(not m.client_streaming and not m.server_streaming for m in service.methods)


def test_worker_service_methods():
    service = spb.DESCRIPTOR.services_by_name["SessionWorkerService"]
    assert service.full_name == "glyphoxa.v1.SessionWorkerService"
    assert {m.name for m in service.methods} == WORKER_RPCS
    for m in service.methods:
        assert m.input_type.fields_by_name["session_id"].number == 1  # every worker request carries it


# ---- encoded bytes: the tags on the wire are what the gateway decodes

WIRE_TYPE = {S: 2, M: 2, D: 1, B: 0, I32: 0, I64: 0, E: 0}


def _read_varint(data: bytes, pos: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _tags(data: bytes) -> set[tuple[int, int]]:
    """(field number, wire type) of every top-level field in an encoded message."""
    tags, pos = set(), 0
    while pos < len(data):
        key, pos = _read_varint(data, pos)
        number, wire = key >> 3, key & 7
        tags.add((number, wire))
        if wire == 0:
            _, pos = _read_varint(data, pos)
        elif wire == 1:
            pos += 8
        elif wire == 2:
            length, pos = _read_varint(data, pos)
            pos += length
        elif wire == 5:
            pos += 4
        else:  # pragma: no cover
            raise AssertionError(f"unexpected wire type {wire}")
    return tags


def _fill(msg) -> None:
    for f in msg.DESCRIPTOR.fields:
        if f.type == M:
            sub = getattr(msg, f.name).add() if f.is_repeated else getattr(msg, f.name)
            if f.message_type.full_name == TS:
                sub.seconds = 1_700_000_000
            else:
                _fill(sub)
            continue
        value = {S: "x", D: 1.5, B: True, I32: 7, I64: 9, E: 1}[f.type]
        if f.is_repeated:
            getattr(msg, f.name).append(value)
        else:
            setattr(msg, f.name, value)


@pytest.mark.parametrize("message", sorted(m for m in CONTRACT if CONTRACT[m]))
def test_encoded_tags_match_the_contract(message):
    cls = getattr(mpb, message, None) or getattr(spb, message)
    msg = cls()
    _fill(msg)
    expected = set()
    for spec in CONTRACT[message]:
        _, number, ftype, repeated, _ = _normalise(spec)
        # proto3 packs repeated scalars (none here besides strings, which are never packed)
        expected.add((number, WIRE_TYPE[ftype]))
    assert _tags(msg.SerializeToString()) == expected
