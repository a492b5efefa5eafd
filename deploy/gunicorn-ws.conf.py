"""gunicorn for the live-transcript WebSockets only (`/sessions/<id>/ws`).

A separate process group from the pages (deploy/gunicorn.conf.py), routed by path at the reverse
proxy (see deploy/README-websockets.md). Same image, same wsgi:app; only the proxy decides which
requests arrive here, so a thousand open sockets never occupy the threads that serve pages.

    PROMETHEUS_MULTIPROC_DIR=/tmp/prom-ws gunicorn -c deploy/gunicorn-ws.conf.py wsgi:app

Why gthread with many threads: each open socket holds one worker thread for its lifetime (it
waits on its queue from the in-process live hub; it holds no database connection), plus the
small reader thread simple-websocket starts per connection. Threads are cheap while they wait;
the database is polled once per watched session per *process* (services/live.py), so keep the
number of processes low and the number of threads high.

Capacity per pod: WS_WORKERS x WS_THREADS sockets (default 2 x 1100 = 2200). A waiting thread
costs little resident memory (its stack pages are touched only as deep as it runs), and sign-ins
are re-checked per process in one query, so the database load grows with live sessions, not
viewers (bench/run.py, part ws, prints the workers' memory).
"""

import os

bind = os.environ.get("GUNICORN_WS_BIND", f"0.0.0.0:{os.environ.get('WS_PORT', '8081')}")
# The app judges dev sign-in by the address it really listens on (HOST): loopback only, unless
# GLYPHOXA_DEV_LOGIN=1 is set explicitly. "0.0.0.0:8080" -> "0.0.0.0"; a unix socket is not loopback.
os.environ["HOST"] = bind.rsplit(":", 1)[0].strip("[]") if not bind.startswith("unix:") else "unix"
worker_class = "gthread"
workers = int(os.environ.get("WS_WORKERS", "2"))
threads = int(os.environ.get("WS_THREADS", "1100"))
# gthread accepts at most worker_connections sockets per worker; keep it above the thread count
# so a burst of reconnects queues briefly instead of being refused.
worker_connections = threads + 100
# For gthread this is the worker heartbeat, not a per-request limit: long-lived sockets are fine.
timeout = 60
# On restart open sockets are cut; clients reconnect (htmx ws backoff) and resume with ?after=<last id>.
graceful_timeout = 10
keepalive = 75
# Never recycle a worker that holds hundreds of live sockets.
max_requests = 0
backlog = 2048
accesslog = None
# gunicorn >= 24 opens a control socket per master; give this group its own path so it can run
# beside the page group on one host (both would default to the same gunicorn.ctl).
control_socket = os.environ.get("GUNICORN_WS_CONTROL_SOCKET") or os.path.join(
    os.environ.get("XDG_RUNTIME_DIR") or os.path.expanduser("~/.gunicorn"), "gunicorn-ws.ctl"
)
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


# The GIL's switch interval in these workers (Python's default: 5 ms). A thousand threads per
# worker each wake to send one frame when a line arrives; every thread waiting for the GIL
# re-asks for it each interval, and at 5 ms the workers spent most of their CPU in the kernel
# handing it round (perf: futex wakes and their spin locks). Sending a frame releases the GIL on
# its own, so a longer interval only lets a busy thread finish first: in alternating 2,000-viewer
# runs on 7 December the WS workers' CPU was 80-81 s with 5 ms, 52-82 s with 50 ms, and 39-50 s
# with 50 ms and the pumps no longer waking every second (web/sessions.SocketEvent).
_switch_interval = float(os.environ.get("WS_SWITCH_INTERVAL", "0.05"))
if not 0 < _switch_interval <= 1:
    raise ValueError(f"WS_SWITCH_INTERVAL must be seconds between 0 and 1, got {_switch_interval!r}")


def post_fork(server, worker):
    import sys

    sys.setswitchinterval(_switch_interval)


# Prometheus multiprocess housekeeping (shared with the other process group).
from glyphoxa_htmx.core.metrics import gunicorn_child_exit as child_exit  # noqa: E402,F401
from glyphoxa_htmx.core.metrics import gunicorn_on_starting as on_starting  # noqa: E402,F401
