"""Adapter for the Glyphoxa v1 gateway: gRPC client, generated stubs (``pb``), domain
errors. Only what production runs lives here; the development and test gateway simulator is
``glyphoxa_htmx.simulator``.

The ``.proto`` sources live in ``proto/``; regenerate the stubs with
``python glyphoxa_htmx/adapters/gateway/gen_protos.py`` (``make protos``).
"""

from glyphoxa_htmx.adapters.gateway.client import (
    ActiveSession,
    BotStatus,
    GatewayClient,
    NpcLiveState,
    TenantInfo,
    Usage,
    WorkerStatus,
)
from glyphoxa_htmx.adapters.gateway.errors import (
    AlreadyExists,
    BotNotConnected,
    GatewayError,
    GatewayUnavailable,
    InvalidArgument,
    LiveControlUnsupported,
    NotFound,
    QuotaExceeded,
    SessionConflict,
)
from glyphoxa_htmx.adapters.gateway.tenant_id import is_valid_tenant_id, tenant_id_problem, tenant_schema

__all__ = [
    "ActiveSession",
    "AlreadyExists",
    "BotNotConnected",
    "BotStatus",
    "GatewayClient",
    "GatewayError",
    "GatewayUnavailable",
    "InvalidArgument",
    "LiveControlUnsupported",
    "NotFound",
    "NpcLiveState",
    "QuotaExceeded",
    "SessionConflict",
    "TenantInfo",
    "Usage",
    "WorkerStatus",
    "is_valid_tenant_id",
    "tenant_id_problem",
    "tenant_schema",
]
