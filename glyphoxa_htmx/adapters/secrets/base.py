"""The one secrets interface: encrypt a provider key into a self-describing ciphertext string,
decrypt it again (in memory, for one call), rewrap it with the newest key version, rotate.

Ciphertexts name their backend and key version, ``<backend>:v<N>:<base64>``:

- ``vault:v3:...`` from Vault Transit (production), exactly the string Vault returns;
- ``local:v2:...`` from the local AES-GCM keyring in the instance directory (embedded default).

Plaintext never leaves these objects except as the return value of :meth:`decrypt`; errors carry
messages safe to show (they never contain the plaintext or the ciphertext)."""

from __future__ import annotations

import re
from typing import Protocol

CIPHERTEXT_RE = re.compile(r"^(vault|local):v([1-9][0-9]{0,8}):[A-Za-z0-9+/=_-]+$")


class SecretsError(Exception):
    """A ciphertext the backend can't use (wrong backend, unknown key version, tampered)."""

    default_message = "A stored key could not be read. Replace it in Settings → Voice & AI providers."

    def __init__(self, message: str | None = None, *, details: str = "") -> None:
        self.message = message or self.default_message
        self.details = details  # for logs: an exception class or status, never key material
        super().__init__(self.message)


class SecretsUnavailable(SecretsError):
    """The backend can't be reached (Vault down or sealed, keyring unreadable): fail closed."""

    default_message = (
        "The secrets store is unavailable, so keys can't be changed right now. "
        "Nothing was saved; try again in a few minutes."
    )


def key_version(ciphertext: str) -> int | None:
    """The key version a ciphertext was made with, or None when it isn't one of ours."""
    match = CIPHERTEXT_RE.match(ciphertext or "")
    return int(match.group(2)) if match else None


class SecretsBackend(Protocol):
    name: str  # "vault" | "local"
    label: str  # what /readyz and the settings page call it

    def encrypt(self, plaintext: str) -> str: ...

    def decrypt(self, ciphertext: str) -> str: ...

    def rewrap(self, ciphertext: str) -> str:
        """The same secret under the newest key version (unchanged if already newest)."""
        ...

    def rotate(self) -> int:
        """Create a new key version; new writes use it, old ciphertexts still decrypt. Returns it."""
        ...

    def health(self) -> str | None:
        """None when usable, else a short problem (``unreachable``, ``sealed``, ...)."""
        ...
