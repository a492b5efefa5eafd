"""A gateway simulator: a real gRPC server speaking ``glyphoxa.v1`` that behaves like the
Glyphoxa v1 gateway plus its session workers, against a real PostgreSQL database.

* ManagementService with the gateway's status codes (gateway-contract.md 2.1) behind the
  ``x-mgmt-secret`` check (2.3), writing ``public.tenants``, ``public.sessions`` and
  ``public.usage_records`` exactly as the gateway does.
* SessionWorkerService (GetStatus, ListNPCs, Mute/Unmute/MuteAll/UnmuteAll, SpeakNPC) on the
  same port, answering for the sessions this simulator runs. It is not secret-checked, like
  the real listener's non-management services.
* Every started session gets a runtime thread that plays the worker: ``pending`` ->
  ``active`` after ``activation_delay`` (setting ``last_heartbeat``), heartbeats every
  ``heartbeat_interval``, creates ``tenant_<id>`` lazily plus its memory ``sessions`` row,
  writes a scripted dialogue line every ``line_interval`` into
  ``tenant_<id>.session_entries``, adds knowledge-graph rows now and then and accrues
  ``usage_records`` for the current month.

Simulation choices (documented differences from a real deployment):

* Every existing tenant's bot counts as connected (``bot_connected``, default True), token
  or not; :meth:`GatewaySimulator.set_bot_connected` overrides it per tenant. A
  disconnected bot gives FAILED_PRECONDITION on StartWebSession and StopWebSession.
* Bot tokens are stored as given (no Vault). Tenant ids longer than 56 characters are
  rejected (the real gateway accepts up to 63 but its workers then fail).
* Session hours accrue in whole hundredths of an hour (NUMERIC(10,2)) while a session
  runs; when it is stopped the remainder is billed rounded *up* to 0.01 h, so every
  stopped session shows some usage.
* A muted NPC stays silent in the generated dialogue, but SpeakNPC still makes it speak
  (an explicit DM command). MuteAllNPCs/UnmuteAllNPCs return the number of NPCs in the
  session.
* Restart: sessions are *resumed*, not ended. Rows this simulator family owns
  (``worker_pod`` ``gateway-sim-*``) whose heartbeat is stale for
  ``max(3 * heartbeat_interval, 2s)`` are claimed (at start and then every heartbeat) by a
  running simulator, which continues them (mute state resets). A simulator that is
  stopped leaves its live sessions live, like a crashed gateway whose workers keep going.
  A runtime whose row disappears or is ended/claimed elsewhere stops quietly.
"""

from __future__ import annotations

import hmac
import logging
import math
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import grpc
import psycopg
from google.protobuf import timestamp_pb2
from psycopg.rows import dict_row
from psycopg.types.json import Jsonb
from psycopg_pool import ConnectionPool

from glyphoxa_htmx.adapters.gateway.pb import management_pb2 as mpb
from glyphoxa_htmx.adapters.gateway.pb import management_pb2_grpc as mgrpc
from glyphoxa_htmx.adapters.gateway.pb import session_pb2 as spb
from glyphoxa_htmx.adapters.gateway.pb import session_pb2_grpc as sgrpc
from glyphoxa_htmx.adapters.gateway.tenant_id import tenant_id_problem
from glyphoxa_htmx.simulator import ddl, store
from glyphoxa_htmx.simulator.script import DEFAULT_NPCS, DialogueScript, Line, Npc

log = logging.getLogger(__name__)

MANAGEMENT_PREFIX = "/glyphoxa.v1.ManagementService/"
SECRET_KEY = "x-mgmt-secret"
TIERS = ("shared", "dedicated")
_STATE_PB = {
    "pending": spb.SESSION_STATE_PENDING,
    "active": spb.SESSION_STATE_ACTIVE,
    "ended": spb.SESSION_STATE_ENDED,
}
_POD_PREFIX = "gateway-sim-"


