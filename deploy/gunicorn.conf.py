"""gunicorn for page requests: threaded workers (gthread). WebSockets are served by a separate
process group (deploy/gunicorn-ws.conf.py) routed by path at the reverse proxy, so long-lived
sockets never occupy the threads that serve pages.

    PROMETHEUS_MULTIPROC_DIR=/tmp/prom gunicorn -c deploy/gunicorn.conf.py wsgi:app
"""

import os

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8080')}")
# The app judges dev sign-in by the address it really listens on (HOST): loopback only, unless
# GLYPHOXA_DEV_LOGIN=1 is set explicitly. "0.0.0.0:8080" -> "0.0.0.0"; a unix socket is not loopback.
os.environ["HOST"] = bind.rsplit(":", 1)[0].strip("[]") if not bind.startswith("unix:") else "unix"
# gthread that answers 503 + Retry-After to a request that waited over REQUEST_QUEUE_TIMEOUT
# seconds (default 3) for a thread, instead of serving it after the client gave up.
worker_class = "glyphoxa_htmx.shedding_worker.SheddingThreadWorker"
# One worker per CPU this process may use (at least 2; a cgroup CPU quota counts), not two per
# CPU: on 2 cores, 4 workers × 8 threads gave a worse 1,000-user p99 than 2 × 8 in back-to-back
# runs (2.2 and 2.2 s against 0.88 and 0.98 s in a slow hour, 1.2 and 1.0 s against 0.55 and
# 0.47 s in a faster one): each worker warms its own caches and database connections (README,
# Performance).
from glyphoxa_htmx.shedding_worker import usable_cpus  # noqa: E402

workers = int(os.environ.get("WEB_CONCURRENCY", str(max(2, usable_cpus()))))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
# A listening socket per worker (SO_REUSEPORT) for TCP binds: the kernel spreads new connections
# over the workers. On one shared socket a burst of connections (a proxy's kept-alive upstream
# ones, wrk's) often landed all on one worker, which then served them on one core while the other
# idled: half the throughput (glyphoxa_htmx/shedding_worker.py). GUNICORN_REUSE_PORT=0 turns it
# off, and one worker has nothing to spread; a second server on a port already in use is refused
# at start as before (on_starting below).
_reuse_port = os.environ.get("GUNICORN_REUSE_PORT", "1")
if _reuse_port not in ("0", "1"):
    raise ValueError(f"GUNICORN_REUSE_PORT must be 0 or 1, got {_reuse_port!r}")
reuse_port = _reuse_port == "1" and workers > 1 and not bind.startswith(("unix:", "fd://"))
# gthread stops accepting once a worker holds worker_connections sockets (gunicorn's default:
# 1,000), kept-alive ones included. With 3,000 users browsing, each keeping its connection between
# pages, a third of them waited in the kernel's accept queue, where the shedding above can't see
# them, until their clients gave up at 30 s. Accepted, a request that waits too long for a thread
# gets the fast 503 instead. Bounded by the open-file limit (raised to its hard limit here, which
# the workers inherit), leaving room for database and Redis sockets.
import resource  # noqa: E402

_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
_limit = 1 << 20 if _hard == resource.RLIM_INFINITY else _hard
if _soft != resource.RLIM_INFINITY and _soft < _limit:
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (_limit, _hard))
        _soft = _limit
    except (ValueError, OSError):  # not allowed here: keep the soft limit and size to it
        pass
_fds = _limit if _soft == resource.RLIM_INFINITY else _soft
worker_connections = max(threads + 100, min(5000, _fds - 200))
timeout = 30
graceful_timeout = 20
keepalive = 5
# Recycle a worker after this many requests (a slow leak can't grow forever); 0 = never (the bench:
# at 1,000 req/s the floor's workers would restart every few seconds, mid-measurement). Not 5,000:
# at 1,000 users a worker serves ~130 req/s, so it was replaced every ~40 s, and each start pays
# its template compile (~0.6 s of CPU), new database connections and cold caches; in back-to-back
# 1,000-user runs the p99 after the ramp was 2.3 s with 5,000 against 0.52 s without recycling.
# 100,000 is ~13 minutes at that load, hours at a quieter one.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "100000"))
max_requests_jitter = max_requests // 10
accesslog = None  # the app logs structured JSON itself; no second, unstructured access log
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
# gunicorn >= 24 opens a control socket per master; by default every master would share one
# path, so give this one its own (this file is evaluated in the master: getpid() is the master).
control_socket = os.environ.get("GUNICORN_CONTROL_SOCKET") or os.path.join(
    os.environ.get("XDG_RUNTIME_DIR") or os.path.expanduser("~/.gunicorn"), f"gunicorn-web-{os.getpid()}.ctl"
)


# Prometheus multiprocess housekeeping (shared with the other process group).
from glyphoxa_htmx.core.metrics import gunicorn_child_exit as child_exit  # noqa: E402,F401
from glyphoxa_htmx.core.metrics import gunicorn_on_starting  # noqa: E402
from glyphoxa_htmx.shedding_worker import refuse_taken_ports  # noqa: E402


def on_starting(server):
    gunicorn_on_starting(server)
    if reuse_port and "GUNICORN_PID" not in os.environ:  # (not re-executed by USR2: the old workers listen)
        refuse_taken_ports(server.cfg.address)
