"""A local TCP proxy that injects network faults between the app and a real dependency
(PostgreSQL, the gateway's gRPC port): forward, delay every chunk, go silent, or cut every
connection. Real sockets on loopback; the mode can be switched while connections are open.

    proxy = FaultProxy("127.0.0.1", 5432).start()
    url = f"postgresql://postgres@{proxy.address}/db"
    proxy.delay(3.0)     # each chunk, in both directions, arrives 3 s late (order kept)
    proxy.silent()       # accept and read, never forward: the peer hangs
    proxy.forward()      # back to normal for new bytes
    proxy.cut()          # close every open connection (new ones are accepted)
    proxy.close()
"""

from __future__ import annotations

import collections
import select
import socket
import threading
import time


class FaultProxy:
    def __init__(self, upstream_host: str, upstream_port: int) -> None:
        self.upstream = (upstream_host, int(upstream_port))
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(128)
        self.port = self._listener.getsockname()[1]
        self.address = f"127.0.0.1:{self.port}"
        self.mode = "forward"
        self.latency = 0.0
        self.connections = 0  # accepted so far
        self._lock = threading.Lock()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._closed = threading.Event()
        self._threads: list[threading.Thread] = []

    @classmethod
    def for_url(cls, host_port: str) -> FaultProxy:
        host, _, port = host_port.rpartition(":")
        return cls(host or "127.0.0.1", int(port))

    # ---- modes

    def forward(self) -> None:
        self.mode, self.latency = "forward", 0.0

    def delay(self, seconds: float) -> None:
        self.mode, self.latency = "delay", float(seconds)

    def silent(self) -> None:
        self.mode = "silent"

    def cut(self) -> None:
        """Close every open connection (both sides see a reset/EOF)."""
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            for s in (a, b):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    # ---- lifecycle

    def start(self) -> FaultProxy:
        t = threading.Thread(target=self._accept, name=f"faultproxy-{self.port}", daemon=True)
        t.start()
        self._threads.append(t)
        return self

    def close(self) -> None:
        self._closed.set()
        try:
            self._listener.close()
        except OSError:
            pass
        self.cut()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ---- internals

    def _accept(self) -> None:
        while not self._closed.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            if self.mode == "silent":
                # Accept and never answer: the peer's connect "succeeds" and then hangs.
                with self._lock:
                    self._pairs.append((client, client))
                threading.Thread(target=self._swallow, args=(client,), daemon=True).start()
                continue
            try:
                upstream = socket.create_connection(self.upstream, timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            self.connections += 1
            with self._lock:
                self._pairs.append((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _swallow(self, sock: socket.socket) -> None:
        try:
            while not self._closed.is_set():
                if not sock.recv(65536):
                    return
        except OSError:
            return

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        """Copy src -> dst; in delay mode every chunk leaves ``latency`` seconds after it
        arrived (a per-direction FIFO keeps the order); in silent mode chunks are dropped."""
        queue: collections.deque[tuple[float, bytes]] = collections.deque()
        last_due = 0.0
        try:
            while True:
                timeout = None
                if queue:
                    timeout = max(0.0, queue[0][0] - time.monotonic())
                ready, _, _ = select.select([src], [], [], timeout if timeout is not None else 0.5)
                if ready:
                    data = src.recv(65536)
                    if not data:
                        break
                    if self.mode == "silent":
                        continue
                    due = time.monotonic() + (self.latency if self.mode == "delay" else 0.0)
                    last_due = max(due, last_due)  # never overtake an earlier, later-due chunk
                    queue.append((last_due, data))
                while queue and queue[0][0] <= time.monotonic():
                    dst.sendall(queue.popleft()[1])
                if self._closed.is_set():
                    break
        except (OSError, ValueError):
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