def _ts(dt: datetime | None) -> timestamp_pb2.Timestamp | None:
    if dt is None:
        return None
    ts = timestamp_pb2.Timestamp()
    ts.FromDatetime(dt if dt.tzinfo else dt.replace(tzinfo=UTC))
    return ts


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def _handler(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn _Abort into a status and unexpected database errors into INTERNAL."""

    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        try:
            return fn(self, request, context)
        except _Abort as exc:
            context.abort(exc.code, exc.message)
        except psycopg.Error as exc:
            log.warning("simulator %s failed: %s", fn.__name__, exc)
            context.abort(grpc.StatusCode.INTERNAL, f"internal error: {type(exc).__name__}")

    wrapper.__name__ = fn.__name__
    wrapper.__doc__ = fn.__doc__
    return wrapper


# --------------------------------------------------------------------------- auth


def _deny(code: grpc.StatusCode, message: str) -> grpc.RpcMethodHandler:
    def abort(request: Any, context: grpc.ServicerContext) -> None:
        context.abort(code, message)

    return grpc.unary_unary_rpc_method_handler(abort)


class _MgmtSecretInterceptor(grpc.ServerInterceptor):
    """The gateway's mgmt_auth: checks ``x-mgmt-secret`` on ManagementService only."""

    def __init__(self, secret: str) -> None:
        self.__secret = secret.encode()

    def __repr__(self) -> str:
        return "<_MgmtSecretInterceptor ***>"

    def intercept_service(self, continuation, handler_call_details):
        if not handler_call_details.method.startswith(MANAGEMENT_PREFIX):
            return continuation(handler_call_details)
        if not self.__secret:  # fail closed, like the current gateway
            return _deny(grpc.StatusCode.UNAVAILABLE, "management API disabled: no secret configured")
        supplied = None
        for key, value in handler_call_details.invocation_metadata or ():
            if key == SECRET_KEY:
                supplied = value.encode() if isinstance(value, str) else value
                break
        if not supplied:
            return _deny(grpc.StatusCode.UNAUTHENTICATED, "missing management secret")
        if not hmac.compare_digest(supplied, self.__secret):
            return _deny(grpc.StatusCode.UNAUTHENTICATED, "invalid management secret")
        return continuation(handler_call_details)


# --------------------------------------------------------------------------- runtime


class _SessionRuntime:
    """Plays the worker for one session in a daemon thread."""

    def __init__(
        self,
        sim: GatewaySimulator,
        *,
        session_id: str,
        tenant_id: str,
        campaign_id: str,
        state: str,
        started_at: datetime | None,
        npcs: list[Npc],
    ) -> None:
        self.sim = sim
        self.session_id = session_id
        self.tenant_id = tenant_id
        self.campaign_id = campaign_id
        self.state = state
        self.started_at = started_at
        self.error = ""
        self.script = DialogueScript(npcs or list(DEFAULT_NPCS), seed=session_id)
        self.npcs = self.script.npcs
        self.muted: set[str] = set()
        self.speech: deque[tuple[Npc, str]] = deque()
        self.lock = threading.Lock()
        self.wake = threading.Event()
        self._stop = threading.Event()
        self.exit_reason = ""
        self.schema = ""
        self._unbilled_seconds = 0.0
        self._last_bill: float | None = None
        self._errors = 0
        self.thread = threading.Thread(target=self._run, name=f"gateway-sim-session-{session_id[:8]}", daemon=True)

    # -- control (called from RPC threads)

    def start(self) -> None:
        self.thread.start()

    def request_stop(self, reason: str) -> None:
        if not self._stop.is_set():
            self.exit_reason = reason
            self._stop.set()
            self.wake.set()

    def join(self, timeout: float = 10.0) -> None:
        if self.thread.is_alive() and threading.current_thread() is not self.thread:
            self.thread.join(timeout)

    def npc_states(self) -> list[tuple[Npc, bool]]:
        with self.lock:
            return [(n, n.name in self.muted) for n in self.npcs]

    def set_muted(self, npc: Npc, muted: bool) -> None:
        with self.lock:
            (self.muted.add if muted else self.muted.discard)(npc.name)

    def set_all_muted(self, muted: bool) -> int:
        with self.lock:
            if muted:
                self.muted = {n.name for n in self.npcs}
            else:
                self.muted.clear()
            return len(self.npcs)

    def speak(self, npc: Npc, text: str) -> None:
        with self.lock:
            self.speech.append((npc, text))
        self.wake.set()

    # -- the worker loop

    def _run(self) -> None:
        try:
            if self.state == "pending":
                if self._stop.wait(self.sim.activation_delay):
                    return
            # Like the worker: its memory store (tenant_<id> schema) is ready before it reports
            # active, so a line spoken right after activation always has a table to land in.
            if not self._prepare_memory():
                return
            if self.state == "pending" and not self._activate():
                return
            self._last_bill = time.monotonic()
            self._loop()
        except Exception:  # noqa: BLE001 - a runtime must never take the simulator down
            log.exception("simulated session %s crashed", self.session_id)
            self.exit_reason = self.exit_reason or "error"
        finally:
            self._finish()

    def _activate(self) -> bool:
        with self.sim.db.connection() as conn:
            row = conn.execute(
                "UPDATE public.sessions SET state = 'active', last_heartbeat = now() "
                "WHERE id = %s AND state = 'pending' AND worker_pod = %s RETURNING started_at",
                (self.session_id, self.sim.worker_pod),
            ).fetchone()
        if row is None:
            self.exit_reason = self.exit_reason or "gone"
            return False
        self.state = "active"
        log.info("simulated session %s active", self.session_id)
        return True

    def _prepare_memory(self) -> bool:
        try:
            with self.sim.db.connection() as conn:
                schema = ddl.ensure_tenant_schema(conn, self.tenant_id)
                conn.execute(
                    f'INSERT INTO "{schema}".sessions (session_id, campaign_id, started_at) '
                    "VALUES (%s, %s, coalesce(%s, now())) ON CONFLICT (session_id) DO NOTHING",
                    (self.session_id, store.memory_campaign(self.campaign_id), self.started_at),
                )
            self.schema = schema
            return True
        except (ValueError, psycopg.Error) as exc:
            log.warning("simulated session %s cannot prepare memory: %s", self.session_id, exc)
            self.error = f"worker: memory store: {exc}"
            with self.sim.db.connection() as conn:
                conn.execute(
                    "UPDATE public.sessions SET state = 'ended', error = %s, ended_at = now() "
                    "WHERE id = %s AND state <> 'ended'",
                    (self.error, self.session_id),
                )
            self.state = "ended"
            self.exit_reason = "error"
            return False

    def _loop(self) -> None:
        sim = self.sim
        now = time.monotonic()
        next_line = now + sim.line_interval * 0.5
        next_beat = now + sim.heartbeat_interval
        while not self._stop.is_set():
            with self.lock:
                has_speech = bool(self.speech)
            timeout = 0.0 if has_speech else max(0.0, min(next_line, next_beat) - time.monotonic())
            self.wake.wait(timeout)
            self.wake.clear()
            if self._stop.is_set():
                break
            now = time.monotonic()
            lines: list[Line] = []
            with self.lock:
                while self.speech:
                    npc, text = self.speech.popleft()
                    lines.append(self.script.npc_line(npc, text))
                muted = frozenset(self.muted)
            if now >= next_line:
                lines.append(self.script.next_line(muted))
                next_line = now + sim.line_interval
            try:
                if lines and not self._write(lines):
                    return
                if now >= next_beat:
                    next_beat = now + sim.heartbeat_interval
                    if not self._heartbeat():
                        return
                self._errors = 0
            except psycopg.Error as exc:
                self._errors += 1
                log.warning("simulated session %s: database error (%d): %s", self.session_id, self._errors, exc)
                if self._errors >= 5:
                    self.exit_reason = "error"
                    return

    def _lock_own_row(self, conn: psycopg.Connection) -> bool:
        row = conn.execute(
            "SELECT state, worker_pod FROM public.sessions WHERE id = %s FOR UPDATE", (self.session_id,)
        ).fetchone()
        if row is None or row[0] != "active" or row[1] != self.sim.worker_pod:
            self.exit_reason = self.exit_reason or "gone"
            return False
        return True

    def _bill(self, final: bool) -> float:
        """Session hours to add now: whole hundredths, or everything (rounded up) when final."""
        now = time.monotonic()
        if self._last_bill is not None:
            self._unbilled_seconds += now - self._last_bill
            self._last_bill = now
        if final:
            hours = math.ceil(self._unbilled_seconds / 36.0) / 100.0 if self._unbilled_seconds > 0 else 0.0
            self._unbilled_seconds = 0.0
            return hours
        hundredths = math.floor(self._unbilled_seconds / 36.0)
        self._unbilled_seconds -= hundredths * 36.0
        return hundredths / 100.0

    def _write(self, lines: list[Line]) -> bool:
        usage: dict[str, Any] = {"llm_tokens": 0, "tts_chars": 0, "stt_seconds": 0.0}
        for line in lines:
            for key, value in store.line_usage(line).items():
                usage[key] += value
        facts = self.script.take_facts()
        with self.sim.db.connection() as conn, conn.transaction():
            if not self._lock_own_row(conn):
                return False
            for line in lines:
                store.write_entry(
                    conn, self.schema, campaign_id=self.campaign_id, session_id=self.session_id, line=line
                )
            if facts and self.script.rng.random() < 0.4:
                store.write_facts(
                    conn, self.schema, campaign_id=self.campaign_id, session_id=self.session_id, facts=facts[:2]
                )
            store.add_usage(conn, self.tenant_id, session_hours=self._bill(final=False), **usage)
            conn.execute(
                "UPDATE public.sessions SET last_voice = now(), last_heartbeat = now() WHERE id = %s",
                (self.session_id,),
            )
        return True

    def _heartbeat(self) -> bool:
        with self.sim.db.connection() as conn:
            row = conn.execute(
                "UPDATE public.sessions SET last_heartbeat = now() "
                "WHERE id = %s AND state = 'active' AND worker_pod = %s RETURNING id",
                (self.session_id, self.sim.worker_pod),
            ).fetchone()
        if row is None:
            self.exit_reason = self.exit_reason or "gone"
            return False
        return True

    def _finish(self) -> None:
        reason = self.exit_reason
        try:
            if reason == "stopped" and self._last_bill is not None:
                with self.sim.db.connection() as conn, conn.transaction():
                    store.add_usage(conn, self.tenant_id, session_hours=self._bill(final=True))
                    conn.execute(
                        f'UPDATE "{self.schema}".sessions SET ended_at = now() WHERE session_id = %s',
                        (self.session_id,),
                    )
            elif reason == "shutdown" and self._last_bill is not None:
                hours = self._bill(final=False)
                if hours:
                    with self.sim.db.connection() as conn:
                        store.add_usage(conn, self.tenant_id, session_hours=hours)
        except Exception as exc:  # noqa: BLE001
            log.warning("simulated session %s: final bookkeeping failed: %s", self.session_id, exc)
        if reason in ("stopped", "gone", "error"):
            self.state = "ended"
        self.sim._forget(self)
        log.info("simulated session %s runtime exited (%s)", self.session_id, reason or "done")


# --------------------------------------------------------------------------- services


def _tenant_pb(row: dict) -> mpb.TenantInfo:
    return mpb.TenantInfo(
        id=row["id"],
        license_tier=row["license_tier"],
        guild_ids=list(row["guild_ids"] or []),
        dm_role_id=row["dm_role_id"],
        campaign_id=row["campaign_id"],
        monthly_session_hours=float(row["monthly_session_hours"]),
        created_at=_ts(row["created_at"]),
        updated_at=_ts(row["updated_at"]),
    )


_TENANT_COLS = "id, license_tier, guild_ids, dm_role_id, campaign_id, monthly_session_hours, created_at, updated_at"


class _Management(mgrpc.ManagementServiceServicer):
    def __init__(self, sim: GatewaySimulator) -> None:
        self.sim = sim

    def _conn(self):
        return self.sim.db.connection()

    def _tenant(self, conn: psycopg.Connection, tenant_id: str, *, lock: bool = False) -> dict | None:
        cur = conn.cursor(row_factory=dict_row)
        return cur.execute(
            f"SELECT {_TENANT_COLS} FROM public.tenants WHERE id = %s" + (" FOR UPDATE" if lock else ""),
            (tenant_id,),
        ).fetchone()

    # ---- tenants

    @_handler
    def CreateTenant(self, request, context):
        if not request.id:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "id is required")
        problem = tenant_id_problem(request.id)
        if problem:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid tenant id: {problem}")
        if request.license_tier not in TIERS:
            raise _Abort(
                grpc.StatusCode.INVALID_ARGUMENT,
                f'invalid license tier: config: unknown license tier "{request.license_tier}"',
            )
        try:
            with self._conn() as conn:
                row = (
                    conn.cursor(row_factory=dict_row)
                    .execute(
                        "INSERT INTO public.tenants (id, license_tier, bot_token, guild_ids, dm_role_id, campaign_id) "
                        f"VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_TENANT_COLS}",
                        (
                            request.id,
                            request.license_tier,
                            request.bot_token,
                            list(request.guild_ids) or None,  # a Go nil slice is stored as NULL
                            request.dm_role_id,
                            request.campaign_id,
                        ),
                    )
                    .fetchone()
                )
        except psycopg.Error as exc:
            log.warning("simulator: create tenant %s failed: %s", request.id, exc)
            raise _Abort(grpc.StatusCode.ALREADY_EXISTS, f'tenant "{request.id}" already exists') from exc
        log.info("simulator: tenant created: %s (%s)", request.id, request.license_tier)
        return mpb.TenantResponse(tenant=_tenant_pb(row))

    @_handler
    def GetTenant(self, request, context):
        try:
            with self._conn() as conn:
                row = self._tenant(conn, request.id)
        except psycopg.Error:
            row = None
        if row is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f'tenant "{request.id}" not found')
        return mpb.TenantResponse(tenant=_tenant_pb(row))

    @_handler
    def ListTenants(self, request, context):
        try:
            with self._conn() as conn:
                rows = (
                    conn.cursor(row_factory=dict_row)
                    .execute(f"SELECT {_TENANT_COLS} FROM public.tenants ORDER BY id")
                    .fetchall()
                )
        except psycopg.Error as exc:
            log.warning("simulator: list tenants failed: %s", exc)
            raise _Abort(grpc.StatusCode.INTERNAL, "failed to list tenants") from exc
        return mpb.ListTenantsResponse(tenants=[_tenant_pb(r) for r in rows])

    @_handler
    def UpdateTenant(self, request, context):
        with self._conn() as conn, conn.transaction():
            row = self._tenant(conn, request.id, lock=True)
            if row is None:
                raise _Abort(grpc.StatusCode.NOT_FOUND, f'tenant "{request.id}" not found')
            sets: dict[str, Any] = {}
            if request.license_tier:
                if request.license_tier not in TIERS:
                    raise _Abort(
                        grpc.StatusCode.INVALID_ARGUMENT,
                        f'invalid license tier: config: unknown license tier "{request.license_tier}"',
                    )
                sets["license_tier"] = request.license_tier
            if request.bot_token:
                sets["bot_token"] = request.bot_token
            if request.guild_ids:
                sets["guild_ids"] = list(request.guild_ids)
            if request.clear_dm_role_id:
                sets["dm_role_id"] = ""
            elif request.dm_role_id:
                sets["dm_role_id"] = request.dm_role_id
            if request.clear_campaign_id:
                sets["campaign_id"] = ""
            elif request.campaign_id:
                sets["campaign_id"] = request.campaign_id
            assignments = ", ".join(f"{col} = %s" for col in sets)
            try:
                with conn.transaction():
                    row = (
                        conn.cursor(row_factory=dict_row)
                        .execute(
                            f"UPDATE public.tenants SET {assignments + ', ' if assignments else ''}updated_at = now() "
                            f"WHERE id = %s RETURNING {_TENANT_COLS}",
                            (*sets.values(), request.id),
                        )
                        .fetchone()
                    )
            except psycopg.Error as exc:
                log.warning("simulator: update tenant %s failed: %s", request.id, exc)
                raise _Abort(grpc.StatusCode.INTERNAL, "failed to update tenant") from exc
        return mpb.TenantResponse(tenant=_tenant_pb(row))

    @_handler
    def DeleteTenant(self, request, context):
        with self._conn() as conn:
            row = conn.execute("DELETE FROM public.tenants WHERE id = %s RETURNING id", (request.id,)).fetchone()
        if row is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f'tenant "{request.id}" not found')
        self.sim._forget_bot(request.id)  # "disconnects the bot"; nothing else is cascaded
        return mpb.DeleteTenantResponse()

    # ---- sessions

    @_handler
    def StartWebSession(self, request, context):
        if not (request.tenant_id and request.guild_id and request.channel_id):
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "tenant_id, guild_id, and channel_id are required")
        no_bot = _Abort(
            grpc.StatusCode.FAILED_PRECONDITION,
            f'no active bot for tenant "{request.tenant_id}" — bot must be connected first',
        )
        if not self.sim.is_bot_connected(request.tenant_id):
            raise no_bot
        session_id = str(uuid.uuid4())
        period = store.current_period()
        with self._conn() as conn:
            with conn.transaction():
                tenant = self._tenant(conn, request.tenant_id)
                if tenant is None:
                    raise no_bot
                quota = float(tenant["monthly_session_hours"])
                if quota > 0:
                    used_row = conn.execute(
                        "SELECT session_hours FROM public.usage_records WHERE tenant_id = %s AND period = %s "
                        "FOR UPDATE",
                        (request.tenant_id, period),
                    ).fetchone()
                    used = float(used_row[0]) if used_row else 0.0
                    if used >= quota:
                        raise _Abort(
                            grpc.StatusCode.INTERNAL,
                            "start session: gateway: validate session: usage: quota exceeded: "
                            f"{used:.2f} of {quota:.2f} monthly session hours used",
                        )
                campaign_id = request.campaign_id or tenant["campaign_id"]
                try:
                    with conn.transaction():
                        row = conn.execute(
                            "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, channel_id, "
                            "license_tier, state, started_at, worker_pod, worker_node, metadata) "
                            "VALUES (%s, %s, %s, %s, %s, %s, 'pending', now(), %s, %s, %s) RETURNING started_at",
                            (
                                session_id,
                                request.tenant_id,
                                campaign_id,
                                request.guild_id,
                                request.channel_id,
                                tenant["license_tier"],
                                self.sim.worker_pod,
                                "gateway-simulator",
                                Jsonb({"simulated": True, "source": "web"}),
                            ),
                        ).fetchone()
                except psycopg.IntegrityError as exc:
                    diag = exc.diag.message_primary or str(exc)
                    raise _Abort(
                        grpc.StatusCode.INTERNAL,
                        "start session: gateway: validate session: sessionorch: create session: "
                        f"ERROR: {diag} (SQLSTATE {exc.sqlstate})",
                    ) from exc
            npcs = store.load_npcs(conn, request.tenant_id, campaign_id, self.sim.npc_tenant_column)
        self.sim._launch(
            session_id=session_id,
            tenant_id=request.tenant_id,
            campaign_id=campaign_id,
            state="pending",
            started_at=row[0],
            npcs=npcs,
        )
        log.info(
            "simulator: session %s started for tenant %s (guild %s)", session_id, request.tenant_id, request.guild_id
        )
        return mpb.StartWebSessionResponse(session_id=session_id)

    @_handler
    def StopWebSession(self, request, context):
        if not request.session_id:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "session_id is required")
        with self._conn() as conn:
            row = conn.execute("SELECT tenant_id FROM public.sessions WHERE id = %s", (request.session_id,)).fetchone()
            if row is None:
                raise _Abort(grpc.StatusCode.NOT_FOUND, f'session "{request.session_id}" not found')
        if not self.sim.is_bot_connected(row[0]):
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION, f'no active controller for tenant "{row[0]}"')
        # Stop the worker first so it books its final usage, then end the row.
        runtime = self.sim._runtime(request.session_id)
        if runtime is not None:
            runtime.request_stop("stopped")
            runtime.join()
        with self._conn() as conn:
            conn.execute(
                "UPDATE public.sessions SET state = 'ended', error = '', ended_at = now() WHERE id = %s AND state <> 'ended'",
                (request.session_id,),
            )
        log.info("simulator: session %s stopped", request.session_id)
        return mpb.StopWebSessionResponse()

    @_handler
    def ListActiveSessions(self, request, context):
        if not request.tenant_id:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "tenant_id is required")
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT id, tenant_id, campaign_id, guild_id, channel_id, license_tier, state, error, started_at "
                "FROM public.sessions WHERE tenant_id = %s AND state <> 'ended' ORDER BY started_at DESC",
                (request.tenant_id,),
            ).fetchall()
        return mpb.ListActiveSessionsResponse(
            sessions=[
                mpb.ActiveSessionInfo(
                    session_id=r[0],
                    tenant_id=r[1],
                    campaign_id=r[2],
                    guild_id=r[3],
                    channel_id=r[4],
                    license_tier=r[5],
                    state=_STATE_PB.get(r[6], spb.SESSION_STATE_UNSPECIFIED),
                    error=r[7] or "",
                    started_at=_ts(r[8]),
                )
                for r in rows
            ]
        )

    # ---- usage and bot

    @_handler
    def GetUsage(self, request, context):
        if not request.tenant_id:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "tenant_id is required")
        if request.HasField("period"):
            period = request.period.ToDatetime(tzinfo=UTC).date().replace(day=1)
        else:
            period = store.current_period()
        try:
            with self._conn() as conn:
                row = conn.execute(
                    "SELECT session_hours, llm_tokens, stt_seconds, tts_chars FROM public.usage_records "
                    "WHERE tenant_id = %s AND period = %s",
                    (request.tenant_id, period),
                ).fetchone()
        except psycopg.Error as exc:
            raise _Abort(grpc.StatusCode.INTERNAL, "failed to get usage") from exc
        hours, tokens, stt, tts = row if row else (0, 0, 0, 0)
        return mpb.GetUsageResponse(
            tenant_id=request.tenant_id,
            period=_ts(datetime(period.year, period.month, period.day, tzinfo=UTC)),
            session_hours=float(hours),
            llm_tokens=int(tokens),
            stt_seconds=float(stt),
            tts_chars=int(tts),
        )

    @_handler
    def GetBotStatus(self, request, context):
        if not request.tenant_id:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "tenant_id is required")
        with self._conn() as conn:
            row = conn.execute("SELECT guild_ids FROM public.tenants WHERE id = %s", (request.tenant_id,)).fetchone()
        connected = row is not None and self.sim.is_bot_connected(request.tenant_id)
        return mpb.GetBotStatusResponse(
            tenant_id=request.tenant_id,
            state=mpb.BOT_CONNECTION_STATE_CONNECTED if connected else mpb.BOT_CONNECTION_STATE_DISCONNECTED,
            guild_count=len(row[0] or []) if connected else 0,
        )


