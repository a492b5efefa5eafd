"""Fixtures for the gateway adapter tests: a real simulator on a real gRPC port, a real
PostgreSQL database (the shared ``database_url``), and small scripted gRPC servers for the
failure modes the simulator never produces (UNAVAILABLE, slow answers, UNIMPLEMENTED).

Other test modules truncate ``public.*`` and drop ``tenant_*`` schemas between their tests,
so every test here uses its own tenant id and guild id and never relies on empty tables.
"""

from __future__ import annotations

import collections
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import grpc
import psycopg
import pytest

from tests.support.polling import wait_for  # noqa: F401 - re-exported for the tests

SECRET = "gw-test-secret-8d1f"


def unique_tenant(prefix: str = "t") -> str:
    return f"{prefix}_{uuid.uuid4().hex[:12]}"


def unique_guild() -> str:
    return str(100000000000000000 + uuid.uuid4().int % 10**17)


@pytest.fixture(scope="session")
def gw_db(gateway_schema):
    """The shared test database with the gateway-owned tables (root conftest)."""
    return gateway_schema


@pytest.fixture(scope="session")
def gw_sim(gw_db):
    from glyphoxa_htmx.simulator.server import GatewaySimulator

    sim = GatewaySimulator(gw_db, secret=SECRET, activation_delay=0.2, line_interval=0.2, heartbeat_interval=0.3)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def db(gw_db):
    with psycopg.connect(gw_db, autocommit=True) as conn:
        yield conn


@pytest.fixture
def gw(gw_sim):
    """A GatewayClient on the simulator; sessions started through ``gw.start`` are stopped
    after the test."""
    from glyphoxa_htmx.adapters.gateway.client import GatewayClient

    client = GatewayClient(gw_sim.address, SECRET, timeout=5.0)
    started: list[str] = []
    original = client.start_web_session

    def start(*args, **kwargs):
        sid = original(*args, **kwargs)
        started.append(sid)
        return sid

    client.start_web_session = start  # type: ignore[method-assign]
    yield client
    for sid in started:
        try:
            client.stop_web_session(sid)
        except Exception:  # noqa: BLE001 - already stopped or gone
            pass
    client.close()


@pytest.fixture
def tenant(gw):
    """A fresh tenant (shared tier, one guild) on the simulator."""
    return gw.create_tenant(unique_tenant(), guild_ids=[unique_guild()], campaign_id="camp_" + uuid.uuid4().hex[:8])


# --------------------------------------------------------------------------- scripted servers

MGMT = "/glyphoxa.v1.ManagementService/"
WORKER = "/glyphoxa.v1.SessionWorkerService/"


class ScriptedServer:
    """A real gRPC server whose answers are scripted per method.

    ``behaviour[method_name]`` is a list consumed one entry per call (the last entry
    repeats): a ``grpc.StatusCode`` aborts with that code, ``"slow"`` blocks until the test
    ends, and ``"ok"`` answers with an empty (default) message. Unlisted methods answer
    ``"ok"``. Services not in ``services`` are unknown to the server (UNIMPLEMENTED).
    Calls and their metadata are recorded.
    """

    def __init__(self, services=(MGMT, WORKER), *, credentials: grpc.ServerCredentials | None = None) -> None:
        self.services = tuple(services)
        self.behaviour: dict[str, list] = {}
        self.calls: collections.Counter[str] = collections.Counter()
        self.metadata: list[tuple[str, dict]] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._server = grpc.server(ThreadPoolExecutor(max_workers=8), handlers=[self._Handler(self)])
        if credentials is not None:
            self.port = self._server.add_secure_port("127.0.0.1:0", credentials)
        else:
            self.port = self._server.add_insecure_port("127.0.0.1:0")
        self.address = f"127.0.0.1:{self.port}"

    class _Handler(grpc.GenericRpcHandler):
        def __init__(self, outer: ScriptedServer) -> None:
            self.outer = outer

        def service(self, handler_call_details):
            method = handler_call_details.method
            if not method.startswith(self.outer.services):
                return None
            name = method.rsplit("/", 1)[1]
            md = dict(handler_call_details.invocation_metadata or ())

            def unary(request: bytes, context: grpc.ServicerContext) -> bytes:
                return self.outer._answer(name, md, context)

            return grpc.unary_unary_rpc_method_handler(unary)

    def _answer(self, name: str, md: dict, context: grpc.ServicerContext) -> bytes:
        with self._lock:
            self.calls[name] += 1
            self.metadata.append((name, md))
            script = self.behaviour.get(name) or ["ok"]
            action = script.pop(0) if len(script) > 1 else script[0]
        if action == "slow":
            self.release.wait(10)
            return b""
        if isinstance(action, grpc.StatusCode):
            context.abort(action, f"scripted {action.name}")
        return b""

    def start(self) -> ScriptedServer:
        self._server.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self._server.stop(0).wait(5)


@pytest.fixture
def scripted():
    servers: list[ScriptedServer] = []

    def make(services=(MGMT, WORKER), **kw) -> ScriptedServer:
        server = ScriptedServer(services, **kw).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()
