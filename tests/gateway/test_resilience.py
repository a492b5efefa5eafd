"""Client behaviour when things go wrong: the management secret, deadlines, the retry
policy (reads only), the circuit breaker, UNIMPLEMENTED worker control, and TLS/mTLS.
Scripted gRPC servers stand in where the simulator cannot produce the failure."""

from __future__ import annotations

import datetime as dt
import logging
import socket

import grpc
import pytest

from glyphoxa_htmx.adapters.gateway import (
    GatewayError,
    GatewayUnavailable,
    LiveControlUnsupported,
)
from glyphoxa_htmx.adapters.gateway.client import CircuitBreaker, GatewayClient
from glyphoxa_htmx.adapters.gateway.pb import management_pb2 as mpb
from glyphoxa_htmx.adapters.gateway.pb import management_pb2_grpc as mgrpc
from glyphoxa_htmx.adapters.gateway.pb import session_pb2 as spb
from glyphoxa_htmx.adapters.gateway.pb import session_pb2_grpc as sgrpc

from .conftest import MGMT, SECRET, unique_tenant, wait_for

UNAVAILABLE = grpc.StatusCode.UNAVAILABLE


# ---------------------------------------------------------------- the management secret


def test_raw_stub_without_secret_is_unauthenticated(gw_sim):
    with grpc.insecure_channel(gw_sim.address) as channel:
        stub = mgrpc.ManagementServiceStub(channel)
        with pytest.raises(grpc.RpcError) as exc:
            stub.ListTenants(mpb.ListTenantsRequest(), timeout=5)
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert exc.value.details() == "missing management secret"

        with pytest.raises(grpc.RpcError) as exc:
            stub.ListTenants(mpb.ListTenantsRequest(), timeout=5, metadata=[("x-mgmt-secret", "wrong")])
        assert exc.value.code() == grpc.StatusCode.UNAUTHENTICATED
        assert exc.value.details() == "invalid management secret"

        ok = stub.ListTenants(mpb.ListTenantsRequest(), timeout=5, metadata=[("x-mgmt-secret", SECRET)])
        assert isinstance(ok, mpb.ListTenantsResponse)

        # only ManagementService is checked: the worker service answers without a secret
        with pytest.raises(grpc.RpcError) as exc:
            sgrpc.SessionWorkerServiceStub(channel).ListNPCs(spb.ListNPCsRequest(session_id="nope"), timeout=5)
        assert exc.value.code() == grpc.StatusCode.NOT_FOUND


@pytest.mark.parametrize("secret", ["", "not-the-secret"])
def test_client_with_bad_secret_is_unavailable_and_logged_loudly(gw_sim, caplog, secret):
    caplog.set_level(logging.INFO)
    with GatewayClient(gw_sim.address, secret, retries=2) as client:
        with pytest.raises(GatewayUnavailable) as exc:
            client.list_tenants()
        assert exc.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert "voice service is unavailable" in exc.value.message.lower()
        assert client.breaker_state == "closed"  # the server answered: not a breaker failure
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and "secret" in errors[0].getMessage()
    if secret:
        assert all(secret not in r.getMessage() for r in caplog.records)


def test_secret_never_in_repr(gw_sim):
    client = GatewayClient(gw_sim.address, "super-secret-value-123")
    try:
        assert "super-secret-value-123" not in repr(client)
        assert "super-secret-value-123" not in repr(vars(client))
    finally:
        client.close()
    assert SECRET not in repr(gw_sim) and SECRET not in repr(vars(gw_sim))


def test_secret_is_sent_on_every_call(scripted):
    server = scripted()
    with GatewayClient(server.address, "s3cr3t") as client:
        client.get_tenant("a")
        client.create_tenant("a")
        client.list_npcs("sid")
        client.speak_npc("sid", "npc", "hi")
    assert [name for name, _ in server.metadata] == ["GetTenant", "CreateTenant", "ListNPCs", "SpeakNPC"]
    assert all(md.get("x-mgmt-secret") == "s3cr3t" for _, md in server.metadata)


# ---------------------------------------------------------------- deadlines and retries


