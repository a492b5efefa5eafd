"""A local Freshdesk (REST API v2) over real HTTP: tickets, status, conversations, replies, with
Basic auth (API key as user, "X" as password) and Freshdesk's JSON shapes and error codes."""

from __future__ import annotations

import base64
import threading
from datetime import UTC, datetime

from flask import Flask, jsonify, request
from werkzeug.serving import make_server


class FakeFreshdesk:
    def __init__(self, api_key: str = "fd-test-key"):
        self.api_key = api_key
        self.tickets: dict[int, dict] = {}
        self.conversations: dict[int, list[dict]] = {}
        self.next_id = 1000
        self.down = False
        self._server = make_server("127.0.0.1", 0, self._build(), threaded=True)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self):
        self._server.shutdown()

    def _now(self):
        return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    def agent_reply(self, ticket_id: int, body: str, *, private: bool = False):
        self.next_id += 1
        self.conversations[ticket_id].append(
            {
                "id": self.next_id,
                "body": f"<div>{body}</div>",
                "body_text": body,
                "incoming": False,
                "private": private,
                "user_id": 77,
                "created_at": self._now(),
                "updated_at": self._now(),
                "support_email": "help@example.com",
                "source": 0,
            }
        )

    def _build(self) -> Flask:
        app = Flask("fake_freshdesk")

        @app.before_request
        def _auth():
            if self.down:
                return jsonify(code="service_unavailable"), 503
            header = request.headers.get("Authorization", "")
            expected = "Basic " + base64.b64encode(f"{self.api_key}:X".encode()).decode()
            if header != expected:
                return jsonify(
                    code="invalid_credentials", message="You have to be logged in to perform this action."
                ), 401
            return None

        @app.post("/api/v2/tickets")
        def create():
            data = request.get_json()
            errors = [
                {"field": f, "message": "It should be a/an String", "code": "missing_field"}
                for f in ("subject", "description", "email")
                if not data.get(f)
            ]
            if errors:
                return jsonify(description="Validation failed", errors=errors), 400
            self.next_id += 1
            ticket = {
                **data,
                "id": self.next_id,
                "created_at": self._now(),
                "updated_at": self._now(),
                "requester_id": 5,
                "type": None,
                "source": 2,
                "fr_escalated": False,
                "custom_fields": {},
            }
            self.tickets[ticket["id"]] = ticket
            self.conversations[ticket["id"]] = []
            return jsonify(ticket), 201

        @app.get("/api/v2/tickets/<int:tid>")
        def show(tid):
            if tid not in self.tickets:
                return jsonify(code="access_denied"), 404
            return jsonify(self.tickets[tid])

        @app.get("/api/v2/tickets/<int:tid>/conversations")
        def conversations(tid):
            if tid not in self.tickets:
                return jsonify(code="access_denied"), 404
            return jsonify(self.conversations[tid])

        @app.post("/api/v2/tickets/<int:tid>/reply")
        def reply(tid):
            if tid not in self.tickets:
                return jsonify(code="access_denied"), 404
            self.next_id += 1
            body = request.get_json()["body"]
            entry = {
                "id": self.next_id,
                "body": body,
                "body_text": body,
                "incoming": True,
                "private": False,
                "created_at": self._now(),
                "ticket_id": tid,
            }
            self.conversations[tid].append(entry)
            return jsonify(entry), 201

        return app
