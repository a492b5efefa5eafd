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

It also listens on a socket of its own when gunicorn's ``reuse_port`` is on (deploy/gunicorn.conf.py
turns it on for TCP binds): with one listening socket shared by all workers, whichever worker
woke first accepted a burst of new connections, and kept-alive clients stayed where they landed.
Measured with wrk's 16 connections on two workers: all 16 on one worker in 2 of 6 runs of the
floor and 3 of 8 of the campaign page, and those runs served half the requests (one core); with a
socket per worker (``SO_REUSEPORT``) the kernel spreads new connections over the workers (4–12 of
16 each in every run). A reverse proxy keeping a few upstream connections open meets the same.
The worker binds its socket once the app is loaded (gunicorn binds it at the fork, ~3 s before the
worker can serve) and closes it as soon as it stops accepting, after taking what its queue holds,
so a restarting worker (``max_requests``, a deploy) doesn't keep connections waiting or drop them;
neither while it is the last socket listening on the port (then connections wait, as on a shared
socket, rather than being refused).
"""

from __future__ import annotations

import errno
import math
import os
import select
import socket
import time
from pathlib import Path

from gunicorn import sock, util
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
    own_sockets = False  # reuse_port: this worker's listening sockets are its own
    rebind = False  # released its fork-time sockets: binds them again in run()

    def init_process(self):
        self.max_wait = queue_timeout()
        self.own_sockets = bool(self.cfg.reuse_port) and hasattr(socket, "SO_REUSEPORT")
        self.rebind = self.own_sockets and self.release_early_sockets()
        super().init_process()

    def release_early_sockets(self) -> bool:
        """reuse_port: gunicorn bound this worker's own sockets at the fork, and the kernel hands
        them their share of new connections at once, which would wait while the app loads (~3 s).
        Where another worker listens, close them now (a few hundred microseconds after the bind)
        and bind again in run(); where none does (the others restarting too), keep them: a
        connection had better wait for this worker than be refused. True when released."""
        if not self.others_listen():
            return False
        for listener in self.sockets:
            listener.close()
        self.sockets = []
        return True

    def others_listen(self) -> bool:
        """Whether another socket listens on each of this worker's ports (its own counted out):
        a socket of another worker, since a second server on a port in use is refused at start.
        False where /proc/net can't tell."""
        for listener in self.sockets:
            address = listener.getsockname()
            if not isinstance(address, tuple):
                return False
            found = listeners_on(address[1])
            if found is None or found < 2:
                return False
        return bool(self.sockets)

    def run(self):
        if self.rebind:
            self.sockets = sock.create_sockets(self.cfg, self.log)
            for listener in self.sockets:
                util.close_on_exec(listener)
        super().run()

    def set_accept_enabled(self, enabled):
        super().set_accept_enabled(enabled)
        if enabled or self.alive or not self.own_sockets or not self.others_listen():
            return  # (the last socket listening stays open to the end, as gthread leaves it)
        # Shutting down (graceful stop, max_requests, a deploy): the kernel keeps handing this
        # worker's socket its share of new connections until it is closed, and resets those still
        # queued when it is. Take what is queued (served before the worker exits, with
        # "Connection: close"), then close it: from then on the other workers get every connection.
        for listener in self.sockets:
            queued = select.poll()
            queued.register(listener, select.POLLIN)
            # (at most a backlog's worth: connections go on arriving until it is closed)
            for _ in range(max(1, self.cfg.backlog)):
                if not queued.poll(0):
                    break
                self.accept(listener)  # gthread's own: queued for a thread like any other
            listener.close()

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


def listeners_on(port: int) -> int | None:
    """How many TCP sockets listen on ``port`` in this network namespace (/proc/net/tcp and tcp6;
    each worker's own socket is a line of its own); None where neither can be read. Read when a
    worker starts or stops, not per request (~1.5 MB with 10,000 connections open)."""
    count, read = 0, False
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as lines:
                next(lines, None)  # the header
                for line in lines:
                    fields = line.split(None, 4)  # sl, local address, remote address, state, ...
                    if fields[3] == "0A" and int(fields[1].rpartition(":")[2], 16) == port:  # 0A: LISTEN
                        count += 1
            read = True
        except (OSError, ValueError, IndexError):
            continue
    return count if read else None


def refuse_taken_ports(addresses) -> None:
    """With ``reuse_port`` a second server started on a port that one already listens on joins it
    (the kernel shares the connections between the two) instead of failing. Fail closed, as without
    it: before the workers bind, test each TCP address with a socket of our own (no SO_REUSEPORT)
    and refuse to start when something listens there. (A unix socket or fd:// bind: nothing to test.)"""
    for address in addresses:
        if not isinstance(address, tuple):
            continue
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # (TIME_WAIT is no owner)
            try:
                probe.bind(address[:2])
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    raise SystemExit(
                        f"Connection in use: {address[0]}:{address[1]} (another server listens there)"
                    ) from exc
                raise


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
