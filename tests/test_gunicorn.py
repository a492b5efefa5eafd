"""The production entry point under gunicorn with several workers: it serves, and /metrics
aggregates every worker (Prometheus multiprocess mode)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

from tests.support.polling import wait_for, wait_healthy

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _gunicorn(database_url: str, port: int, **env_overrides: str) -> subprocess.Popen:
    """The page process group (deploy/gunicorn.conf.py, wsgi:app) on 127.0.0.1:``port``, with
    ``env_overrides`` on top of a development environment; output piped for the failure message.
    Prometheus multiprocess mode only when an override asks for it."""
    env = {
        **os.environ,
        "GLYPHOXA_ENV": "development",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "g" * 40,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "LOG_LEVEL": "WARNING",
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(env_overrides)
    return subprocess.Popen(
        [str(Path(sys.executable).with_name("gunicorn")), "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def test_gunicorn_workers_share_metrics(app, database_url, tmp_path):
    port = _free_port()
    proc = _gunicorn(database_url, port, WEB_CONCURRENCY="2", PROMETHEUS_MULTIPROC_DIR=str(tmp_path / "prom"))
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        for _ in range(40):  # the landing page: /auth/* allows only 10 a minute per address
            assert requests.get(base + "/", timeout=5).status_code == 200
        body = requests.get(base + "/metrics", timeout=5).text
        counts = re.findall(
            r'http_server_duration_seconds_count\{method="GET",route="/",status_code="200"\} (\S+)', body
        )
        assert counts and float(counts[0]) == 40.0
        assert any(name.startswith("histogram_") for name in os.listdir(tmp_path / "prom"))
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def test_overloaded_worker_answers_503_with_retry_after_instead_of_serving_late(app, database_url):
    """A request that waited longer than REQUEST_QUEUE_TIMEOUT for a thread is shed at once (503,
    Retry-After) without running the app; the request that held the thread is served normally."""
    port = _free_port()
    proc = _gunicorn(database_url, port, WEB_CONCURRENCY="1", GUNICORN_THREADS="1", REQUEST_QUEUE_TIMEOUT="0.3")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, proc)
        # The only thread is busy reading a request whose headers arrive slowly...
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.3)
        # ...while another request queues behind it for longer than the limit.
        queued = socket.create_connection(("127.0.0.1", port))
        queued.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        time.sleep(1.0)
        slow.sendall(b"Connection: close\r\n\r\n")
        first = _read_all(slow)
        second = _read_all(queued)
        assert first.startswith(b"HTTP/1.1 200")
        assert second.startswith(b"HTTP/1.1 503")
        assert b"\r\nRetry-After: 2\r\n" in second
        # Once the queue is empty, requests are served again.
        assert requests.get(base + "/healthz", timeout=5).status_code == 200
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _read_all(sock: socket.socket) -> bytes:
    sock.settimeout(10)
    chunks = []
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            break
        chunks.append(chunk)
    sock.close()
    return b"".join(chunks)


def test_batched_general_limit_holds_across_gunicorn_workers(app, database_url):
    """The general class under gunicorn with two workers and Redis: each worker counts its hits
    and flushes them in batches (core/ratelimits.py Batched). 60 a minute: the first 60 pass;
    past it a worker that hasn't seen the other's hits yet may let through at most the hits it
    holds unsent (a twentieth of the limit: 3); every other request is refused, whichever worker
    takes it."""
    import uuid

    from tests.support.services import REDIS_URL, require_redis

    require_redis(REDIS_URL)
    port = _free_port()
    proc = _gunicorn(
        database_url,
        port,
        WEB_CONCURRENCY="2",
        REDIS_URL=REDIS_URL,
        PROXY_HOPS="1",  # each run its own client address (X-Forwarded-For): a fresh count
        RATE_LIMIT_GENERAL="60 per minute",
    )
    base = f"http://127.0.0.1:{port}"
    client = f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}"
    try:
        wait_healthy(base, proc)
        codes = []
        for i in range(70):
            # A new connection each time (no keep-alive): the two workers take turns accepting.
            resp = requests.get(base + "/", headers={"X-Forwarded-For": client, "Connection": "close"}, timeout=5)
            codes.append(resp.status_code)
            if i % 7 == 0:
                time.sleep(0.25)  # let the flush threads run between some of them
        assert codes[:60] == [200] * 60
        # (workers - 1) x a twentieth of the limit at most; which requests those are depends on
        # which worker the kernel hands each connection, so only the count is certain.
        assert 60 <= codes.count(200) <= 60 + 60 // 20
        assert codes.count(429) == 70 - codes.count(200)
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0].decode(errors="replace")
    assert "Traceback" not in out, out[-3000:]


class _Cycle:
    """A reference cycle the cyclic collector must find (a weakref tells whether it did)."""

    def __init__(self) -> None:
        self.me = self


def test_a_worker_collects_then_freezes_its_boot_heap(app, database_url):
    """wsgi.py's last step as a worker boots (``freeze_boot_heap``): garbage of the boot is
    collected first (never frozen for the process's life), what is alive is frozen out of the full
    collections that stop every thread of a worker, and what is made later is collected as before.
    The entry point itself (wsgi.py, imported as gunicorn imports it) leaves the heap frozen."""
    import gc
    import weakref

    from glyphoxa_htmx.app import freeze_boot_heap

    boot_garbage = _Cycle()
    gone_at_boot = weakref.ref(boot_garbage)
    del boot_garbage
    try:
        assert freeze_boot_heap() > 1000
        assert gone_at_boot() is None  # collected, not frozen
        later = _Cycle()
        gone_later = weakref.ref(later)
        del later
        gc.collect()
        assert gone_later() is None  # a cycle made after the boot is still collected
    finally:
        gc.unfreeze()

    env = {
        **os.environ,
        "GLYPHOXA_ENV": "development",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "g" * 40,
        "LOG_LEVEL": "WARNING",
    }
    probe = "import gc, wsgi; print(gc.get_freeze_count())"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.strip().splitlines()[-1]) > 10_000


# --------------------------------------------------------------------------- a socket per worker


def _sockets(pid: int, port: int, status: str) -> int:
    """How many TCP sockets on ``port`` (local side) process ``pid`` holds in ``status``."""
    import psutil

    return sum(
        1
        for c in psutil.Process(pid).net_connections(kind="tcp")
        if c.laddr and c.laddr.port == port and c.status == status
    )


def _workers(proc: subprocess.Popen) -> list[int]:
    import psutil

    return [child.pid for child in psutil.Process(proc.pid).children()]


def _two_listening_workers(proc: subprocess.Popen, base: str, port: int) -> list[int]:
    """Once the server answers: its two workers' pids, each holding a listening socket of its own."""
    wait_healthy(base, proc)
    wait_for(lambda: len(_workers(proc)) == 2, timeout=60, what="two workers")
    workers = _workers(proc)
    wait_for(
        lambda: all(_sockets(pid, port, "LISTEN") == 1 for pid in workers),
        timeout=60,
        what="a listener in each worker",
    )
    return workers


def test_each_worker_listens_on_its_own_socket_and_new_connections_spread(app, database_url):
    """deploy/gunicorn.conf.py turns on reuse_port for a TCP bind: every worker binds a socket of
    its own once its app is loaded, the master none, and the kernel spreads new connections over
    them. On one shared socket a burst of kept-alive connections often landed all on one worker
    (half the throughput: README, Performance). 32 connections all on one of two workers by chance:
    2 in 2**32."""
    port = _free_port()
    proc = _gunicorn(database_url, port, WEB_CONCURRENCY="2")
    base = f"http://127.0.0.1:{port}"
    held: list[socket.socket] = []
    try:
        workers = _two_listening_workers(proc, base, port)
        assert _sockets(proc.pid, port, "LISTEN") == 0
        for _ in range(32):
            conn = socket.create_connection(("127.0.0.1", port))
            conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")  # kept alive, as a browser's
            assert conn.recv(65536).startswith(b"HTTP/1.1 200")
            held.append(conn)
        counts = [_sockets(pid, port, "ESTABLISHED") for pid in workers]
        assert sum(counts) == 32
        assert all(n > 0 for n in counts), counts
    finally:
        for conn in held:
            conn.close()
        proc.terminate()
        proc.wait(timeout=20)


def test_a_second_server_on_a_port_in_use_is_refused(app, database_url):
    """With reuse_port the kernel would let a second server share the first one's port (and its
    connections): it is refused at start instead, as a plain bind was, and the first one serves on."""
    port = _free_port()
    first = _gunicorn(database_url, port, WEB_CONCURRENCY="2")
    base = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(base, first)
        second = _gunicorn(database_url, port, WEB_CONCURRENCY="2")
        out = second.communicate(timeout=60)[0].decode(errors="replace")
        assert second.returncode != 0
        assert f"Connection in use: 127.0.0.1:{port}" in out
        assert requests.get(base + "/healthz", timeout=5).status_code == 200
    finally:
        first.terminate()
        first.wait(timeout=20)


def test_a_stopping_worker_closes_its_socket_at_once_and_finishes_what_it_holds(app, database_url):
    """A worker told to stop (a deploy, max_requests) while another listens stops taking
    connections and closes its socket at once, so the kernel hands new connections to the other
    instead of queueing them on a socket nobody will accept from (and resetting them when it
    closes); the request it holds is still answered, and its replacement listens again."""
    import signal

    port = _free_port()
    proc = _gunicorn(database_url, port, WEB_CONCURRENCY="2", GUNICORN_THREADS="2")
    base = f"http://127.0.0.1:{port}"
    try:
        workers = _two_listening_workers(proc, base, port)
        slow = socket.create_connection(("127.0.0.1", port))
        slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # a thread waits for the rest
        wait_for(
            lambda: any(_sockets(pid, port, "ESTABLISHED") for pid in workers), timeout=60, what="the slow connection"
        )
        (holder,) = [pid for pid in workers if _sockets(pid, port, "ESTABLISHED")]
        os.kill(holder, signal.SIGTERM)
        wait_for(lambda: _sockets(holder, port, "LISTEN") == 0, timeout=5, what="the stopping worker's socket to close")
        assert _alive(holder)  # still finishing the request it holds
        for _ in range(10):  # meanwhile new connections go to the other worker
            assert requests.get(base + "/healthz", headers={"Connection": "close"}, timeout=5).status_code == 200
        slow.sendall(b"\r\n")
        answer = _read_all(slow)
        assert answer.startswith(b"HTTP/1.1 200")
        assert b"\r\nConnection: close\r\n" in answer
        wait_for(lambda: len([p for p in _workers(proc) if p != holder]) == 2, timeout=60, what="a replacement worker")
        wait_for(
            lambda: all(_sockets(pid, port, "LISTEN") == 1 for pid in _workers(proc)),
            timeout=60,
            what="the replacement's listener",
        )
    finally:
        proc.terminate()
        proc.wait(timeout=20)


def _alive(pid: int) -> bool:
    import psutil

    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _bare_worker(listener, cfg, log):
    """A SheddingThreadWorker around ``listener``, its poller set up as run() sets it, connections
    it takes collected instead of served."""
    import selectors

    from glyphoxa_htmx.shedding_worker import SheddingThreadWorker

    worker = SheddingThreadWorker(1, os.getpid(), [listener], None, 30, cfg, log)
    worker.own_sockets = True
    worker.poller = selectors.DefaultSelector()
    worker.taken = []
    worker.enqueue_req = worker.taken.append  # (what a thread would serve)
    return worker


def test_a_stopping_worker_takes_what_its_socket_queued_then_closes_it_unless_it_is_the_last():
    """The connections the kernel queued on a stopping worker's own socket (arrived after its last
    accept) are taken and served, not reset when the socket closes; and the last socket listening
    on the port stays open (closed at exit as gthread closes it), so nobody is refused meanwhile.
    At boot likewise: the socket gunicorn bound at the fork is given up only when another listens."""
    import logging

    from gunicorn import sock as gsock
    from gunicorn.config import Config

    cfg = Config()
    cfg.set("bind", "127.0.0.1:0")
    cfg.set("reuse_port", True)
    log = logging.getLogger("test.gunicorn")
    (listener,) = gsock.create_sockets(cfg, log)
    port = listener.getsockname()[1]
    cfg.set("bind", f"127.0.0.1:{port}")
    alone = _bare_worker(listener, cfg, log)
    assert alone.others_listen() is False
    assert alone.release_early_sockets() is False and alone.sockets == [listener]
    alone.set_accept_enabled(True)
    alone.alive = False
    alone.set_accept_enabled(False)
    assert listener.sock is not None and alone.taken == []  # the last one: left open

    (other,) = gsock.create_sockets(cfg, log)  # another worker's socket on the same port
    clients: list[socket.socket] = []
    worker = _bare_worker(listener, cfg, log)
    booting = None
    try:
        assert worker.others_listen() is True
        worker.set_accept_enabled(True)
        clients = [socket.create_connection(("127.0.0.1", port)) for _ in range(40)]
        time.sleep(0.1)  # (the handshakes complete in the kernel: queued, not yet accepted)
        worker.alive = False  # SIGTERM, max_requests
        worker.set_accept_enabled(False)
        assert listener.sock is None  # closed
        assert 0 < len(worker.taken) == worker.nr_conns < 40  # its share; the rest went to the other
        for conn in worker.taken:  # each still connected to its client
            conn.sock.sendall(b"ok")
        mine = {conn.sock.getpeername() for conn in worker.taken}
        assert all(c.recv(2) == b"ok" for c in clients if c.getsockname() in mine)
        (early,) = gsock.create_sockets(cfg, log)  # a new worker's, bound at the fork
        booting = _bare_worker(early, cfg, log)
        assert booting.release_early_sockets() is True and booting.sockets == [] and early.sock is None
    finally:
        for conn in worker.taken:
            conn.sock.close()
        for c in clients:
            c.close()
        other.close()
        for w in (alone, worker, booting):
            if w is not None:
                w.poller.close()
                w.tmp.close()
        listener.close()
