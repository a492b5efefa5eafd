"""Production: Vault's Transit engine through hvac.

``encrypt`` sends the key base64-encoded (as Vault requires) to
``POST /v1/<mount>/encrypt/<key>`` and stores Vault's answer as-is (``vault:v<N>:...``);
``decrypt`` base64-decodes what Vault returns. Key name default ``glyphoxa-provider-keys`` (not
the gateway's ``glyphoxa-bot-tokens``, whose callers skip the base64 step, see the gateway
contract §4). Authentication: ``VAULT_TOKEN``, or Kubernetes auth (``VAULT_K8S_ROLE`` and the pod's
service-account token) with one re-login when the token has expired."""

from __future__ import annotations

import base64
import binascii
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hvac
import hvac.exceptions
import requests

from glyphoxa_htmx.adapters.secrets.base import SecretsError, SecretsUnavailable

log = logging.getLogger(__name__)

DEFAULT_KEY = "glyphoxa-provider-keys"
K8S_TOKEN_PATH = "/var/run/secrets/kubernetes.io/serviceaccount/token"


class VaultTransit:
    name = "vault"
    label = "Vault Transit"

    def __init__(
        self,
        addr: str,
        *,
        token: str = "",
        key_name: str = DEFAULT_KEY,
        mount: str = "transit",
        k8s_role: str = "",
        k8s_mount: str = "kubernetes",
        k8s_token_path: str = K8S_TOKEN_PATH,
        timeout: float = 5.0,
    ) -> None:
        if not token and not k8s_role:
            raise ValueError("Vault Transit needs VAULT_TOKEN or VAULT_K8S_ROLE")
        self.addr = addr.rstrip("/")
        self.key_name = key_name
        self.mount = mount
        self.timeout = timeout
        self.__token = token
        self._k8s = (k8s_role, k8s_mount, k8s_token_path) if k8s_role else None
        self._lock = threading.Lock()
        self._client: hvac.Client | None = None

    def __repr__(self) -> str:
        return f"VaultTransit(addr={self.addr!r}, key_name={self.key_name!r}, mount={self.mount!r}, token=***)"

    def _login(self) -> hvac.Client:
        client = hvac.Client(url=self.addr, token=self.__token or None, timeout=self.timeout)  # type: ignore[arg-type]  # hvac hands timeout to requests, which takes seconds as a float; the stub says int
        if self._k8s:
            role, mount, path = self._k8s
            try:
                jwt = Path(path).read_text().strip()
            except OSError as exc:
                raise SecretsUnavailable(details=f"kubernetes token unreadable: {type(exc).__name__}") from exc
            client.auth.kubernetes.login(role, jwt, mount_point=mount)
        return client

    def _call(self, op: Callable[[hvac.Client], Any]) -> Any:
        """Run ``op(client)``, mapping hvac/network failures; re-login once on 403 with k8s auth."""
        for attempt in (1, 2):
            try:
                with self._lock:
                    if self._client is None:
                        self._client = self._login()
                    client = self._client
                return op(client)
            except hvac.exceptions.Forbidden as exc:
                with self._lock:
                    self._client = None
                if self._k8s and attempt == 1:
                    continue
                raise SecretsUnavailable(details="vault: permission denied") from exc
            except hvac.exceptions.InvalidRequest as exc:
                raise SecretsError(details="vault: invalid request") from exc
            except (
                hvac.exceptions.VaultDown,
                hvac.exceptions.InternalServerError,
                hvac.exceptions.BadGateway,
                hvac.exceptions.RateLimitExceeded,
            ) as exc:
                raise SecretsUnavailable(details=f"vault: {type(exc).__name__}") from exc
            except hvac.exceptions.VaultError as exc:
                raise SecretsUnavailable(details=f"vault: {type(exc).__name__}") from exc
            except requests.RequestException as exc:
                log.warning("vault unreachable: %s", type(exc).__name__)
                raise SecretsUnavailable(details=f"vault unreachable: {type(exc).__name__}") from exc
        raise SecretsUnavailable(details="vault: permission denied")  # pragma: no cover

    def encrypt(self, plaintext: str) -> str:
        b64 = base64.b64encode(plaintext.encode("utf-8")).decode()
        resp = self._call(
            lambda c: c.secrets.transit.encrypt_data(self.key_name, plaintext=b64, mount_point=self.mount)
        )
        ciphertext = str(resp["data"]["ciphertext"])
        if not ciphertext.startswith("vault:v"):
            raise SecretsUnavailable(details="vault returned an unexpected ciphertext")
        return ciphertext

    def decrypt(self, ciphertext: str) -> str:
        if not (ciphertext or "").startswith("vault:v"):
            raise SecretsError(details="not a Vault ciphertext")
        resp = self._call(
            lambda c: c.secrets.transit.decrypt_data(self.key_name, ciphertext=ciphertext, mount_point=self.mount)
        )
        try:
            return base64.b64decode(resp["data"]["plaintext"], validate=True).decode("utf-8")
        except (binascii.Error, ValueError, KeyError, TypeError) as exc:
            raise SecretsError(details="vault returned a plaintext that is not base64") from exc

    def rewrap(self, ciphertext: str) -> str:
        if not (ciphertext or "").startswith("vault:v"):
            raise SecretsError(details="not a Vault ciphertext")
        resp = self._call(
            lambda c: c.secrets.transit.rewrap_data(self.key_name, ciphertext=ciphertext, mount_point=self.mount)
        )
        return str(resp["data"]["ciphertext"])

    def rotate(self) -> int:
        self._call(lambda c: c.secrets.transit.rotate_key(self.key_name, mount_point=self.mount))
        resp = self._call(lambda c: c.secrets.transit.read_key(self.key_name, mount_point=self.mount))
        return int(resp["data"]["latest_version"])

    def health(self) -> str | None:
        try:
            resp = requests.get(self.addr + "/v1/sys/health", timeout=min(self.timeout, 2.0))
        except requests.RequestException:
            return "unreachable"
        if resp.status_code in (200, 429, 473):  # active, standby, performance standby
            return None
        return {503: "sealed", 501: "not initialised"}.get(resp.status_code, f"status {resp.status_code}")
