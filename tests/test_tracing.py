"""OpenTelemetry: with OTEL_EXPORTER_OTLP_ENDPOINT set, a separate process (so the process-wide
patches never leak into other tests) exports spans over real OTLP/HTTP to a collector served by
this test: Flask requests, SQLAlchemy statements, the gRPC call to the simulator and outgoing HTTP
(Authlib's discovery fetch through requests). The JSON log line written inside a request carries
that request's trace id. Without the setting nothing of OpenTelemetry is even imported."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from tests.conftest import GATEWAY_SECRET

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import sys, uuid
from tests.conftest import Browser, make_settings
from glyphoxa_htmx.app import create_app
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import User
db_url, grpc_addr, secret, collector = sys.argv[1:5]
app = create_app(make_settings(db_url, gateway_grpc_addr=grpc_addr, gateway_secret=secret, log_json=True,
                               log_level="INFO", otel_endpoint=collector, google_client_id="g",
                               google_client_secret="s", google_discovery_url=collector + "/discovery"))
with app.app_context():
    user = User(id=str(uuid.uuid4()), tenant_id=None, name="Tracing Operator", role="super_admin",
                discord_id="trace-" + uuid.uuid4().hex[:8])
    db.session.add(user)
    db.session.commit()
    ns = type("U", (), {"id": user.id, "tenant_id": None})
b = Browser(app).login(ns)
assert b.get("/admin/").status_code == 200      # SQL + gRPC GetBotStatus
assert b.get("/auth/google").status_code in (302, 503)  # outgoing HTTP (discovery) + a warning log line
from glyphoxa_htmx.core import tracing
tracing.flush()
print("DONE")
"""

OFF_SCRIPT = """
import sys
from tests.conftest import make_settings
from glyphoxa_htmx.app import create_app
app = create_app(make_settings(sys.argv[1]))
app.test_client().get("/")
print("OTEL MODULES:" + ",".join(sorted(m for m in sys.modules if m.startswith("opentelemetry"))))
"""


class Collector:
    """An OTLP/HTTP receiver: decodes each ExportTraceServiceRequest it is sent."""

    def __init__(self):
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        self.spans: list[dict] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                assert self.path == "/v1/traces" and self.headers["Content-Type"] == "application/x-protobuf"
                req = ExportTraceServiceRequest()
                req.ParseFromString(body)
                for rs in req.resource_spans:
                    service = next(
                        (a.value.string_value for a in rs.resource.attributes if a.key == "service.name"), ""
                    )
                    for ss in rs.scope_spans:
                        for span in ss.spans:
                            owner.spans.append(
                                {
                                    "name": span.name,
                                    "kind": span.kind,
                                    "trace_id": span.trace_id.hex(),
                                    "scope": ss.scope.name,
                                    "service": service,
                                    "attrs": {
                                        a.key: a.value.string_value or a.value.int_value for a in span.attributes
                                    },
                                }
                            )
                out = ExportTraceServiceResponse().SerializeToString()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(out)))
                self.end_headers()
                self.wfile.write(out)

            def do_GET(self):  # noqa: N802 - the "Google discovery document": down
                self.send_response(503)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def test_spans_reach_an_otlp_collector_and_logs_carry_the_trace_id(app, database_url, simulator):
    collector = Collector()
    try:
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, database_url, simulator.address, GATEWAY_SECRET, collector.url],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0 and "DONE" in out.stdout, out.stderr[-3000:]
    finally:
        collector.server.shutdown()
    spans = collector.spans
    assert spans and {s["service"] for s in spans} == {"glyphoxa-web"}
    scopes = {s["scope"] for s in spans}
    assert any("flask" in sc for sc in scopes), scopes
    assert any("sqlalchemy" in sc for sc in scopes), scopes
    assert any("grpc" in sc for sc in scopes), scopes
    assert any("requests" in sc for sc in scopes), scopes
    google = next(s for s in spans if "flask" in s["scope"] and s["name"].endswith("/auth/<provider>"))
    grpc_span = next(s for s in spans if "grpc" in s["scope"])
    assert "GetBotStatus" in grpc_span["name"]
    # The discovery fetch is a child of the /auth/google request: same trace.
    fetch = next(s for s in spans if "requests" in s["scope"])
    assert fetch["trace_id"] == google["trace_id"]
    # The warning logged inside that request carries its trace id.
    lines = [json.loads(line) for line in out.stderr.splitlines() if line.startswith("{")]
    warning = next(r for r in lines if r.get("msg") == "sign-in provider unreachable")
    assert warning["trace_id"] == google["trace_id"] and len(warning["span_id"]) == 16


def test_off_by_default_imports_nothing(database_url):
    out = subprocess.run(
        [sys.executable, "-c", OFF_SCRIPT, database_url], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "OTEL MODULES:"
