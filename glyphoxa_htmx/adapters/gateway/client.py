"""gRPC client for the Glyphoxa v1 gateway (``glyphoxa.v1.ManagementService``) and for
live NPC control (``glyphoxa.v1.SessionWorkerService``).

One :class:`GatewayClient` is meant to be shared by every request thread of a process:
the underlying gRPC channel is thread-safe and so is the circuit breaker.

Behaviour (see gateway-contract.md sections 2 and 5):

* the management secret goes out as metadata ``x-mgmt-secret`` on every call (worker
  calls included); it is never logged and not part of ``repr(client)``;
* every call has a deadline (``timeout`` seconds); inside an :func:`action` (one user action,
  e.g. one HTTP request) all calls and their retries share **one** budget of ``timeout``
  seconds, and once a call failed for transport reasons, later ``quick`` reads (page
  decorations) fail at once instead of waiting on the gateway again;
* idempotent reads (GetTenant, ListTenants, ListActiveSessions, GetUsage, GetBotStatus,
  GetStatus, ListNPCs) are retried ``retries`` times with exponential backoff and jitter
  on UNAVAILABLE / DEADLINE_EXCEEDED; writes are never retried;
* a circuit breaker opens after ``breaker_threshold`` consecutive UNAVAILABLE/deadline
  attempts: calls then fail at once with :class:`GatewayUnavailable` (``breaker_open``)
  for ``breaker_reset`` seconds, after which one probe call is let through (half-open);
* failures are raised as the domain errors of :mod:`.errors`; results are frozen
  dataclasses, never protobuf objects.

Ownership: ``StopWebSession`` (and the gateway in general) does **not** check which
tenant owns a session. The service layer must verify ``public.sessions.tenant_id``
before calling :meth:`GatewayClient.stop_web_session` or any live-control method.
"""

from __future__ import annotations

import contextvars
import logging
import random
import threading
import time
from collections import namedtuple
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import grpc
from google.protobuf import timestamp_pb2

from glyphoxa_htmx.adapters.gateway import errors
from glyphoxa_htmx.adapters.gateway.errors import GatewayUnavailable, InvalidArgument, NotFound
from glyphoxa_htmx.adapters.gateway.pb import management_pb2 as mpb
from glyphoxa_htmx.adapters.gateway.pb import management_pb2_grpc as mgrpc
from glyphoxa_htmx.adapters.gateway.pb import session_pb2 as spb
from glyphoxa_htmx.adapters.gateway.pb import session_pb2_grpc as sgrpc
from glyphoxa_htmx.core.i18n import lazy_gettext

log = logging.getLogger(__name__)

SECRET_METADATA_KEY = "x-mgmt-secret"

#: RPCs that are safe to retry (they change nothing on the gateway).
READ_METHODS = frozenset(
    {"GetTenant", "ListTenants", "ListActiveSessions", "GetUsage", "GetBotStatus", "GetStatus", "ListNPCs"}
)
#: Deadline for ``quick`` reads (page decorations), in seconds.
QUICK_TIMEOUT = 1.5
#: RPCs of SessionWorkerService (UNIMPLEMENTED there means "no live NPC control").
WORKER_METHODS = frozenset(
    {"GetStatus", "ListNPCs", "MuteNPC", "UnmuteNPC", "MuteAllNPCs", "UnmuteAllNPCs", "SpeakNPC"}
)

_SESSION_STATES = {
    spb.SESSION_STATE_UNSPECIFIED: "unspecified",
    spb.SESSION_STATE_PENDING: "pending",
    spb.SESSION_STATE_ACTIVE: "active",
    spb.SESSION_STATE_ENDED: "ended",
}
_BOT_STATES = {
    mpb.BOT_CONNECTION_STATE_UNSPECIFIED: "unspecified",
    mpb.BOT_CONNECTION_STATE_CONNECTED: "connected",
    mpb.BOT_CONNECTION_STATE_DISCONNECTED: "disconnected",
    mpb.BOT_CONNECTION_STATE_ERROR: "error",
}
# Go's zero time.Time encodes as 0001-01-01T00:00:00Z.
_GO_ZERO_SECONDS = -62135596800


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class TenantInfo:
    id: str
    license_tier: str
    guild_ids: list[str] = field(default_factory=list)
    dm_role_id: str = ""
    campaign_id: str = ""
    monthly_session_hours: float = 0.0  # 0 means unlimited
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ActiveSession:
    session_id: str
    tenant_id: str
    campaign_id: str
    guild_id: str
    channel_id: str
    license_tier: str
    state: str  # 'pending' | 'active' | 'ended' | 'unspecified'
    error: str = ""
    started_at: datetime | None = None