def test_every_call_has_a_deadline_and_reads_are_retried_on_timeout(scripted):
    server = scripted()
    server.behaviour["GetTenant"] = ["slow"]
    server.behaviour["CreateTenant"] = ["slow"]
    with GatewayClient(server.address, SECRET, timeout=0.3, retries=1, backoff_base=0.01) as client:
        with pytest.raises(GatewayUnavailable) as exc:
            client.get_tenant("a")
        assert exc.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
        wait_for(lambda: server.calls["GetTenant"] == 2, what="the retried read")

        with pytest.raises(GatewayUnavailable) as exc:
            client.create_tenant("a")
        assert exc.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert server.calls["CreateTenant"] == 1


@pytest.mark.parametrize(
    "method,call",
    [
        ("GetTenant", lambda c: c.get_tenant("a", quick=True)),
        ("GetBotStatus", lambda c: c.get_bot_status("a", quick=True)),
        ("ListNPCs", lambda c: c.list_npcs("s", quick=True)),
    ],
)
def test_quick_reads_try_once_with_a_short_deadline(scripted, method, call):
    """Page decorations (badges, pickers) must not hang a page on a gateway that hangs."""
    from glyphoxa_htmx.adapters.gateway.client import QUICK_TIMEOUT

    server = scripted()
    server.behaviour[method] = ["slow"]
    with GatewayClient(server.address, SECRET, timeout=30, retries=3, backoff_base=0.01) as client:
        with pytest.raises(GatewayUnavailable) as exc:
            call(client)
    # The slow server answers after 10 s: a deadline error proves QUICK_TIMEOUT (< 10 s) was used
    # instead of the client's 30 s, and one call proves there was no retry.
    assert QUICK_TIMEOUT < 10
    assert exc.value.code == grpc.StatusCode.DEADLINE_EXCEEDED
    assert server.calls[method] == 1


READS = [
    ("GetTenant", lambda c: c.get_tenant("a")),
    ("ListTenants", lambda c: c.list_tenants()),
    ("ListActiveSessions", lambda c: c.list_active_sessions("a")),
    ("GetUsage", lambda c: c.get_usage("a")),
    ("GetBotStatus", lambda c: c.get_bot_status("a")),
    ("GetStatus", lambda c: c.get_status("s")),
    ("ListNPCs", lambda c: c.list_npcs("s")),
]
WRITES = [
    ("CreateTenant", lambda c: c.create_tenant("a")),
    ("UpdateTenant", lambda c: c.update_tenant("a", license_tier="shared")),
    ("DeleteTenant", lambda c: c.delete_tenant("a")),
    ("StartWebSession", lambda c: c.start_web_session("a", "g", "c")),
    ("StopWebSession", lambda c: c.stop_web_session("s")),
    ("MuteNPC", lambda c: c.mute_npc("s", "n")),
    ("UnmuteNPC", lambda c: c.unmute_npc("s", "n")),
    ("MuteAllNPCs", lambda c: c.mute_all_npcs("s")),
    ("UnmuteAllNPCs", lambda c: c.unmute_all_npcs("s")),
    ("SpeakNPC", lambda c: c.speak_npc("s", "n", "t")),
]


@pytest.mark.parametrize("method,call", READS, ids=[m for m, _ in READS])
def test_reads_are_retried_on_unavailable(scripted, method, call):
    server = scripted()
    server.behaviour[method] = [UNAVAILABLE]
    with GatewayClient(server.address, SECRET, retries=2, backoff_base=0.01, breaker_threshold=0) as client:
        with pytest.raises(GatewayUnavailable):
            call(client)
    assert server.calls[method] == 3


@pytest.mark.parametrize("method,call", WRITES, ids=[m for m, _ in WRITES])
def test_writes_are_never_retried(scripted, method, call):
    server = scripted()
    server.behaviour[method] = [UNAVAILABLE]
    with GatewayClient(server.address, SECRET, retries=2, backoff_base=0.01, breaker_threshold=0) as client:
        with pytest.raises(GatewayUnavailable):
            call(client)
    assert server.calls[method] == 1


