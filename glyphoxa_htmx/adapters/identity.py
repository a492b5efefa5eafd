"""Identity providers: Discord, Google, GitHub via Authlib (authorization-code flow with state;
PKCE S256 where the provider supports it). A provider is enabled when its id and secret are set."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from authlib.integrations.flask_client import FlaskOAuth2App, OAuth
from flask import Flask, current_app

from glyphoxa_htmx.config import Settings
from glyphoxa_htmx.services.auth import Identity

log = logging.getLogger(__name__)

PROVIDER_LABELS = {"discord": "Discord", "google": "Google", "github": "GitHub"}

#: Seconds each call to a provider (discovery document, token, profile) may take.
PROVIDER_TIMEOUT = 5


def unreachable_errors() -> tuple[type[BaseException], ...]:
    """What a provider that can't be reached (or answers garbage) raises through Authlib."""
    import requests

    return (requests.RequestException, ValueError)


def init_app(app: Flask, settings: Settings) -> None:
    oauth = OAuth(app)
    if "discord" in settings.oauth_providers():
        base = settings.discord_api_base.rstrip("/")
        oauth.register(
            "discord",
            client_id=settings.discord_client_id,
            client_secret=settings.discord_client_secret,
            authorize_url=f"{base}/oauth2/authorize",
            access_token_url=f"{base}/oauth2/token",
            api_base_url=f"{base}/",
            client_kwargs={
                "scope": "identify guilds email",
                "code_challenge_method": "S256",
                "token_endpoint_auth_method": "client_secret_post",
                "default_timeout": PROVIDER_TIMEOUT,
            },
        )
    if "google" in settings.oauth_providers():
        oauth.register(
            "google",
            client_id=settings.google_client_id,
            client_secret=settings.google_client_secret,
            server_metadata_url=settings.google_discovery_url,
            client_kwargs={
                "scope": "openid email profile",
                "code_challenge_method": "S256",
                "default_timeout": PROVIDER_TIMEOUT,
            },
        )
    if "github" in settings.oauth_providers():
        oauth.register(
            "github",
            client_id=settings.github_client_id,
            client_secret=settings.github_client_secret,
            authorize_url="https://github.com/login/oauth/authorize",
            access_token_url="https://github.com/login/oauth/access_token",
            api_base_url="https://api.github.com/",
            client_kwargs={"scope": "read:user user:email", "default_timeout": PROVIDER_TIMEOUT},
        )
    app.extensions["glyphoxa.oauth"] = oauth


def client(provider: str) -> FlaskOAuth2App:
    oauth: OAuth = current_app.extensions["glyphoxa.oauth"]
    app: FlaskOAuth2App = oauth.create_client(provider)  # every provider registered above is OAuth 2
    return app


def enabled() -> list[str]:
    oauth: OAuth = current_app.extensions["glyphoxa.oauth"]
    return [name for name in ("discord", "google", "github") if name in oauth._registry]


# Discord permission bits (https://discord.com/developers/docs/topics/permissions).
ADMINISTRATOR = 0x8
MANAGE_GUILD = 0x20


def can_manage_guild(guild: Mapping[str, Any]) -> bool:
    """Whether a /users/@me/guilds entry grants Manage Server: the owner, the MANAGE_GUILD bit, or
    ADMINISTRATOR (which implies every permission). ``permissions`` is a decimal string in API v8+
    (an int in older versions); anything unparseable counts as no permission."""
    if guild.get("owner") is True:
        return True
    try:
        bits = int(guild.get("permissions") or 0)
    except (TypeError, ValueError):
        return False
    return bool(bits & (MANAGE_GUILD | ADMINISTRATOR))


def fetch_identity(provider: str, token: dict[str, Any]) -> Identity:
    """Read who signed in from the provider's API with the fresh token (never stored)."""
    c = client(provider)
    if provider == "discord":
        me = c.get("users/@me", token=token).json()
        guilds = []
        guilds_at = None
        try:
            resp = c.get("users/@me/guilds", token=token)
            if resp.ok:
                guilds = [
                    {
                        "id": str(g["id"]),
                        "name": g.get("name", ""),
                        "owner": bool(g.get("owner")),
                        "manage": can_manage_guild(g),
                    }
                    for g in resp.json()
                ]
                guilds_at = datetime.now(UTC)
        except Exception:  # noqa: BLE001 - sign-in still works; adding a server then asks to sign in again
            log.warning("could not read discord guilds")
        avatar = None
        if me.get("avatar"):
            avatar = f"https://cdn.discordapp.com/avatars/{me['id']}/{me['avatar']}.png?size=64"
        return Identity(
            provider="discord",
            subject=str(me["id"]),
            name=me.get("global_name") or me.get("username") or "Discord user",
            email=me.get("email"),
            email_verified=bool(me.get("verified")),
            avatar_url=avatar,
            guilds=tuple(guilds),
            guilds_fetched_at=guilds_at,
        )
    if provider == "google":
        info: Mapping[str, Any] = token.get("userinfo") or c.userinfo(token=token)
        return Identity(
            provider="google",
            subject=str(info["sub"]),
            name=info.get("name") or info.get("email", ""),
            email=info.get("email"),
            email_verified=bool(info.get("email_verified")),
            avatar_url=info.get("picture"),
        )
    if provider == "github":
        me = c.get("user", token=token).json()
        return Identity(
            provider="github",
            subject=str(me["id"]),
            name=me.get("name") or me.get("login", ""),
            email=me.get("email"),
            avatar_url=me.get("avatar_url"),
        )
    raise ValueError(provider)
