"""Configuration: every setting comes from one environment variable (documented in README.md).

Two modes share one code path: the embedded default (``GLYPHOXA_ENV=development``, nothing to
install) and production (``GLYPHOXA_ENV=production``), which is validated strictly at start.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"


class ConfigError(RuntimeError):
    """Raised at start-up when production settings are unsafe or incomplete."""


def _bool(value: str | None, default: bool = False) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _float(value: str | None, default: float) -> float:
    return float(value) if value not in (None, "") else default


@dataclass
class Settings:
    env: str = "development"
    secret_key: str = DEV_SECRET_KEY
    database_url: str = ""  # empty: embedded PostgreSQL in instance/
    instance_dir: str = str(ROOT / "instance")
    host: str = "127.0.0.1"
    port: int = 5000
    public_url: str = ""  # e.g. https://app.glyphoxa.app ; used for OAuth redirect URIs and Origin checks
    dev_login: bool = True
    log_level: str = "INFO"
    log_json: bool = True
    session_idle_minutes: int = 720
    session_absolute_days: int = 7
    session_cookie_secure: bool | None = None  # None: secure when public_url is https
    # Gateway
    gateway_grpc_addr: str = ""
    gateway_secret: str = ""
    gateway_tls_cert: str = ""
    gateway_tls_key: str = ""
    gateway_tls_ca: str = ""
    gateway_timeout: float = 5.0
    gateway_simulator: bool = True  # dev only: start the in-process simulator when no address is set
    sim_activation_delay: float = 2.0
    sim_line_interval: float = 3.0
    # OAuth providers (a provider is enabled when its client id and secret are both set)
    discord_client_id: str = ""
    discord_client_secret: str = ""
    discord_api_base: str = "https://discord.com/api"
    google_client_id: str = ""
    google_client_secret: str = ""
    github_client_id: str = ""
    github_client_secret: str = ""
    # Infrastructure
    redis_url: str = ""  # empty: in-memory rate limits (single process only)
    vault_addr: str = ""
    vault_token: str = ""
    billing: str = "disabled"  # disabled (self-hosted: no Stripe, every tenant unlimited) | stripe
    stripe_secret_key: str = ""
    stripe_webhook_secret: str = ""
    stripe_api_base: str = ""  # empty: Stripe's own (https://api.stripe.com); tests point it at a local double
    stripe_prices: str = ""  # "adventurer_month=price_…,adventurer_year=price_…,…" (one per paid tier and interval)
    smtp_url: str = ""  # empty: mails are written to instance/mail/ and the log
    mail_from: str = "Glyphoxa <noreply@glyphoxa.local>"
    smtp_ca_file: str = ""  # extra CA bundle to verify the SMTP server's STARTTLS certificate
    seed_demo: bool = True
    metrics_enabled: bool = True
    metrics_token: str = ""  # bearer token Prometheus must send to /metrics (required in production)
    live_poll_interval: float = 0.5  # seconds between the live hub's polls of a watched session
    proxy_hops: int = 0  # reverse proxies in front of us that set X-Forwarded-*; 0 = trust none
    extra: dict = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.env == "production"

    def oauth_providers(self) -> list[str]:
        out = []
        for name in ("discord", "google", "github"):
            if getattr(self, f"{name}_client_id") and getattr(self, f"{name}_client_secret"):
                out.append(name)
        return out

    @property
    def cookie_secure(self) -> bool:
        if self.session_cookie_secure is not None:
            return self.session_cookie_secure
        return self.public_url.startswith("https://")

    BILLING_MODES = ("disabled", "stripe")
    PRICE_KEYS = tuple(f"{tier}_{interval}" for tier in ("adventurer", "dungeon_master", "guild")
                       for interval in ("month", "year"))

    def stripe_price_map(self) -> dict[str, str]:
        """{"adventurer_month": "price_…", …} from STRIPE_PRICES."""
        out = {}
        for part in self.stripe_prices.split(","):
            key, _, value = part.strip().partition("=")
            if key.strip() and value.strip():
                out[key.strip()] = value.strip()
        return out

    def _billing_problems(self) -> list[str]:
        """Billing is checked in every environment: an unknown mode or a half-configured Stripe
        must not start (fail closed: never serve paid tiers for free or charge without webhooks)."""
        if self.billing not in self.BILLING_MODES:
            return [f"GLYPHOXA_BILLING must be one of {', '.join(self.BILLING_MODES)} (got {self.billing!r})"]
        if self.billing != "stripe":
            return []
        problems = []
        if not self.stripe_secret_key:
            problems.append("STRIPE_SECRET_KEY must be set when GLYPHOXA_BILLING=stripe")
        if not self.stripe_webhook_secret:
            problems.append("STRIPE_WEBHOOK_SECRET must be set when GLYPHOXA_BILLING=stripe")
        missing = [k for k in self.PRICE_KEYS if k not in self.stripe_price_map()]
        if missing:
            problems.append("STRIPE_PRICES must name a price for " + ", ".join(missing))
        return problems

    def validate(self) -> None:
        """Refuse unsafe production settings, naming exactly which one is wrong."""
        billing = self._billing_problems()
        if billing and not self.production:
            raise ConfigError("refusing to start: " + "; ".join(billing))
        if not self.production:
            return
        problems = list(billing)
        if not self.secret_key or self.secret_key == DEV_SECRET_KEY or len(self.secret_key) < 32:
            problems.append("SECRET_KEY must be set to a random value of at least 32 characters")
        if self.dev_login:
            problems.append("GLYPHOXA_DEV_LOGIN must be off in production")
        if not self.oauth_providers():
            problems.append(
                "at least one OAuth provider is required: set DISCORD_CLIENT_ID and DISCORD_CLIENT_SECRET "
                "(or the GOOGLE_/GITHUB_ pair)"
            )
        if not self.database_url:
            problems.append("DATABASE_URL must be set in production (the embedded database is for development)")
        if not self.gateway_grpc_addr:
            problems.append("GATEWAY_GRPC_ADDR must be set in production (the simulator never runs there)")
        elif not self.gateway_secret:
            problems.append("GATEWAY_SECRET must be set (the gateway refuses management calls without it)")
        if not self.public_url:
            problems.append("PUBLIC_URL must be set in production (OAuth redirect URIs and WebSocket Origin checks)")
        if self.metrics_enabled and len(self.metrics_token) < 16:
            problems.append("METRICS_TOKEN must be set (16+ characters) so /metrics, which names tenants, "
                            "isn't public (or set METRICS_ENABLED=0)")
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems))


ENV_MAP = {
    "env": "GLYPHOXA_ENV",
    "secret_key": "SECRET_KEY",
    "database_url": "DATABASE_URL",
    "instance_dir": "GLYPHOXA_INSTANCE_DIR",
    "host": "HOST",
    "port": "PORT",
    "public_url": "PUBLIC_URL",
    "dev_login": "GLYPHOXA_DEV_LOGIN",
    "log_level": "LOG_LEVEL",
    "log_json": "LOG_JSON",
    "session_idle_minutes": "SESSION_IDLE_MINUTES",
    "session_absolute_days": "SESSION_ABSOLUTE_DAYS",
    "session_cookie_secure": "SESSION_COOKIE_SECURE",
    "gateway_grpc_addr": "GATEWAY_GRPC_ADDR",
    "gateway_secret": "GATEWAY_SECRET",
    "gateway_tls_cert": "GATEWAY_TLS_CERT",
    "gateway_tls_key": "GATEWAY_TLS_KEY",
    "gateway_tls_ca": "GATEWAY_TLS_CA",
    "gateway_timeout": "GATEWAY_TIMEOUT",
    "gateway_simulator": "GLYPHOXA_GATEWAY_SIMULATOR",
    "sim_activation_delay": "SIM_ACTIVATION_DELAY",
    "sim_line_interval": "SIM_LINE_INTERVAL",
    "discord_client_id": "DISCORD_CLIENT_ID",
    "discord_client_secret": "DISCORD_CLIENT_SECRET",
    "discord_api_base": "DISCORD_API_BASE",
    "google_client_id": "GOOGLE_CLIENT_ID",
    "google_client_secret": "GOOGLE_CLIENT_SECRET",
    "github_client_id": "GITHUB_CLIENT_ID",
    "github_client_secret": "GITHUB_CLIENT_SECRET",
    "redis_url": "REDIS_URL",
    "vault_addr": "VAULT_ADDR",
    "vault_token": "VAULT_TOKEN",
    "billing": "GLYPHOXA_BILLING",
    "stripe_secret_key": "STRIPE_SECRET_KEY",
    "stripe_webhook_secret": "STRIPE_WEBHOOK_SECRET",
    "stripe_api_base": "STRIPE_API_BASE",
    "stripe_prices": "STRIPE_PRICES",
    "smtp_url": "SMTP_URL",
    "mail_from": "MAIL_FROM",
    "smtp_ca_file": "SMTP_CA_FILE",
    "seed_demo": "GLYPHOXA_SEED_DEMO",
    "metrics_enabled": "METRICS_ENABLED",
    "metrics_token": "METRICS_TOKEN",
    "proxy_hops": "PROXY_HOPS",
    "live_poll_interval": "LIVE_POLL_INTERVAL",
}


def load_settings(environ: dict[str, str] | None = None, **overrides) -> Settings:
    """Build Settings from environment variables, then apply keyword overrides (tests)."""
    environ = os.environ if environ is None else environ
    s = Settings()
    types = {f.name: f.type for f in fields(Settings)}
    for attr, var in ENV_MAP.items():
        raw = environ.get(var)
        if raw is None:
            continue
        current = getattr(s, attr)
        kind = types[attr]
        if attr == "session_cookie_secure":
            setattr(s, attr, _bool(raw) if raw != "" else None)
        elif isinstance(current, bool):
            setattr(s, attr, _bool(raw, current))
        elif isinstance(current, int):
            setattr(s, attr, int(raw))
        elif isinstance(current, float):
            setattr(s, attr, _float(raw, current))
        else:
            setattr(s, attr, raw)
        del kind
    for key, value in overrides.items():
        if not hasattr(s, key):
            raise TypeError(f"unknown setting {key}")
        setattr(s, key, value)
    # Production defaults differ: dev sign-in, the simulator and demo data are off unless asked for.
    if s.env == "production":
        if "GLYPHOXA_DEV_LOGIN" not in environ and "dev_login" not in overrides:
            s.dev_login = False
        if "GLYPHOXA_SEED_DEMO" not in environ and "seed_demo" not in overrides:
            s.seed_demo = False
        s.gateway_simulator = False
    return s
