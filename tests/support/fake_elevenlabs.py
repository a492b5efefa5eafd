"""A local HTTP server following ElevenLabs' request/response shapes, for the TTS adapter tests:
``POST /v1/text-to-speech/{voice_id}`` (``xi-api-key`` header, JSON ``{text, model_id,
voice_settings}``) answers audio/mpeg bytes; ``GET /v1/voices`` answers ``{"voices": [...]}``
(the premade ones and this account's clones); ``POST /v1/voices/add`` (multipart ``name``, ``files``,
``description``) is the instant voice clone and answers ``{"voice_id": ..., "requires_verification": false}``
(``clone_fail_next`` makes the next clone 400 ``invalid_file``, as for audio it can't use).
A bad key gets 401 ``invalid_api_key``; an unknown voice gets 400 ``voice_not_found``; ``rate_limit_next``
makes the next requests 429. Every request is recorded (so tests can count synthesis calls)."""

from __future__ import annotations

import threading
import uuid

from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

# A valid MPEG-1 Layer III frame header followed by padding: enough to look like an mp3.
FAKE_MP3 = b"ID3\x03\x00\x00\x00\x00\x00\x00" + b"\xff\xfb\x90\x64" + b"\x00" * 413

VOICES = [
    {
        "voice_id": "21m00Tcm4TlvDq8ikWAM",
        "name": "Rachel",
        "category": "premade",
        "labels": {
            "accent": "american",
            "gender": "female",
            "age": "young",
            "description": "calm",
            "use_case": "narration",
        },
        "preview_url": "https://example.invalid/rachel.mp3",
    },
    {
        "voice_id": "pNInz6obpgDQGcFmaJgB",
        "name": "Adam",
        "category": "premade",
        "labels": {
            "accent": "american",
            "gender": "male",
            "age": "middle aged",
            "description": "deep",
            "use_case": "narration",
        },
        "preview_url": "https://example.invalid/adam.mp3",
    },
    {
        "voice_id": "onwK4e9ZLuTAKqWW03F9",
        "name": "Daniel",
        "category": "premade",
        "labels": {
            "accent": "british",
            "gender": "male",
            "age": "middle aged",
            "description": "authoritative",
            "use_case": "news presenter",
        },
        "preview_url": "https://example.invalid/daniel.mp3",
    },
]


class FakeElevenLabs:
    def __init__(self, api_key: str = "test-xi-key") -> None:
        self.api_key = api_key
        self.requests: list[dict] = []
        self.rate_limit_next = 0
        self.clone_fail_next = 0
        self.clones: list[dict] = []
        self.app = self._build()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeElevenLabs:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    def tts_requests(self) -> list[dict]:
        return [r for r in self.requests if r["path"].startswith("/v1/text-to-speech/")]

    def _error(self, status: int, code: str, message: str):
        return jsonify(detail={"status": code, "message": message}), status

    def _build(self) -> Flask:
        app = Flask("fake_elevenlabs")

        @app.before_request
        def _record_and_auth():
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "args": request.args.to_dict(),
                    "headers": dict(request.headers),
                    "json": request.get_json(silent=True),
                    "form": request.form.to_dict(),
                    "files": [(f.filename, f.mimetype, f.read()) for f in request.files.getlist("files")],
                }
            )
            if request.headers.get("xi-api-key") != self.api_key:
                return self._error(401, "invalid_api_key", "Invalid API key")
            if self.rate_limit_next > 0:
                self.rate_limit_next -= 1
                return self._error(429, "too_many_concurrent_requests", "Too many concurrent requests.")
            return None

        @app.post("/v1/text-to-speech/<voice_id>")
        def tts(voice_id):
            body = request.get_json(silent=True)
            if not isinstance(body, dict) or not body.get("text"):
                return self._error(422, "invalid_request", "text is required")
            if voice_id not in {v["voice_id"] for v in VOICES + self.clones}:
                return self._error(400, "voice_not_found", f"A voice with voice_id {voice_id} does not exist.")
            return Response(FAKE_MP3, mimetype="audio/mpeg")

        @app.get("/v1/voices")
        def voices():
            return jsonify(voices=VOICES + self.clones)

        @app.post("/v1/voices/add")
        def add_voice():
            name = request.form.get("name", "")
            files = request.files.getlist("files")
            if not name or not files:
                return self._error(422, "invalid_request", "name and at least one file are required")
            if self.clone_fail_next > 0:
                self.clone_fail_next -= 1
                return self._error(400, "invalid_file", "The audio sample is too noisy to clone a voice from.")
            voice_id = "clone" + uuid.uuid4().hex[:15]
            self.clones.append(
                {
                    "voice_id": voice_id,
                    "name": name,
                    "category": "cloned",
                    "labels": {"description": request.form.get("description", "")},
                }
            )
            return jsonify(voice_id=voice_id, requires_verification=False)

        return app