def test_a_read_that_recovers_on_retry_succeeds(scripted):
    server = scripted()
    server.behaviour["ListTenants"] = [UNAVAILABLE, UNAVAILABLE, "ok"]
    with GatewayClient(server.address, SECRET, retries=2, backoff_base=0.01) as client:
        assert client.list_tenants() == []
        assert client.breaker_state == "closed"
    assert server.calls["ListTenants"] == 3


def test_other_errors_are_not_retried(scripted):
    server = scripted()
    server.behaviour["GetTenant"] = [grpc.StatusCode.NOT_FOUND]
    with GatewayClient(server.address, SECRET, retries=2, backoff_base=0.01) as client:
        with pytest.raises(GatewayError):
            client.get_tenant("a")
    assert server.calls["GetTenant"] == 1


# ---------------------------------------------------------------- circuit breaker


def test_breaker_opens_after_consecutive_failures_and_fails_fast(scripted):
    server = scripted()
    server.behaviour["ListTenants"] = [UNAVAILABLE]
    with GatewayClient(server.address, SECRET, retries=0, breaker_threshold=3, breaker_reset=60) as client:
        for _ in range(3):
            with pytest.raises(GatewayUnavailable) as exc:
                client.list_tenants()
            assert not exc.value.breaker_open
        assert server.calls["ListTenants"] == 3
        assert client.breaker_state == "open"
        for _ in range(5):
            with pytest.raises(GatewayUnavailable) as exc:
                client.list_tenants()
            assert exc.value.breaker_open and exc.value.code is None
        with pytest.raises(GatewayUnavailable):  # writes fail fast too
            client.create_tenant("a")
    assert server.calls["ListTenants"] == 3  # nothing reached the server while open
    assert server.calls["CreateTenant"] == 0


def test_breaker_counts_retried_attempts(scripted):
    server = scripted()
    server.behaviour["GetUsage"] = [UNAVAILABLE]
    with GatewayClient(server.address, SECRET, retries=4, backoff_base=0.01, breaker_threshold=3) as client:
        with pytest.raises(GatewayUnavailable) as exc:
            client.get_usage("a")
        assert exc.value.breaker_open  # the 4th attempt was refused by the open breaker
    assert server.calls["GetUsage"] == 3


def test_breaker_half_opens_after_reset_and_closes_on_success(scripted):
    now = [1000.0]
    server = scripted()
    server.behaviour["GetTenant"] = [UNAVAILABLE, UNAVAILABLE, UNAVAILABLE, "ok"]
    with GatewayClient(server.address, SECRET, retries=0) as client:
        client.breaker = CircuitBreaker(2, 15.0, clock=lambda: now[0])
        for _ in range(2):
            with pytest.raises(GatewayUnavailable):
                client.get_tenant("a")
        assert client.breaker_state == "open"
        now[0] += 14.9
        with pytest.raises(GatewayUnavailable) as exc:
            client.get_tenant("a")
        assert exc.value.breaker_open
        assert server.calls["GetTenant"] == 2

        now[0] += 0.2  # reset elapsed: one probe goes through, fails, and re-opens
        assert client.breaker_state == "half-open"
        with pytest.raises(GatewayUnavailable) as exc:
            client.get_tenant("a")
        assert not exc.value.breaker_open and server.calls["GetTenant"] == 3
        assert client.breaker_state == "open"

        now[0] += 15.5  # next probe succeeds and closes the breaker
        assert client.get_tenant("a").id == ""
        assert client.breaker_state == "closed"
        client.get_tenant("a")
    assert server.calls["GetTenant"] == 5


def test_half_open_lets_exactly_one_probe_through():
    now = [0.0]
    breaker = CircuitBreaker(1, 10.0, clock=lambda: now[0])
    breaker.record_failure()
    now[0] = 11.0
    breaker.before_call()  # the probe
    with pytest.raises(GatewayUnavailable):
        breaker.before_call()  # everyone else still fails fast
    breaker.record_success()
    breaker.before_call()
    assert breaker.state == "closed"


def test_dead_gateway_trips_the_breaker(free_port):
    with GatewayClient(f"127.0.0.1:{free_port}", SECRET, timeout=2, retries=0, breaker_threshold=2) as client:
        outcomes = []
        for _ in range(4):
            with pytest.raises(GatewayUnavailable) as exc:
                client.get_bot_status("a")
            outcomes.append(exc.value.breaker_open)
    assert outcomes == [False, False, True, True]


