"""Access to process-wide adapters created by the app factory (one place, so services never
care which implementation they have)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import current_app

from glyphoxa_htmx.config import Settings

if TYPE_CHECKING:
    from glyphoxa_htmx.adapters.gateway.client import GatewayClient
    from glyphoxa_htmx.adapters.secrets import SecretsBackend


def settings() -> Settings:
    return cast(Settings, current_app.extensions["glyphoxa.settings"])


def gateway() -> GatewayClient | None:
    """The GatewayClient, or None when no gateway is configured (the app says so in the UI)."""
    return cast("GatewayClient | None", current_app.extensions.get("glyphoxa.gateway"))


def secrets() -> SecretsBackend:
    """The secrets backend for provider keys (Vault Transit or the local keyring)."""
    return cast("SecretsBackend", current_app.extensions["glyphoxa.secrets"])
