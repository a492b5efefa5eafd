"""Access to process-wide adapters created by the app factory (one place, so services never
care which implementation they have)."""

from __future__ import annotations

from flask import current_app

from glyphoxa_htmx.config import Settings


def settings() -> Settings:
    return current_app.extensions["glyphoxa.settings"]


def gateway():
    """The GatewayClient, or None when no gateway is configured (the app says so in the UI)."""
    return current_app.extensions.get("glyphoxa.gateway")


def secrets():
    """The secrets backend for provider keys (Vault Transit or the local keyring)."""
    return current_app.extensions["glyphoxa.secrets"]