@pytest.fixture
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]  # closed again: nothing listens there


# ---------------------------------------------------------------- live control support


def test_gateway_without_worker_service_means_live_control_unsupported(scripted):
    server = scripted(services=(MGMT,))  # like the real v1 gateway: ManagementService only
    with GatewayClient(server.address, SECRET) as client:
        assert client.get_tenant("a").id == ""  # management works
        calls = [
            lambda: client.get_status("s"),
            lambda: client.list_npcs("s"),
            lambda: client.mute_npc("s", "n"),
            lambda: client.unmute_npc("s", "n"),
            lambda: client.mute_all_npcs("s"),
            lambda: client.unmute_all_npcs("s"),
            lambda: client.speak_npc("s", "n", "t"),
        ]
        for call in calls:
            with pytest.raises(LiveControlUnsupported) as exc:
                call()
            assert exc.value.code == grpc.StatusCode.UNIMPLEMENTED
            assert exc.value.message == "Live NPC control is not supported by this gateway."
        assert client.breaker_state == "closed"


def test_closed_client_raises_unavailable(gw_sim):
    client = GatewayClient(gw_sim.address, SECRET)
    client.close()
    client.close()
    with pytest.raises(GatewayUnavailable):
        client.list_tenants()


# ---------------------------------------------------------------- TLS


def _certs(tmp_path):
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    now = dt.datetime.now(dt.UTC)

    def key():
        return ec.generate_private_key(ec.SECP256R1())

    def cert(subject_key, name, issuer_key=None, issuer_name=None, *, ca=False, san=None):
        subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        builder = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(issuer_name or subject)
            .public_key(subject_key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + dt.timedelta(hours=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        return builder.sign(issuer_key or subject_key, hashes.SHA256())

    ca_key = key()
    ca = cert(ca_key, "test-ca", ca=True)
    server_key, client_key = key(), key()
    server = cert(
        server_key,
        "localhost",
        ca_key,
        ca.subject,
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client = cert(client_key, "glyphoxa-web", ca_key, ca.subject)

    def pem_key(k):
        return k.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )

    files = {
        "ca.pem": ca.public_bytes(serialization.Encoding.PEM),
        "server.pem": server.public_bytes(serialization.Encoding.PEM),
        "server.key": pem_key(server_key),
        "client.pem": client.public_bytes(serialization.Encoding.PEM),
        "client.key": pem_key(client_key),
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    return {name: str(tmp_path / name) for name in files}, files


def test_mtls(scripted, tmp_path):
    paths, raw = _certs(tmp_path)
    creds = grpc.ssl_server_credentials(
        [(raw["server.key"], raw["server.pem"])], root_certificates=raw["ca.pem"], require_client_auth=True
    )
    server = scripted(credentials=creds)
    address = f"localhost:{server.port}"
    with GatewayClient(
        address, SECRET, tls_ca=paths["ca.pem"], tls_cert=paths["client.pem"], tls_key=paths["client.key"]
    ) as client:
        assert client.tls and client.get_tenant("a").id == ""
    assert server.metadata[-1][1]["x-mgmt-secret"] == SECRET

    # no client certificate: the handshake fails, which the client reports as unavailable
    with GatewayClient(address, SECRET, tls_ca=paths["ca.pem"], retries=0, timeout=2) as client:
        with pytest.raises(GatewayUnavailable):
            client.get_tenant("a")
    # plaintext against a TLS server fails the same way
    with GatewayClient(address, SECRET, retries=0, timeout=2) as client:
        with pytest.raises(GatewayUnavailable):
            client.get_tenant("a")
    assert server.calls["GetTenant"] == 1


def test_tls_cert_and_key_go_together():
    with pytest.raises(ValueError):
        GatewayClient("localhost:1", SECRET, tls_cert="/x.pem")


def test_unique_tenant_ids_are_valid():
    from glyphoxa_htmx.adapters.gateway import is_valid_tenant_id

    assert is_valid_tenant_id(unique_tenant())
