"""OpenTelemetry tracing, on only when ``OTEL_EXPORTER_OTLP_ENDPOINT`` is set (off: nothing is
imported and no hook is registered, so it costs nothing).

When on: Flask requests, SQLAlchemy statements, gRPC calls to the gateway and outgoing HTTP
(``requests``: Authlib, Vault, Stripe, providers) become spans exported over OTLP/HTTP. The
exporter's background thread is created lazily in each process on its first request, so a
gunicorn worker starts its own after the fork (never inherits a dead thread from the master).
Every log line written inside a span carries ``trace_id`` and ``span_id`` (core/logs.py)."""

from __future__ import annotations

import logging
import os
import threading
from typing import TYPE_CHECKING

from flask import Flask

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

_lock = threading.Lock()
_provider_pid: int | None = None
_patched = False


def _traces_url(endpoint: str) -> str:
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith("/v1/traces") else endpoint + "/v1/traces"


def ensure_provider(endpoint: str, service_name: str = "glyphoxa-web") -> None:
    """The tracer provider and its exporter thread, once per process (post-fork)."""
    global _provider_pid
    if _provider_pid == os.getpid():
        return
    with _lock:
        if _provider_pid == os.getpid():
            return
        from opentelemetry import trace
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor

        provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        provider.add_span_processor(
            BatchSpanProcessor(OTLPSpanExporter(endpoint=_traces_url(endpoint), timeout=5), schedule_delay_millis=500)
        )
        trace.set_tracer_provider(provider)
        _provider_pid = os.getpid()


def flush(timeout_millis: int = 5000) -> None:
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if hasattr(provider, "force_flush"):
        provider.force_flush(timeout_millis)


def init_app(app: Flask, endpoint: str) -> None:
    """Instrument this app (call before the gateway channel is created: gRPC is patched here)."""
    global _patched
    if not endpoint:
        return
    from opentelemetry.instrumentation.flask import FlaskInstrumentor

    @app.before_request
    def _tracing_in_this_process() -> None:
        ensure_provider(endpoint)

    # Process-wide patches, once: gRPC client channels and requests.
    with _lock:
        if not _patched:
            from opentelemetry.instrumentation.grpc import GrpcInstrumentorClient
            from opentelemetry.instrumentation.requests import RequestsInstrumentor

            GrpcInstrumentorClient().instrument()
            RequestsInstrumentor().instrument()
            _patched = True
    FlaskInstrumentor().instrument_app(app, excluded_urls="healthz,readyz,metrics,static")
    app.extensions["glyphoxa.tracing"] = endpoint


def instrument_engine(app: Flask, engine: Engine) -> None:
    if not app.extensions.get("glyphoxa.tracing"):
        return
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor

    SQLAlchemyInstrumentor().instrument(engine=engine, enable_commenter=False)
