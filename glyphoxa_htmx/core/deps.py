"""Access to process-wide adapters created by the app factory (one place, so services never
care which implementation they have)."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from flask import current_app
from flask.globals import _cv_app

from glyphoxa_htmx.config import Settings

if TYPE_CHECKING:
    from glyphoxa_htmx.adapters.gateway.client import GatewayClient
    from glyphoxa_htmx.adapters.secrets import SecretsBackend


def settings() -> Settings:
    """The app's settings (read from the app context itself, not through ``current_app``'s proxy:
    every request asks several times)."""
    ctx = _cv_app.get(None)
    app = ctx.app if ctx is not None else current_app  # (no app context: current_app's own error)
    return cast(Settings, app.extensions["glyphoxa.settings"])


def gateway() -> GatewayClient | None:
    """The GatewayClient, or None when no gateway is configured (the app says so in the UI)."""
    return cast("GatewayClient | None", current_app.extensions.get("glyphoxa.gateway"))


def secrets() -> SecretsBackend:
    """The secrets backend for provider keys (Vault Transit or the local keyring)."""
    return cast("SecretsBackend", current_app.extensions["glyphoxa.secrets"])
