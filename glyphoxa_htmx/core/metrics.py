"""Prometheus metrics with the plan's names: the request metrics
http_server_duration_seconds{method,route,status_code} and http_server_active_requests{method,route},
recorded by prometheus-flask-exporter for every view (``route`` is the URL rule, e.g.
``/campaigns/<campaign_id>``, never the raw path), and the glyphoxa_web_* business counters.

Under gunicorn with several workers set PROMETHEUS_MULTIPROC_DIR: the exporter is then
GunicornInternalPrometheusMetrics and /metrics aggregates every worker (deploy/gunicorn.conf.py
clears the directory at start and dead workers' files on exit). /metrics is the exporter's endpoint
behind the METRICS_TOKEN bearer guard."""

from __future__ import annotations

import functools
import hmac
import inspect
import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, cast

from flask import Flask, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from prometheus_client import Counter, Gauge
from prometheus_flask_exporter import PrometheusMetrics
from prometheus_flask_exporter.multiprocess import GunicornInternalPrometheusMetrics

if TYPE_CHECKING:
    from gunicorn.arbiter import Arbiter
    from gunicorn.workers.base import Worker

BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

SIGNUPS = Counter("glyphoxa_web_signups_total", "Self-service signups", ["tier"])
SESSION_STARTS = Counter(
    "glyphoxa_web_session_starts_total", "Voice session starts from the web", ["tenant_id", "result"]
)
SESSION_STOPS = Counter("glyphoxa_web_session_stops_total", "Voice session stops from the web", ["tenant_id", "reason"])
VOICE_PREVIEWS = Counter("glyphoxa_web_voice_previews_total", "Voice previews synthesised", ["tenant_id"])
VOICE_UPLOADS = Counter("glyphoxa_web_voice_uploads_total", "Voice sample uploads", ["tenant_id", "status"])
SUBSCRIPTION_CHANGES = Counter(
    "glyphoxa_web_subscription_changes_total", "Subscription tier changes", ["from_tier", "to_tier"]
)
ACTIVE_USERS = Gauge(
    "glyphoxa_web_active_users_total", "Signed-in users seen recently", ["tenant_id"], multiprocess_mode="livemax"
)


def _route() -> str:
    rule = request.url_rule
    return rule.rule if rule is not None else "<unmatched>"


def _bearer_guard(view: Callable[..., ResponseReturnValue]) -> Callable[..., ResponseReturnValue]:
    """/metrics only for `Authorization: Bearer <METRICS_TOKEN>` (the business counters carry
    tenant ids); without a token configured (development) it is open."""

    @functools.wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> ResponseReturnValue:
        token = current_app.extensions["glyphoxa.settings"].metrics_token
        if token:
            sent = request.headers.get("Authorization", "")
            if not hmac.compare_digest(sent.encode(), f"Bearer {token}".encode()):
                return jsonify(error="unauthorized"), 401, {"WWW-Authenticate": "Bearer"}
        return view(*args, **kwargs)

    return guarded


class _Labels:
    """The exporter's combined labels (same interface as its own ``CombinedLabels``), with each
    label's way of being called worked out once. The exporter's own asks
    ``inspect.getfullargspec`` of every label function on every request (five per request here,
    ~7 % of a page without a query: issue 18)."""

    def __init__(self, labels: dict[str, Any]) -> None:
        self.labels = labels.items()
        self._calls = tuple((key, _caller(value)) for key, value in labels.items())

    def keys(self) -> tuple[str, ...]:
        return tuple(key for key, _value in self.labels)

    def has_keys(self) -> bool:
        return len(self.labels) > 0

    def has_only_static_values(self) -> bool:
        return not any(callable(value) for _key, value in self.labels)

    def get_default_values(self) -> list[Any]:
        return [value for _key, value in self.labels]

    def values_for(self, response: Any) -> dict[str, Any]:
        return {key: call(response) for key, call in self._calls}


def _caller(value: Any) -> Callable[[Any], Any]:
    """As the exporter calls a label: a constant as is, a function with arguments with the
    response, one without with nothing."""
    if not callable(value):
        return lambda _response: value
    if inspect.getfullargspec(value).args:
        return cast(Callable[[Any], Any], value)
    return lambda _response: value()


class _OnceLabels:
    """Mixed into the exporter's classes: its ``_get_combined_labels`` (same combination of the
    metric's labels and the default labels), returning :class:`_Labels`."""

    _default_labels: dict[str, Any]

    def _get_combined_labels(self, labels: dict[str, Any] | None) -> _Labels:
        combined = dict(labels or {})
        combined.update(self._default_labels or {})
        return _Labels(combined)


class _Metrics(_OnceLabels, PrometheusMetrics):  # type: ignore[misc]
    pass


class _GunicornMetrics(_OnceLabels, GunicornInternalPrometheusMetrics):  # type: ignore[misc]
    pass


class _Exporter:
    """One exporter and one pair of request metrics per process (a metric name can be registered
    only once), applied to every app the process builds (tests build many)."""

    def __init__(self) -> None:
        multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        cls = _GunicornMetrics if multiprocess else _Metrics
        self.metrics = cls.for_app_factory(path="/metrics", export_defaults=False, metrics_decorator=_bearer_guard)
        self.duration = self.metrics.histogram(
            "http_server_duration_seconds",
            "HTTP request duration",
            labels={"method": lambda: request.method, "route": _route, "status_code": lambda r: r.status_code},
            buckets=BUCKETS,
        )
        self.active = self.metrics.gauge(
            "http_server_active_requests",
            "In-flight HTTP requests",
            labels={"method": lambda: request.method, "route": _route},
            multiprocess_mode="livesum",
        )


_exporter: _Exporter | None = None


def init_app(app: Flask) -> None:
    """Register /metrics and time every view. Call after all blueprints are registered."""
    global _exporter
    if _exporter is None:
        _exporter = _Exporter()
    _exporter.metrics.init_app(app)
    _exporter.metrics.register_default(_exporter.duration, _exporter.active, app=app)


# gunicorn server hooks shared by deploy/gunicorn.conf.py and deploy/gunicorn-ws.conf.py.


def gunicorn_on_starting(server: Arbiter) -> None:
    """Multiprocess Prometheus: start with an empty metrics directory (each process group needs
    its own PROMETHEUS_MULTIPROC_DIR, or one would wipe the other's files)."""
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if path:
        os.makedirs(path, exist_ok=True)
        for name in os.listdir(path):
            os.remove(os.path.join(path, name))


def gunicorn_child_exit(server: Arbiter, worker: Worker) -> None:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        GunicornInternalPrometheusMetrics.mark_process_dead_on_child_exit(worker.pid)
