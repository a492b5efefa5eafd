"""Configuration: every setting comes from one environment variable (documented in README.md).

Two modes share one code path: the embedded default (``GLYPHOXA_ENV=development``, nothing to
install) and production (``GLYPHOXA_ENV=production``), which is validated strictly at start.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEV_SECRET_KEY = "dev-insecure-secret-key-change-me"
# GLYPHOXA_ENV must be exactly one of these; anything else (``prod``, ``Production``, a trailing
# space...) refuses to start rather than silently running development mode.
ENVIRONMENTS = ("development", "test", "production")


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
    # Seconds a page's SQL statement may run before PostgreSQL cancels it (0 = no limit): a hung or
    # locked database then fails a page fast instead of holding a worker thread.
    database_statement_timeout: float = 10.0
    host: str = "127.0.0.1"
    port: int = 5000
    public_url: str = ""  # e.g. https://app.glyphoxa.app ; used for OAuth redirect URIs and Origin checks
    dev_login: bool = True
    # GLYPHOXA_DEV_LOGIN=1 given explicitly: dev sign-in even on a non-loopback bind (loud warning)
    dev_login_forced: bool = False
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
    google_discovery_url: str = "https://accounts.google.com/.well-known/openid-configuration"
    github_client_id: str = ""
    github_client_secret: str = ""
    # Infrastructure
    redis_url: str = ""  # empty: in-memory rate limits (single process only)
    otel_endpoint: str = ""  # OTLP/HTTP collector; empty: tracing off (nothing imported)
    prometheus_url: str = ""  # Prometheus server the dashboard queries for provider latency/errors; empty: hidden
    freshdesk_domain: str = ""  # support tickets go to <domain>.freshdesk.com; empty: the local store
    freshdesk_api_key: str = ""
    freshdesk_api_base: str = ""  # empty: https://<domain>.freshdesk.com; tests point it at a local double
    # Rate-limit classes (core/ratelimits.py), in Flask-Limiter's notation ("600 per minute")
    rate_limit_general: str = "600 per minute"
    rate_limit_admin: str = "120 per minute"
    rate_limit_upload: str = "20 per hour"
    vault_addr: str = ""
    vault_token: str = ""
    # Provider keys (BYO): the secrets backend that encrypts them, and the operator's fallback
    secrets_backend: str = ""  # "vault" | "local"; empty: vault when VAULT_ADDR is set, else local
    secrets_keyring: str = ""  # local keyring file; empty: <instance>/secrets-keyring.json
    vault_transit_mount: str = "transit"
    vault_transit_key: str = "glyphoxa-provider-keys"
    vault_k8s_role: str = ""  # set: Kubernetes auth with the pod's service-account token
    vault_k8s_mount: str = "kubernetes"
    vault_k8s_token_path: str = "/var/run/secrets/kubernetes.io/serviceaccount/token"
    allow_platform_keys: bool = False  # 1: tenants without their own TTS key use ELEVENLABS_API_KEY
    admission: str = "open"  # open | invite (only invited people get in) | allowlist (ADMISSION_ALLOWLIST)
    admission_allowlist: str = ""  # Discord user ids (comma/space separated) who may found a table
    terms_url: str = ""  # set: signing up asks to accept these terms (acceptance time stored)
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
    signin_cache_seconds: float = 30.0  # per-process cache of resolved sign-ins (services/signin_cache.py); 0 = off
    proxy_hops: int = 0  # reverse proxies in front of us that set X-Forwarded-*; 0 = trust none
    allow_insecure_public_url: bool = False  # production with an http:// PUBLIC_URL (explicit opt-in)
    extra: dict = field(default_factory=dict)

    @property
    def production(self) -> bool:
        return self.env == "production"

    @property
    def loopback_bind(self) -> bool:
        """Whether HOST is a loopback address (only this machine can reach the server)."""
        host = (self.host or "").strip().strip("[]")
        if host == "localhost":
            return True
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False

    @property
    def dev_login_enabled(self) -> bool:
        """The dev sign-in form is served: asked for, never in production, and only on a loopback
        bind unless GLYPHOXA_DEV_LOGIN=1 was given explicitly (see ``dev_login_warning``)."""
        return self.dev_login and not self.production and (self.loopback_bind or self.dev_login_forced)

    @property
    def dev_login_warning(self) -> str | None:
        """The loud start-up warning when dev sign-in is reachable from other machines."""
        if self.dev_login_enabled and not self.loopback_bind:
            return (
                f"DEV SIGN-IN IS ON and the server binds {self.host!r}, not a loopback address: anyone who can "
                "reach it can sign in as any user without a password (GLYPHOXA_DEV_LOGIN=1). Never do this on "
                "a network you don't fully control."
            )
        return None

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
    ADMISSION_MODES = ("open", "invite", "allowlist")

    def allowlisted(self) -> set[str]:
        return {part for part in re.split(r"[\s,]+", self.admission_allowlist) if part}

    PRICE_KEYS = tuple(
        f"{tier}_{interval}" for tier in ("adventurer", "dungeon_master", "guild") for interval in ("month", "year")
    )

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
        if self.env not in ENVIRONMENTS:
            raise ConfigError(
                f"refusing to start: GLYPHOXA_ENV={self.env!r} is not one of "
                + ", ".join(ENVIRONMENTS)
                + " (exact, lowercase)"
            )
        if self.admission not in self.ADMISSION_MODES:
            # Fail closed: an unknown admission mode must never mean "everyone".
            raise ConfigError(
                f"refusing to start: GLYPHOXA_ADMISSION must be one of "
                f"{', '.join(self.ADMISSION_MODES)} (got {self.admission!r})"
            )
        billing = self._billing_problems()
        from glyphoxa_htmx.core.ratelimits import check as rate_limit_problems

        billing += rate_limit_problems(self)
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
        elif not self.public_url.startswith("https://") and not self.allow_insecure_public_url:
            problems.append(
                f"PUBLIC_URL must start with https:// in production (got {self.public_url!r}: cookies "
                "would not be Secure and there would be no HSTS); set ALLOW_INSECURE_PUBLIC_URL=1 only "
                "if TLS really ends somewhere this service can't see"
            )
        backend = (self.secrets_backend or "").strip().lower()
        if backend not in ("", "vault", "local"):
            problems.append("SECRETS_BACKEND must be 'vault' or 'local'")
        if (backend == "vault" or (not backend and self.vault_addr)) and not self.vault_addr:
            problems.append("SECRETS_BACKEND=vault needs VAULT_ADDR")
        if (backend == "vault" or (not backend and self.vault_addr)) and not (self.vault_token or self.vault_k8s_role):
            problems.append("Vault Transit needs VAULT_TOKEN or VAULT_K8S_ROLE (Kubernetes auth)")
        if self.metrics_enabled and len(self.metrics_token) < 16:
            problems.append(
                "METRICS_TOKEN must be set (16+ characters) so /metrics, which names tenants, "
                "isn't public (or set METRICS_ENABLED=0)"
            )
        if problems:
            raise ConfigError("refusing to start in production: " + "; ".join(problems))


ENV_MAP = {
    "env": "GLYPHOXA_ENV",
    "secret_key": "SECRET_KEY",
    "database_url": "DATABASE_URL",
    "instance_dir": "GLYPHOXA_INSTANCE_DIR",
    "database_statement_timeout": "DATABASE_STATEMENT_TIMEOUT",
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
    "google_discovery_url": "GOOGLE_DISCOVERY_URL",
    "github_client_id": "GITHUB_CLIENT_ID",
    "github_client_secret": "GITHUB_CLIENT_SECRET",
    "redis_url": "REDIS_URL",
    "otel_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "prometheus_url": "PROMETHEUS_URL",
    "freshdesk_domain": "FRESHDESK_DOMAIN",
    "freshdesk_api_key": "FRESHDESK_API_KEY",
    "freshdesk_api_base": "FRESHDESK_API_BASE",
    "rate_limit_general": "RATE_LIMIT_GENERAL",
    "rate_limit_admin": "RATE_LIMIT_ADMIN",
    "rate_limit_upload": "RATE_LIMIT_UPLOAD",
    "vault_addr": "VAULT_ADDR",
    "vault_token": "VAULT_TOKEN",
    "secrets_backend": "SECRETS_BACKEND",
    "secrets_keyring": "SECRETS_KEYRING",
    "vault_transit_mount": "VAULT_TRANSIT_MOUNT",
    "vault_transit_key": "VAULT_TRANSIT_KEY",
    "vault_k8s_role": "VAULT_K8S_ROLE",
    "vault_k8s_mount": "VAULT_K8S_MOUNT",
    "vault_k8s_token_path": "VAULT_K8S_TOKEN_PATH",
    "allow_platform_keys": "ALLOW_PLATFORM_KEYS",
    "admission": "GLYPHOXA_ADMISSION",
    "admission_allowlist": "ADMISSION_ALLOWLIST",
    "terms_url": "TERMS_URL",
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
    "allow_insecure_public_url": "ALLOW_INSECURE_PUBLIC_URL",
    "live_poll_interval": "LIVE_POLL_INTERVAL",
    "signin_cache_seconds": "SIGNIN_CACHE_SECONDS",
}


def load_settings(environ: Mapping[str, str] | None = None, **overrides) -> Settings:
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
    # Dev sign-in on a non-loopback bind needs GLYPHOXA_DEV_LOGIN=1 given explicitly.
    if "dev_login_forced" not in overrides:
        s.dev_login_forced = _bool(environ.get("GLYPHOXA_DEV_LOGIN"))
    # Production defaults differ: dev sign-in, the simulator and demo data are off unless asked for.
    if s.env == "production":
        if "GLYPHOXA_DEV_LOGIN" not in environ and "dev_login" not in overrides:
            s.dev_login = False
        if "GLYPHOXA_SEED_DEMO" not in environ and "seed_demo" not in overrides:
            s.seed_demo = False
        s.gateway_simulator = False
    # Demo data goes only into the embedded database: a DATABASE_URL may name a real installation.
    # Seeding it takes an explicit GLYPHOXA_SEED_DEMO=1.
    if s.database_url and "seed_demo" not in overrides and not _bool(environ.get("GLYPHOXA_SEED_DEMO"), False):
        s.seed_demo = False
    return s