class _Worker(sgrpc.SessionWorkerServiceServicer):
    def __init__(self, sim: GatewaySimulator) -> None:
        self.sim = sim

    def _runtime(self, session_id: str) -> _SessionRuntime:
        if not session_id:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "session_id is required")
        runtime = self.sim._runtime(session_id)
        if runtime is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f'session "{session_id}" not found on this worker')
        return runtime

    def _npc(self, runtime: _SessionRuntime, name: str) -> Npc:
        if not name:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "npc_name is required")
        npc = runtime.script.find_npc(name)
        if npc is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f'npc "{name}" not found in session')
        return npc

    @staticmethod
    def _status(rt: _SessionRuntime) -> spb.SessionStatus:
        return spb.SessionStatus(
            session_id=rt.session_id,
            state=_STATE_PB.get(rt.state, spb.SESSION_STATE_UNSPECIFIED),
            started_at=_ts(rt.started_at),
            error=rt.error,
        )

    @_handler
    def GetStatus(self, request, context):
        if not request.session_id:
            return spb.GetStatusResponse(sessions=[self._status(rt) for rt in self.sim._all_runtimes()])
        runtime = self.sim._runtime(request.session_id)
        if runtime is not None:
            return spb.GetStatusResponse(sessions=[self._status(runtime)])
        with self.sim.db.connection() as conn:
            row = conn.execute(
                "SELECT state, started_at, error FROM public.sessions WHERE id = %s AND worker_pod LIKE %s",
                (request.session_id, _POD_PREFIX + "%"),
            ).fetchone()
        if row is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f'session "{request.session_id}" not found on this worker')
        return spb.GetStatusResponse(
            sessions=[
                spb.SessionStatus(
                    session_id=request.session_id,
                    state=_STATE_PB.get(row[0], spb.SESSION_STATE_UNSPECIFIED),
                    started_at=_ts(row[1]),
                    error=row[2] or "",
                )
            ]
        )

    @_handler
    def ListNPCs(self, request, context):
        runtime = self._runtime(request.session_id)
        return spb.ListNPCsResponse(npcs=[spb.NPCInfo(id=n.id, name=n.name, muted=m) for n, m in runtime.npc_states()])

    @_handler
    def MuteNPC(self, request, context):
        runtime = self._runtime(request.session_id)
        runtime.set_muted(self._npc(runtime, request.npc_name), True)
        return spb.MuteNPCResponse()

    @_handler
    def UnmuteNPC(self, request, context):
        runtime = self._runtime(request.session_id)
        runtime.set_muted(self._npc(runtime, request.npc_name), False)
        return spb.UnmuteNPCResponse()

    @_handler
    def MuteAllNPCs(self, request, context):
        return spb.MuteAllNPCsResponse(count=self._runtime(request.session_id).set_all_muted(True))

    @_handler
    def UnmuteAllNPCs(self, request, context):
        return spb.UnmuteAllNPCsResponse(count=self._runtime(request.session_id).set_all_muted(False))

    @_handler
    def SpeakNPC(self, request, context):
        runtime = self._runtime(request.session_id)
        npc = self._npc(runtime, request.npc_name)
        if not request.text.strip():
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "text is required")
        runtime.speak(npc, request.text.strip())
        return spb.SpeakNPCResponse()


