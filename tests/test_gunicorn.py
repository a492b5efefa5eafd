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

from tests.support.polling import wait_healthy

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
