"""Glyphoxa Web: the self-service management plane for Glyphoxa voice NPCs."""

from glyphoxa_htmx.app import create_app

__all__ = ["create_app"]