# --------------------------------------------------------------------------- simulator


#: application_name of the simulator's database connections (visible in pg_stat_activity).
SIM_APPLICATION_NAME = "glyphoxa-gateway-sim"


class GatewaySimulator:
    """The simulated gateway + workers. ``start()`` returns the bound port."""

    def __init__(
        self,
        database_url: str,
        *,
        secret: str,
        listen: str = "127.0.0.1:0",
        activation_delay: float = 1.0,
        line_interval: float = 3.0,
        heartbeat_interval: float = 5.0,
        bot_connected: bool = True,
        max_workers: int = 16,
    ) -> None:
        self.database_url = database_url
        self.listen = listen
        self.activation_delay = float(activation_delay)
        self.line_interval = float(line_interval)
        self.heartbeat_interval = float(heartbeat_interval)
        self.default_bot_connected = bot_connected
        self.max_workers = max_workers
        self.instance_id = uuid.uuid4().hex[:12]
        self.worker_pod = _POD_PREFIX + self.instance_id
        self.port: int | None = None
        self.address: str | None = None
        self.npc_tenant_column = True
        self.pool: ConnectionPool | None = None
        self._auth = _MgmtSecretInterceptor(secret)  # holds the secret; its repr does not show it
        self._server: grpc.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._runtimes: dict[str, _SessionRuntime] = {}
        self._bots: dict[str, bool] = {}
        self._stopping = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._started = False
        self._stopped = False

    def __repr__(self) -> str:
        return f"GatewaySimulator(address={self.address!r}, worker_pod={self.worker_pod!r})"

    def __enter__(self) -> GatewaySimulator:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- lifecycle

    @property
    def db(self) -> ConnectionPool:
        """The connection pool; the servicers only run once start() has opened it."""
        assert self.pool is not None
        return self.pool

    def start(self) -> int:
        if self._started:
            assert self.port is not None
            return self.port
        self._started = True
        self.pool = ConnectionPool(
            self.database_url,
            min_size=1,
            max_size=max(4, self.max_workers // 2),
            kwargs={"autocommit": True, "connect_timeout": 5, "application_name": SIM_APPLICATION_NAME},
            name="gateway-sim",
            # Pre-ping: a pooled connection the database killed (restart, failover,
            # pg_terminate_backend) is replaced before it is handed out, instead of costing one
            # "voice service unavailable" per dead connection.
            check=getattr(ConnectionPool, "check_connection", None),
            open=True,
        )
        with self.pool.connection() as conn:
            ddl.ensure_public_schema(conn)
            self.npc_tenant_column = ddl.npc_definitions_has_tenant_id(conn)
        self._executor = ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="gateway-sim-rpc")
        self._server = grpc.server(self._executor, interceptors=[self._auth])
        mgrpc.add_ManagementServiceServicer_to_server(_Management(self), self._server)
        sgrpc.add_SessionWorkerServiceServicer_to_server(_Worker(self), self._server)
        port = self._server.add_insecure_port(self.listen)
        if not port:
            raise RuntimeError(f"gateway simulator could not bind {self.listen}")
        self._server.start()
        self.port = port
        host = self.listen.rsplit(":", 1)[0] or "127.0.0.1"
        if host in ("0.0.0.0", "[::]", "::"):
            host = "127.0.0.1"
        self.address = f"{host}:{port}"
        self._claim_stale_sessions()
        self._sweeper = threading.Thread(target=self._sweep, name="gateway-sim-sweeper", daemon=True)
        self._sweeper.start()
        log.info("gateway simulator listening on %s (worker_pod %s)", self.address, self.worker_pod)
        return port

    def stop(self) -> None:
        """Stop serving and stop all session runtimes (their sessions stay live in the
        database, to be resumed by the next simulator). Idempotent."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        if self._server is not None:
            self._server.stop(grace=0.5).wait(5)
        for runtime in self._all_runtimes():
            runtime.request_stop("shutdown")
        for runtime in self._all_runtimes():
            runtime.join()
        if self._sweeper is not None:
            self._sweeper.join(10)
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        if self.pool is not None:
            self.pool.close()
        log.info("gateway simulator on %s stopped", self.address)

    # ---- test helpers

    def set_bot_connected(self, tenant_id: str, connected: bool) -> None:
        with self._lock:
            self._bots[tenant_id] = bool(connected)

    def is_bot_connected(self, tenant_id: str) -> bool:
        with self._lock:
            return self._bots.get(tenant_id, self.default_bot_connected)

    def runtime_count(self) -> int:
        with self._lock:
            return len(self._runtimes)

    # ---- internals

    def _forget_bot(self, tenant_id: str) -> None:
        with self._lock:
            self._bots.pop(tenant_id, None)

    def _runtime(self, session_id: str) -> _SessionRuntime | None:
        with self._lock:
            return self._runtimes.get(session_id)

    def _all_runtimes(self) -> list[_SessionRuntime]:
        with self._lock:
            return list(self._runtimes.values())

    def _forget(self, runtime: _SessionRuntime) -> None:
        with self._lock:
            if self._runtimes.get(runtime.session_id) is runtime:
                del self._runtimes[runtime.session_id]

    def _launch(self, **kw: Any) -> _SessionRuntime:
        runtime = _SessionRuntime(self, **kw)
        with self._lock:
            if self._stopping.is_set():
                return runtime
            self._runtimes[runtime.session_id] = runtime
        runtime.start()
        return runtime

    def _stale_after(self) -> float:
        return max(3 * self.heartbeat_interval, 2.0)

    def _claim_stale_sessions(self) -> int:
        """Resume live simulator sessions whose owner stopped heartbeating."""
        assert self.pool is not None
        stale = self._stale_after()
        with self.pool.connection() as conn:
            rows = conn.execute(
                "UPDATE public.sessions SET worker_pod = %s, "
                "last_heartbeat = CASE WHEN state = 'active' THEN now() ELSE last_heartbeat END "
                "WHERE state <> 'ended' AND worker_pod LIKE %s AND worker_pod <> %s "
                "AND coalesce(last_heartbeat, started_at) < now() - make_interval(secs => %s) "
                "RETURNING id, tenant_id, campaign_id, state, started_at",
                (self.worker_pod, _POD_PREFIX + "%", self.worker_pod, stale),
            ).fetchall()
            claimed = []
            for sid, tenant_id, campaign_id, state, started_at in rows:
                npcs = store.load_npcs(conn, tenant_id, campaign_id, self.npc_tenant_column)
                claimed.append((sid, tenant_id, campaign_id, state, started_at, npcs))
        for sid, tenant_id, campaign_id, state, started_at, npcs in claimed:
            log.info("gateway simulator resumes session %s of tenant %s (%s)", sid, tenant_id, state)
            self._launch(
                session_id=sid,
                tenant_id=tenant_id,
                campaign_id=campaign_id,
                state=state,
                started_at=started_at,
                npcs=npcs,
            )
        return len(claimed)

    def _sweep(self) -> None:
        while not self._stopping.wait(self.heartbeat_interval):
            try:
                self._claim_stale_sessions()
            except Exception as exc:  # noqa: BLE001 - keep sweeping
                log.warning("gateway simulator sweep failed: %s", exc)
