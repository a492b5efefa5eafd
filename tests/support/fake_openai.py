"""A local HTTP server following the OpenAI-compatible API's shapes for ``GET /v1/models``
(``Authorization: Bearer <key>`` → ``{"object": "list", "data": [{"id", "object": "model", ...}]}``;
a wrong key → 401 ``{"error": {"code": "invalid_api_key", ...}}`` whose message echoes part of
the key, like OpenAI's; ``rate_limit_next`` → 429 ``rate_limit_exceeded``). Every request is
recorded."""

from __future__ import annotations

import threading

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

MODELS = [
    {"id": "gpt-4o-mini", "object": "model", "created": 1721172741, "owned_by": "system"},
    {"id": "whisper-1", "object": "model", "created": 1677532384, "owned_by": "openai-internal"},
]


class FakeOpenAI:
    def __init__(self, api_key: str = "sk-test-openai-key-0000") -> None:
        self.api_key = api_key
        self.requests: list[dict] = []
        self.rate_limit_next = 0
        self.app = self._build()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.base = f"http://127.0.0.1:{self._server.server_port}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeOpenAI:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def _build(self) -> Flask:
        app = Flask("fake_openai")

        @app.before_request
        def _record_and_auth():
            self.requests.append({"method": request.method, "path": request.path, "headers": dict(request.headers)})
            auth = request.headers.get("Authorization", "")
            sent = auth[len("Bearer ") :] if auth.startswith("Bearer ") else ""
            if sent != self.api_key:
                shown = (sent[:3] + "*" * 10 + sent[-4:]) if len(sent) > 8 else "***"
                return jsonify(
                    error={
                        "message": f"Incorrect API key provided: {shown}.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                ), 401
            if self.rate_limit_next > 0:
                self.rate_limit_next -= 1
                return jsonify(
                    error={
                        "message": "Rate limit reached for requests",
                        "type": "requests",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                ), 429
            return None

        @app.get("/v1/models")
        def models():
            return jsonify(object="list", data=MODELS)

        return app
