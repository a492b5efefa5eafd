"""gunicorn's threaded worker that sheds load fast instead of letting requests time out (issue 18).

Under overload gthread keeps accepting connections and queues them for its threads without bound:
a flood of 3,000 users made requests wait until clients gave up (30 s), while the workers went on
serving requests nobody was waiting for, and useful throughput collapsed. This worker stamps every
connection when it is queued for a thread (a new connection, or a keep-alive one whose next
request arrived), notes how long it waited when a thread picks it up, and answers a request that
waited longer than ``REQUEST_QUEUE_TIMEOUT`` seconds (default 3) with ``503 Service Unavailable`` and ``Retry-After`` right away, without running the
app: it costs microseconds, so the queue drains and the requests behind it are served in time.

    worker_class = "glyphoxa_htmx.shedding_worker.SheddingThreadWorker"   # deploy/gunicorn.conf.py

0 disables shedding. The WebSocket group doesn't use it (its sockets live long by design).
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

from gunicorn.workers.gthread import ThreadWorker

RETRY_AFTER_SECONDS = 2
_BODY = b"The service is busy right now. Please try again in a moment.\n"
_RESPONSE = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    + f"Retry-After: {RETRY_AFTER_SECONDS}\r\nContent-Length: {len(_BODY)}\r\n".encode()
    + b"Cache-Control: no-store\r\nConnection: close\r\n\r\n"
    + _BODY
)


def queue_timeout() -> float:
    try:
        return float(os.environ.get("REQUEST_QUEUE_TIMEOUT", "3"))
    except ValueError:
        return 3.0


class SheddingThreadWorker(ThreadWorker):
    shed = 0  # requests answered 503 by this worker

    def init_process(self):
        self.max_wait = queue_timeout()
        super().init_process()

    def enqueue_req(self, conn):
        conn.gx_queued_at = time.monotonic()
        super().enqueue_req(conn)

    def handle(self, conn):
        # How long this connection waited for a thread (not for its client's bytes).
        queued = getattr(conn, "gx_queued_at", None)
        conn.gx_waited = time.monotonic() - queued if queued is not None else 0.0
        return super().handle(conn)

    def handle_request(self, req, conn):
        if self.max_wait > 0 and getattr(conn, "gx_waited", 0.0) > self.max_wait:
            self.shed += 1
            if self.shed == 1 or self.shed % 1000 == 0:
                self.log.warning(
                    "overloaded: %d request(s) answered 503 after waiting over %.1fs for a thread",
                    self.shed,
                    self.max_wait,
                )
            try:
                conn.sock.sendall(_RESPONSE)
            except OSError:
                pass
            return False  # close the connection
        return super().handle_request(req, conn)


def usable_cpus(cgroup: str = "/sys/fs/cgroup") -> int:
    """The CPUs this process may use: the ones it may run on, capped by a cgroup CPU quota (a
    container started with ``--cpus 2`` on a 32-core host sees 32 CPUs but gets two). Sizes the
    page group's default worker count (deploy/gunicorn.conf.py); at least 1."""
    cpus = len(os.sched_getaffinity(0))
    quota = period = 0.0
    try:  # cgroup v2: "<quota> <period>" or "max <period>"
        text = Path(cgroup, "cpu.max").read_text().split()
        if text and text[0] != "max":
            quota, period = float(text[0]), float(text[1])
    except (OSError, ValueError, IndexError):
        try:  # cgroup v1: -1 when unlimited
            quota = float(Path(cgroup, "cpu", "cpu.cfs_quota_us").read_text())
            period = float(Path(cgroup, "cpu", "cpu.cfs_period_us").read_text())
        except (OSError, ValueError):
            quota = period = 0.0
    if quota > 0 and period > 0:
        cpus = min(cpus, math.ceil(quota / period))
    return max(1, cpus)
