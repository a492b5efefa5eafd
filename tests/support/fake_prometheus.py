"""A local HTTP server (threading http.server) following Prometheus's query API for the calls the
operators' dashboard makes: ``GET /api/v1/query?query=…`` answered with Prometheus's own JSON
shape, an instant vector (``{"status": "success", "data": {"resultType": "vector", "result":
[{"metric": {...}, "value": [<unix ts>, "<number as text>"]}]}}``), or its error shape
(``{"status": "error", "errorType": "bad_data", "error": "…"}`` with HTTP 400). Every request's
path and query are recorded.

``answers`` maps a substring of the PromQL to the ``[(labels, value-text)]`` to answer; the first
substring found in the query wins, an unmatched query gets an empty vector."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit


class FakePrometheus:
    def __init__(self, answers: dict[str, list[tuple[dict, str]]] | None = None) -> None:
        self.answers = answers or {}
        self.error: tuple[int, str, str] | None = None  # (HTTP status, errorType, error)
        self.delay = 0.0
        self.requests: list[tuple[str, str, str]] = []  # (method, path, query)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def do_GET(self):  # noqa: N802 - http.server's name
                parts = urlsplit(self.path)
                promql = (parse_qs(parts.query).get("query") or [""])[0]
                fake.requests.append(("GET", parts.path, promql))
                if fake.delay:
                    time.sleep(fake.delay)
                if parts.path != "/api/v1/query":
                    return self._send(404, {"status": "error", "errorType": "not_found", "error": "no such path"})
                if not promql:
                    return self._send(
                        400, {"status": "error", "errorType": "bad_data", "error": 'invalid parameter "query"'}
                    )
                if fake.error:
                    status, kind, message = fake.error
                    return self._send(status, {"status": "error", "errorType": kind, "error": message})
                result = []
                for needle, series in fake.answers.items():
                    if needle in promql:
                        now = time.time()
                        result = [{"metric": labels, "value": [now, value]} for labels, value in series]
                        break
                self._send(200, {"status": "success", "data": {"resultType": "vector", "result": result}})

            def _send(self, status: int, body: dict) -> None:
                raw = json.dumps(body).encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(raw)))
                    self.end_headers()
                    self.wfile.write(raw)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up waiting (the timeout test)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> FakePrometheus:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def provider_answers() -> dict[str, list[tuple[dict, str]]]:
    """Figures for two providers: a fast LLM, a slower TTS with errors, an idle STT (NaN)."""
    return {
        "histogram_quantile(0.5,": [
            ({"stage": "llm", "provider": "openai"}, "0.123"),
            ({"stage": "tts", "provider": "elevenlabs"}, "0.4"),
            ({"stage": "stt", "provider": "deepgram"}, "NaN"),
        ],
        "histogram_quantile(0.99,": [
            ({"stage": "llm", "provider": "openai"}, "0.85"),
            ({"stage": "tts", "provider": "elevenlabs"}, "2.2"),
            ({"stage": "stt", "provider": "deepgram"}, "NaN"),
        ],
        "glyphoxa_voice_provider_errors_total": [
            ({"stage": "llm", "provider": "openai"}, "0"),
            ({"stage": "tts", "provider": "elevenlabs"}, "0.025"),
        ],
    }
