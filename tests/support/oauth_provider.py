"""A small OAuth2 provider speaking Discord's authorization-code protocol over real HTTP
(authorize -> code, token endpoint with client secret and PKCE S256 verification, /users/@me,
/users/@me/guilds with each guild's ``owner`` flag and ``permissions`` bitfield). Used by the sign-in tests instead of patching functions."""

from __future__ import annotations

import base64
import hashlib
import secrets
import threading
from urllib.parse import urlencode

from flask import Flask, jsonify, redirect, request
from werkzeug.serving import make_server


class FakeDiscord:
    def __init__(self, client_id: str = "test-client", client_secret: str = "test-client-secret"):
        self.client_id = client_id
        self.client_secret = client_secret
        self.codes: dict[str, dict] = {}
        self.tokens: dict[str, dict] = {}
        self.user = {
            "id": "80351110224678912",
            "username": "nelly",
            "global_name": "Nelly the Bard",
            "avatar": "8342729096ea3675442027381ff50dfe",
            "email": "nelly@example.com",
            "verified": True,
        }
        # Like Discord's partial guilds: ``permissions`` is the member's permission bitfield as a
        # decimal string (MANAGE_GUILD = 0x20; ADMINISTRATOR = 0x8 implies it; owners have all).
        self.guilds = [
            {
                "id": "41771983423143937",
                "name": "Tavern of Tales",
                "owner": True,
                "permissions": "2251799813685247",
                "icon": None,
                "features": [],
            },
            {
                "id": "41771983423143938",
                "name": "Dice Goblins",
                "owner": False,
                "permissions": "104324673",
                "icon": None,
                "features": [],
            },
        ]
        self.authorize_requests: list[dict] = []
        self.token_requests: list[dict] = []
        self.app = self._build()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.port = self._server.server_port
        self.base = f"http://127.0.0.1:{self.port}/api"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeDiscord:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    def _build(self) -> Flask:
        app = Flask("fake_discord")

        @app.get("/api/oauth2/authorize")
        def authorize():
            args = request.args.to_dict()
            self.authorize_requests.append(args)
            if args.get("client_id") != self.client_id or args.get("response_type") != "code":
                return jsonify(error="invalid_request"), 400
            code = secrets.token_urlsafe(16)
            self.codes[code] = {
                "redirect_uri": args["redirect_uri"],
                "challenge": args.get("code_challenge"),
                "method": args.get("code_challenge_method"),
            }
            return redirect(args["redirect_uri"] + "?" + urlencode({"code": code, "state": args.get("state", "")}))

        @app.post("/api/oauth2/token")
        def token():
            form = request.form.to_dict()
            self.token_requests.append(form)
            if form.get("client_id") != self.client_id or form.get("client_secret") != self.client_secret:
                return jsonify(error="invalid_client"), 401
            grant = self.codes.pop(form.get("code", ""), None)
            if grant is None or grant["redirect_uri"] != form.get("redirect_uri"):
                return jsonify(error="invalid_grant"), 400
            if grant["challenge"]:
                verifier = form.get("code_verifier", "")
                digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
                if grant["method"] != "S256" or digest != grant["challenge"]:
                    return jsonify(error="invalid_grant", error_description="PKCE verification failed"), 400
            access = secrets.token_urlsafe(24)
            self.tokens[access] = {"scope": "identify guilds email"}
            return jsonify(
                access_token=access,
                token_type="Bearer",
                expires_in=604800,
                refresh_token=secrets.token_urlsafe(24),
                scope="identify guilds email",
            )

        def _authorized() -> bool:
            header = request.headers.get("Authorization", "")
            return header.startswith("Bearer ") and header[7:] in self.tokens

        @app.get("/api/users/@me")
        def me():
            if not _authorized():
                return jsonify(message="401: Unauthorized"), 401
            return jsonify(self.user)

        @app.get("/api/users/@me/guilds")
        def guilds():
            if not _authorized():
                return jsonify(message="401: Unauthorized"), 401
            return jsonify(self.guilds)

        return app