@dataclass(frozen=True)
class Usage:
    tenant_id: str
    period: date  # first day of the month (UTC)
    session_hours: float
    llm_tokens: int
    stt_seconds: float
    tts_chars: int


@dataclass(frozen=True)
class BotStatus:
    tenant_id: str
    state: str  # 'connected' | 'disconnected' | 'error' | 'unspecified'
    guild_count: int
    error: str = ""


@dataclass(frozen=True)
class WorkerStatus:
    session_id: str
    state: str  # 'pending' | 'active' | 'ended' | 'unspecified'
    started_at: datetime | None = None
    error: str = ""


@dataclass(frozen=True)
class NpcLiveState:
    name: str
    muted: bool
    id: str = ""


# --------------------------------------------------------------------------- one budget per action


#: Below this many seconds of budget, a call is not even attempted (it could not finish, and a
#: write sent with no time to hear the answer would only leave its outcome unknown).
MIN_ATTEMPT_SECONDS = 0.05


class ActionBudget:
    """The time one user action may spend on the gateway, shared by all its calls and retries.
    Without explicit ``seconds`` the clock starts at the action's first gateway call, with that
    client's ``timeout`` (GATEWAY_TIMEOUT) as the budget."""

    def __init__(self, seconds: float | None = None) -> None:
        self.seconds = seconds
        self.deadline: float | None = None if seconds is None else time.monotonic() + float(seconds)
        self.failed = False  # a transport failure happened: decorations skip the gateway now

    def remaining(self, default_seconds: float = 0.0) -> float:
        if self.deadline is None:
            self.deadline = time.monotonic() + float(default_seconds)
        return self.deadline - time.monotonic()


_budget: contextvars.ContextVar[ActionBudget | None] = contextvars.ContextVar("gateway_budget", default=None)


def begin_action(seconds: float | None = None) -> contextvars.Token[ActionBudget | None]:
    """Start one action's budget in this context (the app does this per request)."""
    return _budget.set(ActionBudget(seconds))


def end_action(token: contextvars.Token[ActionBudget | None]) -> None:
    _budget.reset(token)


@contextmanager
def action(seconds: float | None = None) -> Iterator[ActionBudget | None]:
    token = begin_action(seconds)
    try:
        yield _budget.get()
    finally:
        end_action(token)


def current_budget() -> ActionBudget | None:
    return _budget.get()


# --------------------------------------------------------------------------- helpers


def _ts_to_datetime(msg: Any, name: str) -> datetime | None:
    if not msg.HasField(name):
        return None
    ts: timestamp_pb2.Timestamp = getattr(msg, name)
    if ts.seconds <= _GO_ZERO_SECONDS:
        return None
    return ts.ToDatetime(tzinfo=UTC)


def month_start(day: date | datetime | None = None) -> date:
    """First day of the month of ``day`` (UTC today when None): the usage period key."""
    if day is None:
        day = datetime.now(UTC)
    if isinstance(day, datetime):
        if day.tzinfo is not None:
            day = day.astimezone(UTC)
        day = day.date()
    return day.replace(day=1)


def _period_timestamp(period: date) -> timestamp_pb2.Timestamp:
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(datetime(period.year, period.month, period.day, tzinfo=UTC))
    return ts


def _tenant(msg: mpb.TenantInfo) -> TenantInfo:
    return TenantInfo(
        id=msg.id,
        license_tier=msg.license_tier,
        guild_ids=list(msg.guild_ids),
        dm_role_id=msg.dm_role_id,
        campaign_id=msg.campaign_id,
        monthly_session_hours=float(msg.monthly_session_hours),
        created_at=_ts_to_datetime(msg, "created_at"),
        updated_at=_ts_to_datetime(msg, "updated_at"),
    )


