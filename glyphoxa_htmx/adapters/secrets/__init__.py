"""Secrets behind one interface (:class:`~.base.SecretsBackend`): Vault Transit via hvac
(production) and a local AES-GCM keyring in the instance directory (embedded default).
``build(settings)`` picks one from configuration; services never know which they have."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from glyphoxa_htmx.adapters.secrets.base import (
    CIPHERTEXT_RE,
    SecretsBackend,
    SecretsError,
    SecretsUnavailable,
    key_version,
)
from glyphoxa_htmx.adapters.secrets.local import LocalKeyring
from glyphoxa_htmx.adapters.secrets.vault import DEFAULT_KEY, VaultTransit

if TYPE_CHECKING:
    from glyphoxa_htmx.config import Settings

__all__ = [
    "CIPHERTEXT_RE",
    "DEFAULT_KEY",
    "LocalKeyring",
    "SecretsBackend",
    "SecretsError",
    "SecretsUnavailable",
    "VaultTransit",
    "backend_name",
    "build",
    "key_version",
]


def backend_name(settings: Settings) -> str:
    """``vault`` or ``local``: SECRETS_BACKEND when set, else Vault when VAULT_ADDR is set."""
    chosen = (settings.secrets_backend or "").strip().lower()
    if chosen:
        return chosen
    return "vault" if settings.vault_addr else "local"


def build(settings: Settings) -> SecretsBackend:
    name = backend_name(settings)
    if name not in ("vault", "local"):
        raise ValueError(f"SECRETS_BACKEND must be 'vault' or 'local', not {name!r}")
    if name == "vault":
        if not settings.vault_addr:
            raise ValueError("SECRETS_BACKEND=vault needs VAULT_ADDR")
        return VaultTransit(
            settings.vault_addr,
            token=settings.vault_token,
            key_name=settings.vault_transit_key,
            mount=settings.vault_transit_mount,
            k8s_role=settings.vault_k8s_role,
            k8s_mount=settings.vault_k8s_mount,
            k8s_token_path=settings.vault_k8s_token_path,
        )
    path = settings.secrets_keyring or str(Path(settings.instance_dir) / "secrets-keyring.json")
    return LocalKeyring(path)
