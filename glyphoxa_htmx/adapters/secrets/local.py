"""The embedded default: a local AES-256-GCM keyring file in the instance directory.

The file (``<instance>/secrets-keyring.json``, mode 0600, created on first use) holds versioned
keys::

    {"format": "glyphoxa-keyring", "keys": [{"version": 1, "key": "<base64 32 bytes>",
                                             "created_at": "2026-12-02T13:00:00+00:00"}, ...]}

New writes use the newest version; every version stays so old ciphertexts still decrypt.
Ciphertext: ``local:v<N>:<base64(nonce[12] || ciphertext || tag[16])>``, no associated data.
Several processes may share the file: it is re-read when it changes on disk, and written by
atomic rename."""

from __future__ import annotations

import base64
import json
import os
import secrets
import tempfile
import threading
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from glyphoxa_htmx.adapters.secrets.base import (
    CIPHERTEXT_RE,
    SecretsError,
    SecretsUnavailable,
)

FORMAT = "glyphoxa-keyring"
PREFIX = "local"


class LocalKeyring:
    name = "local"
    label = "local keyring"

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._keys: dict[int, bytes] = {}
        self._created: dict[int, str] = {}
        self._stamp: tuple[int, int] | None = None

    def __repr__(self) -> str:
        return f"LocalKeyring(path={str(self.path)!r})"

    # ---- the keyring file --------------------------------------------------------------------

    def _load(self, *, create: bool) -> dict[int, bytes]:
        """The keys, re-read if the file changed; created with one key when ``create``."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            if not create:
                raise SecretsUnavailable(
                    "No keyring exists yet, so there is nothing to decrypt.", details="keyring missing"
                ) from None
            self._write({1: AESGCM.generate_key(bit_length=256)}, exclusive=True)
            return self._load(create=False)
        except OSError as exc:
            raise SecretsUnavailable(details=type(exc).__name__) from exc
        stamp = (st.st_mtime_ns, st.st_size)
        if stamp != self._stamp:
            try:
                doc = json.loads(self.path.read_text())
                keys = {int(k["version"]): base64.b64decode(k["key"], validate=True) for k in doc["keys"]}
                created = {int(k["version"]): str(k.get("created_at", "")) for k in doc["keys"]}
            except OSError as exc:
                raise SecretsUnavailable(details=type(exc).__name__) from exc
            except (ValueError, KeyError, TypeError) as exc:
                raise SecretsUnavailable(details="keyring file is malformed") from exc
            if not keys or any(len(k) != 32 for k in keys.values()):
                raise SecretsUnavailable(details="keyring file is malformed")
            self._keys, self._created, self._stamp = keys, created, stamp
        return self._keys

    def _write(self, keys: dict[int, bytes], *, exclusive: bool = False) -> None:
        now = datetime.now(UTC).isoformat(timespec="seconds")
        doc = {
            "format": FORMAT,
            "keys": [
                {"version": v, "key": base64.b64encode(k).decode(), "created_at": self._created.get(v) or now}
                for v, k in sorted(keys.items())
            ],
        }
        if exclusive and self.path.exists():
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".keyring-")
            with os.fdopen(fd, "w") as fh:  # mkstemp creates the file 0600
                json.dump(doc, fh, indent=1)
            if exclusive:
                try:
                    os.link(tmp, self.path)  # fails if another process created it first
                except FileExistsError:
                    pass
                os.unlink(tmp)
            else:
                os.replace(tmp, self.path)
        except OSError as exc:
            raise SecretsUnavailable(details=type(exc).__name__) from exc

    # ---- the interface -----------------------------------------------------------------------

    def encrypt(self, plaintext: str) -> str:
        with self._lock:
            keys = self._load(create=True)
            version = max(keys)
            key = keys[version]
        nonce = secrets.token_bytes(12)
        sealed = AESGCM(key).encrypt(nonce, plaintext.encode("utf-8"), None)
        return f"{PREFIX}:v{version}:" + base64.b64encode(nonce + sealed).decode()

    def decrypt(self, ciphertext: str) -> str:
        match = CIPHERTEXT_RE.match(ciphertext or "")
        if not match or match.group(1) != PREFIX:
            raise SecretsError(details="not a local keyring ciphertext")
        version = int(match.group(2))
        with self._lock:
            keys = self._load(create=False)
            key = keys.get(version)
        if key is None:
            raise SecretsError(details=f"unknown key version {version}")
        try:
            raw = base64.b64decode(ciphertext.split(":", 2)[2], validate=True)
            return AESGCM(key).decrypt(raw[:12], raw[12:], None).decode("utf-8")
        except (ValueError, InvalidTag) as exc:
            raise SecretsError(details="ciphertext does not authenticate") from exc

    def rewrap(self, ciphertext: str) -> str:
        match = CIPHERTEXT_RE.match(ciphertext or "")
        with self._lock:
            newest = max(self._load(create=False))
        if match and match.group(1) == PREFIX and int(match.group(2)) == newest:
            return ciphertext
        return self.encrypt(self.decrypt(ciphertext))

    def rotate(self) -> int:
        with self._lock:
            keys = dict(self._load(create=True))
            version = max(keys) + 1
            keys[version] = AESGCM.generate_key(bit_length=256)
            self._write(keys)
            self._stamp = None
            self._load(create=False)
        return version

    def health(self) -> str | None:
        try:
            with self._lock:
                self._load(create=False)
        except SecretsUnavailable as exc:
            if exc.details == "keyring missing":
                # Nothing stored yet: usable as long as the directory can hold the file.
                parent = self.path.parent
                while not parent.exists() and parent != parent.parent:
                    parent = parent.parent
                return None if os.access(parent, os.W_OK) else "keyring directory not writable"
            return exc.details or "unreadable"
        return None
