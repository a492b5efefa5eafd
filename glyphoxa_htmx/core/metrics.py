"""Prometheus metrics with the plan's names (http_server_duration_seconds{method,route,status_code},
http_server_active_requests{method,route}, glyphoxa_web_* business counters).

prometheus_client is used directly (rather than prometheus-flask-exporter) because the plan's
metric and label names are fixed and the route label must be the URL rule, not the raw path.
Under gunicorn with several workers set PROMETHEUS_MULTIPROC_DIR; /metrics then aggregates all
workers (deploy/gunicorn.conf.py clears dead workers' files)."""

from __future__ import annotations

import os
import time

from flask import Flask, Response, g, request
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client import multiprocess

HTTP_DURATION = Histogram(
    "http_server_duration_seconds", "HTTP request duration", ["method", "route", "status_code"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_ACTIVE = Gauge(
    "http_server_active_requests", "In-flight HTTP requests", ["method", "route"], multiprocess_mode="livesum"
)
SIGNUPS = Counter("glyphoxa_web_signups_total", "Self-service signups", ["tier"])
SESSION_STARTS = Counter("glyphoxa_web_session_starts_total", "Voice session starts from the web", ["tenant_id", "result"])
SESSION_STOPS = Counter("glyphoxa_web_session_stops_total", "Voice session stops from the web", ["tenant_id", "reason"])
VOICE_PREVIEWS = Counter("glyphoxa_web_voice_previews_total", "Voice previews synthesised", ["tenant_id"])
VOICE_UPLOADS = Counter("glyphoxa_web_voice_uploads_total", "Voice sample uploads", ["tenant_id", "status"])
SUBSCRIPTION_CHANGES = Counter(
    "glyphoxa_web_subscription_changes_total", "Subscription tier changes", ["from_tier", "to_tier"]
)
ACTIVE_USERS = Gauge("glyphoxa_web_active_users_total", "Signed-in users seen recently", ["tenant_id"],
                     multiprocess_mode="livemax")


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "<unmatched>"


def init_app(app: Flask) -> None:
    @app.before_request
    def _start_timer():
        g._metrics_start = time.perf_counter()
        g._metrics_route = _route()
        HTTP_ACTIVE.labels(request.method, g._metrics_route).inc()

    @app.teardown_request
    def _end(exc):
        start = g.pop("_metrics_start", None)
        if start is None:
            return
        route = g.pop("_metrics_route", "<unmatched>")
        HTTP_ACTIVE.labels(request.method, route).dec()
        status = g.get("_metrics_status", 500 if exc else 200)
        HTTP_DURATION.labels(request.method, route, str(status)).observe(time.perf_counter() - start)

    @app.after_request
    def _status(response):
        g._metrics_status = response.status_code
        return response


def exposition() -> Response:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
        data = generate_latest(registry)
    else:
        data = generate_latest()
    return Response(data, mimetype=CONTENT_TYPE_LATEST)


# gunicorn server hooks shared by deploy/gunicorn.conf.py and deploy/gunicorn-ws.conf.py.


def gunicorn_on_starting(server) -> None:
    """Multiprocess Prometheus: start with an empty metrics directory (each process group needs
    its own PROMETHEUS_MULTIPROC_DIR, or one would wipe the other's files)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            os.remove(os.path.join(path, name))


def gunicorn_child_exit(server, worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.mark_process_dead(worker.pid)
