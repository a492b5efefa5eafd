"""gunicorn for page requests: threaded workers (gthread). WebSockets are served by a separate
process group (deploy/gunicorn-ws.conf.py) routed by path at the reverse proxy, so long-lived
sockets never occupy the threads that serve pages.

    PROMETHEUS_MULTIPROC_DIR=/tmp/prom gunicorn -c deploy/gunicorn.conf.py wsgi:app
"""

import os

bind = os.environ.get("GUNICORN_BIND", f"0.0.0.0:{os.environ.get('PORT', '8080')}")
worker_class = "gthread"
workers = int(os.environ.get("WEB_CONCURRENCY", str(max(2, (os.cpu_count() or 1) * 2))))
threads = int(os.environ.get("GUNICORN_THREADS", "8"))
timeout = 30
graceful_timeout = 20
keepalive = 5
max_requests = 5000
max_requests_jitter = 500
accesslog = None  # the app logs structured JSON itself; no second, unstructured access log
forwarded_allow_ips = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")


def on_starting(server):
    """Multiprocess Prometheus: start with an empty metrics directory."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            os.remove(os.path.join(path, name))


def child_exit(server, worker):
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