class _CallDetails(
    namedtuple("_CallDetails", ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression")),
    grpc.ClientCallDetails,
):
    pass


_Request = TypeVar("_Request")
_Response = TypeVar("_Response")


class _SecretInterceptor(grpc.UnaryUnaryClientInterceptor):
    """Adds ``x-mgmt-secret`` to every unary call. Its repr never shows the secret."""

    def __init__(self, secret: str) -> None:
        self.__metadata = ((SECRET_METADATA_KEY, secret),) if secret else ()

    def intercept_unary_unary(
        self,
        continuation: Callable[[grpc.ClientCallDetails, _Request], _Response],
        client_call_details: grpc.ClientCallDetails,
        request: _Request,
    ) -> _Response:
        metadata = list(client_call_details.metadata or ()) + list(self.__metadata)
        details = _CallDetails(
            client_call_details.method,
            client_call_details.timeout,
            metadata,
            client_call_details.credentials,
            client_call_details.wait_for_ready,
            client_call_details.compression,
        )
        return continuation(details, request)

    def __repr__(self) -> str:
        return "<_SecretInterceptor x-mgmt-secret=***>"


class CircuitBreaker:
    """Consecutive-failure breaker: closed -> open (fail fast) -> half-open (one probe).

    Only transport failures (UNAVAILABLE, DEADLINE_EXCEEDED) count; any answer from the
    server, even an error status, proves it is up and closes the breaker.
    ``threshold <= 0`` disables it.
    """

    def __init__(self, threshold: int, reset: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.threshold = threshold
        self.reset = reset
        self._clock = clock
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None
        self._probe_in_flight = False

    @property
    def state(self) -> str:
        with self._lock:
            if self._opened_at is None:
                return "closed"
            if self._clock() - self._opened_at >= self.reset:
                return "half-open"
            return "open"

    def before_call(self) -> None:
        """Raise GatewayUnavailable(breaker_open=True) if the call must not be attempted."""
        if self.threshold <= 0:
            return
        with self._lock:
            if self._opened_at is None:
                return
            if self._clock() - self._opened_at >= self.reset and not self._probe_in_flight:
                self._probe_in_flight = True  # half-open: this caller is the probe
                return
        raise GatewayUnavailable(breaker_open=True, details="circuit breaker open")

    def record_success(self) -> None:
        with self._lock:
            if self._opened_at is not None:
                log.info("gateway reachable again: circuit breaker closed")
            self._failures = 0
            self._opened_at = None
            self._probe_in_flight = False

    def record_failure(self) -> None:
        if self.threshold <= 0:
            return
        with self._lock:
            self._failures += 1
            was_open = self._opened_at is not None
            if self._probe_in_flight or self._failures >= self.threshold:
                self._opened_at = self._clock()
                self._probe_in_flight = False
                if not was_open:
                    log.warning(
                        "gateway unreachable after %d consecutive failures: circuit breaker open for %.1fs",
                        self._failures,
                        self.reset,
                    )


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as fh:
        return fh.read()


# --------------------------------------------------------------------------- client


class GatewayClient:
    """Client for the gateway's ManagementService and the worker's SessionWorkerService.

    ``addr`` is ``host:port``. Plaintext unless TLS paths are given: ``tls_ca`` alone gives
    server-authenticated TLS, ``tls_cert`` + ``tls_key`` (+ ``tls_ca``) give mTLS.
    ``tls_server_name`` overrides the name checked against the server certificate.

    Live-control calls (:meth:`get_status`, :meth:`list_npcs`, :meth:`mute_npc`, ...)
    go to the same address; a gateway that does not serve SessionWorkerService answers
    UNIMPLEMENTED, raised as :class:`LiveControlUnsupported`.

    :meth:`stop_web_session` and the live-control methods do not check tenant ownership
    (neither does the gateway): callers must verify ``public.sessions.tenant_id`` first.
    """

    def __init__(
        self,
        addr: str,
        secret: str,
        *,
        timeout: float = 5.0,
        tls_cert: str | None = None,
        tls_key: str | None = None,
        tls_ca: str | None = None,
        tls_server_name: str | None = None,
        retries: int = 2,
        breaker_threshold: int = 5,
        breaker_reset: float = 15.0,
        backoff_base: float = 0.1,
        backoff_max: float = 1.0,
    ) -> None:
        if bool(tls_cert) != bool(tls_key):
            raise ValueError("tls_cert and tls_key must be given together")
        self.addr = addr
        self.timeout = float(timeout)
        self.retries = max(0, int(retries))
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.tls = bool(tls_ca or tls_cert)
        self.breaker = CircuitBreaker(breaker_threshold, breaker_reset)
        self._closed = False
        if not secret:
            log.warning("gateway client for %s has no management secret: the gateway will refuse calls", addr)

        options: list[tuple[str, int | str]] = [
            ("grpc.initial_reconnect_backoff_ms", 200),
            ("grpc.min_reconnect_backoff_ms", 200),
            ("grpc.max_reconnect_backoff_ms", 5000),
        ]
        if tls_server_name:
            options.append(("grpc.ssl_target_name_override", tls_server_name))
        if self.tls:
            credentials = grpc.ssl_channel_credentials(
                root_certificates=_read(tls_ca),
                private_key=_read(tls_key),
                certificate_chain=_read(tls_cert),
            )
            raw = grpc.secure_channel(addr, credentials, options=options)
        else:
            raw = grpc.insecure_channel(addr, options=options)
        self._raw_channel = raw
        channel = grpc.intercept_channel(raw, _SecretInterceptor(secret))
        mgmt = mgrpc.ManagementServiceStub(channel)
        worker = sgrpc.SessionWorkerServiceStub(channel)
        self._rpcs: dict[str, Callable[..., Any]] = {
            name: getattr(mgmt, name)
            for name in (
                "CreateTenant",
                "GetTenant",
                "ListTenants",
                "UpdateTenant",
                "DeleteTenant",
                "StartWebSession",
                "StopWebSession",
                "ListActiveSessions",
                "GetUsage",
                "GetBotStatus",
            )
        }
        self._rpcs.update({name: getattr(worker, name) for name in WORKER_METHODS})

    def __repr__(self) -> str:
        return (
            f"GatewayClient(addr={self.addr!r}, tls={self.tls}, timeout={self.timeout}, "
            f"retries={self.retries}, breaker={self.breaker.state})"
        )

    # ------------------------------------------------------------------ plumbing

    @property
    def breaker_state(self) -> str:
        """'closed', 'open' or 'half-open' (for health pages)."""
        return self.breaker.state

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._raw_channel.close()

    def __enter__(self) -> GatewayClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _backoff(self, attempt: int) -> float:
        return min(self.backoff_max, self.backoff_base * (2.0**attempt)) * random.uniform(0.5, 1.0)

    def _call(self, method: str, request: Any, *, quick: bool = False) -> Any:
        """``quick``: for reads that only decorate a page (a status badge, a picker): one attempt
        with a short deadline, so a hanging gateway costs a page at most QUICK_TIMEOUT seconds.

        Inside an :func:`action`, every attempt's deadline is cut to what is left of the action's
        budget, retries only happen while budget remains, and after a transport failure in the
        same action quick reads fail at once (the page says the service is unavailable)."""
        if self._closed:
            raise GatewayUnavailable(details="gateway client closed", method=method)
        budget = _budget.get()
        if quick and budget is not None and budget.failed:
            raise GatewayUnavailable(details="skipped: the gateway already failed during this action", method=method)
        rpc = self._rpcs[method]
        attempts = 1 if quick else 1 + (self.retries if method in READ_METHODS else 0)
        per_call = min(self.timeout, QUICK_TIMEOUT) if quick else self.timeout
        worker_call = method in WORKER_METHODS
        for attempt in range(attempts):
            timeout = per_call
            if budget is not None:
                timeout = min(timeout, budget.remaining(self.timeout))
                if timeout < MIN_ATTEMPT_SECONDS:
                    budget.failed = True
                    # Nothing was sent: for a write this is a clean "not done", never "unknown".
                    raise GatewayUnavailable(details="no time left for this action", method=method)
            self.breaker.before_call()
            try:
                response = rpc(request, timeout=timeout)
            except grpc.RpcError as err:
                code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
                if errors.is_transport_failure(code):
                    self.breaker.record_failure()
                    if budget is not None:
                        budget.failed = True
                    if attempt + 1 < attempts and not self._closed:
                        delay = self._backoff(attempt)
                        if budget is None or budget.remaining(self.timeout) - delay >= MIN_ATTEMPT_SECONDS:
                            log.info(
                                "gateway %s failed with %s; retry %d in %.2fs", method, code.name, attempt + 1, delay
                            )
                            time.sleep(delay)
                            continue
                    log.warning(
                        "gateway %s failed with %s: %s",
                        method,
                        code.name,
                        err.details() if hasattr(err, "details") else "",
                    )
                else:
                    self.breaker.record_success()
                raise errors.from_rpc_error(err, method=method, worker_call=worker_call) from err
            except ValueError as err:  # e.g. the channel was closed by another thread
                raise GatewayUnavailable(details=str(err), method=method) from err
            self.breaker.record_success()
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    # ------------------------------------------------------------------ tenants

    def create_tenant(
        self,
        id: str,
        license_tier: str = "shared",
        bot_token: str = "",
        guild_ids: Iterable[str] = (),
        dm_role_id: str = "",
        campaign_id: str = "",
    ) -> TenantInfo:
        """Create a tenant. ``bot_token`` is sent in plaintext; the gateway encrypts it."""
        req = mpb.CreateTenantRequest(
            id=id,
            license_tier=license_tier,
            bot_token=bot_token,
            guild_ids=list(guild_ids),
            dm_role_id=dm_role_id,
            campaign_id=campaign_id,
        )
        return _tenant(self._call("CreateTenant", req).tenant)

    def get_tenant(self, id: str, *, quick: bool = False) -> TenantInfo:
        return _tenant(self._call("GetTenant", mpb.GetTenantRequest(id=id), quick=quick).tenant)

    def list_tenants(self) -> list[TenantInfo]:
        return [_tenant(t) for t in self._call("ListTenants", mpb.ListTenantsRequest()).tenants]

    def update_tenant(
        self,
        id: str,
        *,
        license_tier: str | None = None,
        bot_token: str | None = None,
        guild_ids: Iterable[str] | None = None,
        dm_role_id: str | None = None,
        campaign_id: str | None = None,
        clear_dm_role_id: bool = False,
        clear_campaign_id: bool = False,
    ) -> TenantInfo:
        """Update a tenant. ``None`` (and ``""``) leave a field unchanged: the gateway only
        applies non-empty fields. Use the ``clear_*`` flags to blank the two ids. The
        gateway cannot set an empty guild list, so ``guild_ids=[]`` raises InvalidArgument.
        Changing token, guilds, role or campaign makes the gateway reconnect the bot."""
        guilds = None if guild_ids is None else list(guild_ids)
        if guilds is not None and not guilds:
            raise InvalidArgument(
                lazy_gettext("The gateway cannot set an empty list of Discord servers."), method="UpdateTenant"
            )
        req = mpb.UpdateTenantRequest(
            id=id,
            license_tier=license_tier or "",
            bot_token=bot_token or "",
            guild_ids=guilds or [],
            dm_role_id=dm_role_id or "",
            campaign_id=campaign_id or "",
            clear_dm_role_id=clear_dm_role_id,
            clear_campaign_id=clear_campaign_id,
        )
        return _tenant(self._call("UpdateTenant", req).tenant)

    def delete_tenant(self, id: str) -> None:
        """Delete the tenant row (the gateway also disconnects its bot). Nothing else is
        cascaded: sessions, usage, NPCs and ``tenant_<id>`` stay behind."""
        self._call("DeleteTenant", mpb.DeleteTenantRequest(id=id))

    # ------------------------------------------------------------------ sessions

    def start_web_session(self, tenant_id: str, guild_id: str, channel_id: str, campaign_id: str = "") -> str:
        """Start a voice session; returns its id (``""`` if the gateway could not look it
        up after starting: then read ``public.sessions``). An empty ``campaign_id`` makes
        the gateway use the tenant's campaign."""
        req = mpb.StartWebSessionRequest(
            tenant_id=tenant_id, campaign_id=campaign_id, guild_id=guild_id, channel_id=channel_id
        )
        resp: mpb.StartWebSessionResponse = self._call("StartWebSession", req)
        return resp.session_id

    def stop_web_session(self, session_id: str) -> None:
        """End a session. Does NOT check tenant ownership (the gateway does not either)."""
        self._call("StopWebSession", mpb.StopWebSessionRequest(session_id=session_id))

    def list_active_sessions(self, tenant_id: str) -> list[ActiveSession]:
        resp = self._call("ListActiveSessions", mpb.ListActiveSessionsRequest(tenant_id=tenant_id))
        return [
            ActiveSession(
                session_id=s.session_id,
                tenant_id=s.tenant_id,
                campaign_id=s.campaign_id,
                guild_id=s.guild_id,
                channel_id=s.channel_id,
                license_tier=s.license_tier,
                state=_SESSION_STATES.get(s.state, "unspecified"),
                error=s.error,
                started_at=_ts_to_datetime(s, "started_at"),
            )
            for s in resp.sessions
        ]

    # ------------------------------------------------------------------ usage, bot

    def get_usage(self, tenant_id: str, period: date | None = None) -> Usage:
        """Monthly usage totals; ``period`` is any day of the month (default: this month).
        A month without data comes back as zeros."""
        wanted = month_start(period)
        req = mpb.GetUsageRequest(tenant_id=tenant_id, period=_period_timestamp(wanted))
        resp = self._call("GetUsage", req)
        got = _ts_to_datetime(resp, "period")
        return Usage(
            tenant_id=resp.tenant_id or tenant_id,
            period=month_start(got) if got else wanted,
            session_hours=float(resp.session_hours),
            llm_tokens=int(resp.llm_tokens),
            stt_seconds=float(resp.stt_seconds),
            tts_chars=int(resp.tts_chars),
        )

    def get_bot_status(self, tenant_id: str, *, quick: bool = False) -> BotStatus:
        resp = self._call("GetBotStatus", mpb.GetBotStatusRequest(tenant_id=tenant_id), quick=quick)
        return BotStatus(
            tenant_id=resp.tenant_id or tenant_id,
            state=_BOT_STATES.get(resp.state, "unspecified"),
            guild_count=int(resp.guild_count),
            error=resp.error,
        )

    # ------------------------------------------------------------------ live NPC control

    def get_status(self, session_id: str) -> WorkerStatus:
        """Worker-side status of one session (NotFound if the worker does not know it)."""
        resp = self._call("GetStatus", spb.GetStatusRequest(session_id=session_id))
        for s in resp.sessions:
            if s.session_id == session_id or len(resp.sessions) == 1:
                return WorkerStatus(
                    session_id=s.session_id or session_id,
                    state=_SESSION_STATES.get(s.state, "unspecified"),
                    started_at=_ts_to_datetime(s, "started_at"),
                    error=s.error,
                )
        raise NotFound(details=f"session {session_id!r} not found on the worker", method="GetStatus")

    def list_npcs(self, session_id: str, *, quick: bool = False) -> list[NpcLiveState]:
        resp = self._call("ListNPCs", spb.ListNPCsRequest(session_id=session_id), quick=quick)
        return [NpcLiveState(name=n.name, muted=n.muted, id=n.id) for n in resp.npcs]

    def mute_npc(self, session_id: str, npc_name: str) -> None:
        self._call("MuteNPC", spb.MuteNPCRequest(session_id=session_id, npc_name=npc_name))

    def unmute_npc(self, session_id: str, npc_name: str) -> None:
        self._call("UnmuteNPC", spb.UnmuteNPCRequest(session_id=session_id, npc_name=npc_name))

    def mute_all_npcs(self, session_id: str) -> int:
        """Mute every NPC; returns how many were muted."""
        return int(self._call("MuteAllNPCs", spb.MuteAllNPCsRequest(session_id=session_id)).count)

    def unmute_all_npcs(self, session_id: str) -> int:
        """Unmute every NPC; returns how many were unmuted."""
        return int(self._call("UnmuteAllNPCs", spb.UnmuteAllNPCsRequest(session_id=session_id)).count)

    def speak_npc(self, session_id: str, npc_name: str, text: str) -> None:
        self._call("SpeakNPC", spb.SpeakNPCRequest(session_id=session_id, npc_name=npc_name, text=text))
