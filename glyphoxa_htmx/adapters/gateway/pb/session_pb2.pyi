import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class SessionState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SESSION_STATE_UNSPECIFIED: _ClassVar[SessionState]
    SESSION_STATE_PENDING: _ClassVar[SessionState]
    SESSION_STATE_ACTIVE: _ClassVar[SessionState]
    SESSION_STATE_ENDED: _ClassVar[SessionState]
SESSION_STATE_UNSPECIFIED: SessionState
SESSION_STATE_PENDING: SessionState
SESSION_STATE_ACTIVE: SessionState
SESSION_STATE_ENDED: SessionState

class NPCConfig(_message.Message):
    __slots__ = ("name", "personality", "engine", "voice_id", "knowledge_scope", "budget_tier", "gm_helper", "address_only")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PERSONALITY_FIELD_NUMBER: _ClassVar[int]
    ENGINE_FIELD_NUMBER: _ClassVar[int]
    VOICE_ID_FIELD_NUMBER: _ClassVar[int]
    KNOWLEDGE_SCOPE_FIELD_NUMBER: _ClassVar[int]
    BUDGET_TIER_FIELD_NUMBER: _ClassVar[int]
    GM_HELPER_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_ONLY_FIELD_NUMBER: _ClassVar[int]
    name: str
    personality: str
    engine: str
    voice_id: str
    knowledge_scope: _containers.RepeatedScalarFieldContainer[str]
    budget_tier: str
    gm_helper: bool
    address_only: bool
    def __init__(self, name: _Optional[str] = ..., personality: _Optional[str] = ..., engine: _Optional[str] = ..., voice_id: _Optional[str] = ..., knowledge_scope: _Optional[_Iterable[str]] = ..., budget_tier: _Optional[str] = ..., gm_helper: _Optional[bool] = ..., address_only: _Optional[bool] = ...) -> None: ...

class GetStatusRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class SessionStatus(_message.Message):
    __slots__ = ("session_id", "state", "started_at", "error")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    state: SessionState
    started_at: _timestamp_pb2.Timestamp
    error: str
    def __init__(self, session_id: _Optional[str] = ..., state: _Optional[_Union[SessionState, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., error: _Optional[str] = ...) -> None: ...

class GetStatusResponse(_message.Message):
    __slots__ = ("sessions",)
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    sessions: _containers.RepeatedCompositeFieldContainer[SessionStatus]
    def __init__(self, sessions: _Optional[_Iterable[_Union[SessionStatus, _Mapping]]] = ...) -> None: ...

class NPCInfo(_message.Message):
    __slots__ = ("id", "name", "muted")
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    MUTED_FIELD_NUMBER: _ClassVar[int]
    id: str
    name: str
    muted: bool
    def __init__(self, id: _Optional[str] = ..., name: _Optional[str] = ..., muted: _Optional[bool] = ...) -> None: ...

class ListNPCsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ListNPCsResponse(_message.Message):
    __slots__ = ("npcs",)
    NPCS_FIELD_NUMBER: _ClassVar[int]
    npcs: _containers.RepeatedCompositeFieldContainer[NPCInfo]
    def __init__(self, npcs: _Optional[_Iterable[_Union[NPCInfo, _Mapping]]] = ...) -> None: ...

class MuteNPCRequest(_message.Message):
    __slots__ = ("session_id", "npc_name")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NPC_NAME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    npc_name: str
    def __init__(self, session_id: _Optional[str] = ..., npc_name: _Optional[str] = ...) -> None: ...

class MuteNPCResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class UnmuteNPCRequest(_message.Message):
    __slots__ = ("session_id", "npc_name")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NPC_NAME_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    npc_name: str
    def __init__(self, session_id: _Optional[str] = ..., npc_name: _Optional[str] = ...) -> None: ...

class UnmuteNPCResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class MuteAllNPCsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class MuteAllNPCsResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class UnmuteAllNPCsRequest(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class UnmuteAllNPCsResponse(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class SpeakNPCRequest(_message.Message):
    __slots__ = ("session_id", "npc_name", "text")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    NPC_NAME_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    npc_name: str
    text: str
    def __init__(self, session_id: _Optional[str] = ..., npc_name: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class SpeakNPCResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...
