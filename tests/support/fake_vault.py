"""A local HTTP server following Vault's Transit API, for the hvac adapter tests.

Implements what the web service uses, with Vault's shapes and rules:
``POST /v1/<mount>/encrypt/<key>`` (``{"plaintext": <base64>}`` → ``{"data": {"ciphertext":
"vault:vN:...", "key_version": N}}``; creates the key on first use like Vault's upsert),
``POST /v1/<mount>/decrypt/<key>`` (→ ``{"data": {"plaintext": <base64>}}``),
``POST /v1/<mount>/rewrap/<key>``, ``POST /v1/<mount>/keys/<key>/rotate``,
``GET /v1/<mount>/keys/<key>`` (``latest_version``, ``keys``), ``GET /v1/sys/health``
(200, or 503 when ``sealed``) and ``POST /v1/auth/kubernetes/login``. Every other request must
carry a known ``X-Vault-Token`` (403 ``permission denied`` otherwise). Errors are
``{"errors": [...]}``. Ciphertexts are real AES-256-GCM under per-version keys, so a test that
reads the database sees only ciphertext."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import threading

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

CT_RE = re.compile(r"^vault:v(\d+):(.+)$")


class FakeVault:
    def __init__(
        self,
        token: str = "test-vault-token",
        *,
        mount: str = "transit",
        k8s_role: str = "glyphoxa-web",
        k8s_jwt: str = "",
    ) -> None:
        self.tokens = {token}
        self.mount = mount
        self.k8s_role, self.k8s_jwt = k8s_role, k8s_jwt
        self.keys: dict[str, dict[int, bytes]] = {}
        self.sealed = False
        self.requests: list[dict] = []
        self.app = self._build()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.addr = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeVault:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def latest(self, name: str) -> int:
        return max(self.keys[name])

    # ---- crypto --------------------------------------------------------------------------------

    def _encrypt(self, name: str, raw: bytes, version: int | None = None) -> str:
        ring = self.keys.setdefault(name, {1: AESGCM.generate_key(bit_length=256)})
        version = version or max(ring)
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(ring[version]).encrypt(nonce, raw, None)
        return f"vault:v{version}:" + base64.b64encode(nonce + sealed).decode()

    def _decrypt(self, name: str, ciphertext: str) -> bytes:
        match = CT_RE.match(ciphertext or "")
        if not match:
            raise ValueError("invalid ciphertext: no prefix")
        ring = self.keys.get(name)
        if ring is None:
            raise ValueError("encryption key not found")
        version = int(match.group(1))
        if version not in ring:
            raise ValueError("invalid key version")
        try:
            raw = base64.b64decode(match.group(2), validate=True)
            return AESGCM(ring[version]).decrypt(raw[:12], raw[12:], None)
        except (binascii.Error, ValueError, InvalidTag) as exc:
            raise ValueError("cipher: message authentication failed") from exc

    # ---- HTTP ----------------------------------------------------------------------------------

    def _build(self) -> Flask:
        app = Flask("fake_vault")

        def err(status, *msgs):
            return jsonify(errors=list(msgs)), status

        @app.before_request
        def _record_and_auth():
            self.requests.append(
                {
                    "method": request.method,
                    "path": request.path,
                    "headers": dict(request.headers),
                    "body": request.get_data(as_text=True),
                }
            )
            if request.path == "/v1/sys/health":
                return None
            if self.sealed:
                return err(503, "Vault is sealed")
            if request.path.startswith("/v1/auth/kubernetes/login"):
                return None
            if request.headers.get("X-Vault-Token") not in self.tokens:
                return err(403, "permission denied")
            return None

        @app.get("/v1/sys/health")
        def health():
            if self.sealed:
                return jsonify(initialized=True, sealed=True, standby=False), 503
            return jsonify(initialized=True, sealed=False, standby=False, version="1.15.0")

        @app.post("/v1/auth/kubernetes/login")
        def k8s_login():
            body = request.get_json(silent=True) or {}
            if body.get("role") != self.k8s_role or not self.k8s_jwt or body.get("jwt") != self.k8s_jwt:
                return err(403, "permission denied")
            token = "k8s-" + secrets.token_hex(8)
            self.tokens.add(token)
            return jsonify(
                auth={"client_token": token, "lease_duration": 3600, "renewable": True, "policies": ["glyphoxa-web"]}
            )

        @app.post(f"/v1/{self.mount}/encrypt/<name>")
        def encrypt(name):
            body = request.get_json(silent=True) or {}
            try:
                raw = base64.b64decode(body.get("plaintext", ""), validate=True)
            except (binascii.Error, ValueError):
                return err(400, "failed to base64-decode plaintext")
            ciphertext = self._encrypt(name, raw)
            return jsonify(data={"ciphertext": ciphertext, "key_version": int(CT_RE.match(ciphertext).group(1))})

        @app.post(f"/v1/{self.mount}/decrypt/<name>")
        def decrypt(name):
            body = request.get_json(silent=True) or {}
            try:
                raw = self._decrypt(name, body.get("ciphertext", ""))
            except ValueError as exc:
                return err(400, str(exc))
            return jsonify(data={"plaintext": base64.b64encode(raw).decode()})

        @app.post(f"/v1/{self.mount}/rewrap/<name>")
        def rewrap(name):
            body = request.get_json(silent=True) or {}
            try:
                raw = self._decrypt(name, body.get("ciphertext", ""))
            except ValueError as exc:
                return err(400, str(exc))
            ciphertext = self._encrypt(name, raw)
            return jsonify(data={"ciphertext": ciphertext, "key_version": int(CT_RE.match(ciphertext).group(1))})

        @app.post(f"/v1/{self.mount}/keys/<name>/rotate")
        def rotate(name):
            ring = self.keys.setdefault(name, {1: AESGCM.generate_key(bit_length=256)})
            ring[max(ring) + 1] = AESGCM.generate_key(bit_length=256)
            return "", 204

        @app.get(f"/v1/{self.mount}/keys/<name>")
        def read_key(name):
            ring = self.keys.get(name)
            if ring is None:
                return err(404)
            return jsonify(
                data={
                    "name": name,
                    "type": "aes256-gcm96",
                    "latest_version": max(ring),
                    "min_decryption_version": 1,
                    "keys": {str(v): 0 for v in ring},
                }
            )

        return app
