"""Blueprints: parse the request, call a service, render a page or a block. No SQL here."""

from __future__ import annotations


def FEATURE_BLUEPRINTS():  # noqa: N802 - reads like a constant at the call site
    """Feature areas (campaigns, NPCs, sessions, ...). Each module exposes ``bp``."""
    import importlib

    out = []
    for name in (
        "campaigns",
        "npcs",
        "sessions",
        "knowledge",
        "providers",
        "adoption",
        "billing",
        "usage",
        "voice_library",
        "profile",
        "welcome",
        "audit",
        "support",
    ):
        try:
            module = importlib.import_module(f"glyphoxa_htmx.web.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"glyphoxa_htmx.web.{name}":
                raise
            continue
        out.append(module.bp)
    return out
