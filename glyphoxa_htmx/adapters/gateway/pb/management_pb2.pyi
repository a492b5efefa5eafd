import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from glyphoxa_htmx.adapters.gateway.pb import session_pb2 as _session_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BotConnectionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BOT_CONNECTION_STATE_UNSPECIFIED: _ClassVar[BotConnectionState]
    BOT_CONNECTION_STATE_CONNECTED: _ClassVar[BotConnectionState]
    BOT_CONNECTION_STATE_DISCONNECTED: _ClassVar[BotConnectionState]
    BOT_CONNECTION_STATE_ERROR: _ClassVar[BotConnectionState]
BOT_CONNECTION_STATE_UNSPECIFIED: BotConnectionState
BOT_CONNECTION_STATE_CONNECTED: BotConnectionState
BOT_CONNECTION_STATE_DISCONNECTED: BotConnectionState
BOT_CONNECTION_STATE_ERROR: BotConnectionState

class TenantInfo(_message.Message):
    __slots__ = ("id", "license_tier", "guild_ids", "dm_role_id", "campaign_id", "monthly_session_hours", "created_at", "updated_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    LICENSE_TIER_FIELD_NUMBER: _ClassVar[int]
    GUILD_IDS_FIELD_NUMBER: _ClassVar[int]
    DM_ROLE_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_SESSION_HOURS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    license_tier: str
    guild_ids: _containers.RepeatedScalarFieldContainer[str]
    dm_role_id: str
    campaign_id: str
    monthly_session_hours: float
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., license_tier: _Optional[str] = ..., guild_ids: _Optional[_Iterable[str]] = ..., dm_role_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., monthly_session_hours: _Optional[float] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateTenantRequest(_message.Message):
    __slots__ = ("id", "license_tier", "bot_token", "guild_ids", "dm_role_id", "campaign_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    LICENSE_TIER_FIELD_NUMBER: _ClassVar[int]
    BOT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    GUILD_IDS_FIELD_NUMBER: _ClassVar[int]
    DM_ROLE_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    license_tier: str
    bot_token: str
    guild_ids: _containers.RepeatedScalarFieldContainer[str]
    dm_role_id: str
    campaign_id: str
    def __init__(self, id: _Optional[str] = ..., license_tier: _Optional[str] = ..., bot_token: _Optional[str] = ..., guild_ids: _Optional[_Iterable[str]] = ..., dm_role_id: _Optional[str] = ..., campaign_id: _Optional[str] = ...) -> None: ...

class GetTenantRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListTenantsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTenantsResponse(_message.Message):
    __slots__ = ("tenants",)
    TENANTS_FIELD_NUMBER: _ClassVar[int]
    tenants: _containers.RepeatedCompositeFieldContainer[TenantInfo]
    def __init__(self, tenants: _Optional[_Iterable[_Union[TenantInfo, _Mapping]]] = ...) -> None: ...

class UpdateTenantRequest(_message.Message):
    __slots__ = ("id", "license_tier", "bot_token", "guild_ids", "dm_role_id", "campaign_id", "clear_dm_role_id", "clear_campaign_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    LICENSE_TIER_FIELD_NUMBER: _ClassVar[int]
    BOT_TOKEN_FIELD_NUMBER: _ClassVar[int]
    GUILD_IDS_FIELD_NUMBER: _ClassVar[int]
    DM_ROLE_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    CLEAR_DM_ROLE_ID_FIELD_NUMBER: _ClassVar[int]
    CLEAR_CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    license_tier: str
    bot_token: str
    guild_ids: _containers.RepeatedScalarFieldContainer[str]
    dm_role_id: str
    campaign_id: str
    clear_dm_role_id: bool
    clear_campaign_id: bool
    def __init__(self, id: _Optional[str] = ..., license_tier: _Optional[str] = ..., bot_token: _Optional[str] = ..., guild_ids: _Optional[_Iterable[str]] = ..., dm_role_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., clear_dm_role_id: _Optional[bool] = ..., clear_campaign_id: _Optional[bool] = ...) -> None: ...

class TenantResponse(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: TenantInfo
    def __init__(self, tenant: _Optional[_Union[TenantInfo, _Mapping]] = ...) -> None: ...

class DeleteTenantRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteTenantResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StartWebSessionRequest(_message.Message):
    __slots__ = ("tenant_id", "campaign_id", "guild_id", "channel_id")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    GUILD_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    campaign_id: str
    guild_id: str
    channel_id: str
    def __init__(self, tenant_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., guild_id: _Optional[str] = ..., channel_id: _Optional[str] = ...) -> None: ...

class StartWebSessionResponse(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class StopWebSessionRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class StopWebSessionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListActiveSessionsRequest(_message.Message):
    __slots__ = ("tenant_id",)
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    def __init__(self, tenant_id: _Optional[str] = ...) -> None: ...

class ActiveSessionInfo(_message.Message):
    __slots__ = ("session_id", "tenant_id", "campaign_id", "guild_id", "channel_id", "license_tier", "state", "error", "started_at")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    CAMPAIGN_ID_FIELD_NUMBER: _ClassVar[int]
    GUILD_ID_FIELD_NUMBER: _ClassVar[int]
    CHANNEL_ID_FIELD_NUMBER: _ClassVar[int]
    LICENSE_TIER_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    tenant_id: str
    campaign_id: str
    guild_id: str
    channel_id: str
    license_tier: str
    state: _session_pb2.SessionState
    error: str
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, session_id: _Optional[str] = ..., tenant_id: _Optional[str] = ..., campaign_id: _Optional[str] = ..., guild_id: _Optional[str] = ..., channel_id: _Optional[str] = ..., license_tier: _Optional[str] = ..., state: _Optional[_Union[_session_pb2.SessionState, str]] = ..., error: _Optional[str] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListActiveSessionsResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[ActiveSessionInfo]
    def __init__(self, sessions: _Optional[_Iterable[_Union[ActiveSessionInfo, _Mapping]]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("tenant_id", "period")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    period: _timestamp_pb2.Timestamp
    def __init__(self, tenant_id: _Optional[str] = ..., period: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("tenant_id", "period", "session_hours", "llm_tokens", "stt_seconds", "tts_chars")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    PERIOD_FIELD_NUMBER: _ClassVar[int]
    SESSION_HOURS_FIELD_NUMBER: _ClassVar[int]
    LLM_TOKENS_FIELD_NUMBER: _ClassVar[int]
    STT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    TTS_CHARS_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    period: _timestamp_pb2.Timestamp
    session_hours: float
    llm_tokens: int
    stt_seconds: float
    tts_chars: int
    def __init__(self, tenant_id: _Optional[str] = ..., period: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., session_hours: _Optional[float] = ..., llm_tokens: _Optional[int] = ..., stt_seconds: _Optional[float] = ..., tts_chars: _Optional[int] = ...) -> None: ...

class GetBotStatusRequest(_message.Message):
    __slots__ = ("tenant_id",)
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    def __init__(self, tenant_id: _Optional[str] = ...) -> None: ...

class GetBotStatusResponse(_message.Message):
    __slots__ = ("tenant_id", "state", "guild_count", "error")
    TENANT_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    GUILD_COUNT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    tenant_id: str
    state: BotConnectionState
    guild_count: int
    error: str
    def __init__(self, tenant_id: _Optional[str] = ..., state: _Optional[_Union[BotConnectionState, str]] = ..., guild_count: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...
