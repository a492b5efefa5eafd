"""Bring-your-own provider keys: one row per (tenant, slot) in ``web.provider_configs``.

Keys are write-only: they are encrypted by the secrets adapter before anything is written (a
backend that is down refuses the save, nothing is written, never a plaintext fallback), shown
only as "••••1234", decrypted only in memory for one call (the Test button, a voice preview),
and never logged, rendered, put in an error message or in the audit log ("key replaced")."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict, cast
from urllib.parse import urlsplit

import psycopg
from sqlalchemy import Table, select
from sqlalchemy.exc import IntegrityError

from glyphoxa_htmx.adapters import providers as catalog
from glyphoxa_htmx.adapters.secrets import SecretsError
from glyphoxa_htmx.core import audit
from glyphoxa_htmx.core.authz import Actor, Perm, own, require
from glyphoxa_htmx.core.dbconn import rowcount
from glyphoxa_htmx.core.deps import secrets as secrets_backend
from glyphoxa_htmx.core.errors import Conflict, NotFound, ValidationError
from glyphoxa_htmx.core.i18n import _, current_locale
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import ProviderConfig

log = logging.getLogger(__name__)

SLOTS = catalog.SLOTS
PROVIDERS = catalog.PROVIDERS
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1"}
MAX_KEY, MIN_KEY, MAX_MODEL, MAX_URL, MAX_OPTIONS = 512, 8, 200, 300, 4000
HEALTH_TTL = 10.0


# ---- the secrets backend's state, as pages show it ------------------------------------------

_health: dict[int, tuple[float, str | None]] = {}
_health_lock = threading.Lock()


class BackendStatus(TypedDict):
    name: str
    label: str
    problem: str | None


def backend_status() -> BackendStatus:
    """{"name", "label", "problem"} of the secrets backend, probed at most every HEALTH_TTL s
    per process (the settings page says keys can't be changed while it is down)."""
    backend = secrets_backend()
    now = time.monotonic()
    with _health_lock:
        hit = _health.get(id(backend))
    if hit is None or now - hit[0] > HEALTH_TTL:
        problem = backend.health()
        with _health_lock:
            _health[id(backend)] = (now, problem)
    else:
        problem = hit[1]
    return {"name": backend.name, "label": _(backend.label), "problem": problem}


# ---- reading --------------------------------------------------------------------------------


def _rows(tenant_id: str) -> dict[str, ProviderConfig]:
    stmt = select(ProviderConfig).where(ProviderConfig.tenant_id == tenant_id)
    return {row.slot: row for row in db.session.execute(stmt).scalars()}


def overview(actor: Actor) -> list[dict[str, Any]]:
    """Every slot with its provider, model, key hint and last test (one query). DMs and viewers
    see status; only owners get forms (the template asks ``can(MANAGE_TENANT)``)."""
    require(actor, Perm.VIEW_SESSIONS)
    rows = _rows(actor.tenant_id)
    out = []
    for slot, (label, choices) in SLOTS.items():
        row = rows.get(slot)
        out.append(
            {
                "slot": slot,
                "label": label,
                "row": row,
                "choices": [(key, provider_label(key)) for key in choices],
                "provider_label": provider_label(row.provider)
                if row and row.provider in PROVIDERS
                else (row.provider if row else ""),
                "has_key": bool(row and row.api_key_enc),
                "hint": mask(row.api_key_hint) if row and row.api_key_enc else "",
                "needs_key": bool(row and row.provider in PROVIDERS and PROVIDERS[row.provider].needs_key),
                "test_label": catalog.OUTCOME_LABELS.get(row.last_test_status, "") if row else "",
            }
        )
    return out


# Secrets backend labels that are words rather than names, for extraction (adapters/secrets; shown
# translated by backend_status; "Vault Transit" is a name).
_BACKEND_LABELS = (catalog.N_("local keyring"),)


def provider_label(key: str) -> str:
    """A provider's name for a page ("Whisper-compatible server" is translated, brand names aren't)."""
    return _(PROVIDERS[key].label) if key in PROVIDERS else key


def slot_phrase(slot: str) -> str:
    """A slot's label inside a sentence: lower case in English ("the text to speech key"), as it is
    in German (nouns keep their capital)."""
    label = str(SLOTS[slot][0])
    return label.lower() if current_locale() == "en" else label


def mask(hint: str) -> str:
    return "••••" + hint if hint else "••••"


def get(actor: Actor, config_id: str) -> ProviderConfig:
    return own(actor, db.session.get(ProviderConfig, config_id))


# ---- writing --------------------------------------------------------------------------------


def _clean_base_url(raw: str, errors: dict[str, str]) -> str:
    url = (raw or "").strip()
    if not url:
        return ""
    if len(url) > MAX_URL:
        errors["base_url"] = _("Keep the base URL under %(n)s characters.", n=MAX_URL)
        return url
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    if parts.scheme not in ("https", "http") or not host:
        errors["base_url"] = _("Enter a full URL, e.g. https://api.example.com/v1.")
    elif parts.scheme == "http" and host not in LOCAL_HOSTS:
        errors["base_url"] = _("Use https:// (plain http is only allowed for localhost).")
    elif parts.username or parts.password or parts.query or parts.fragment:
        errors["base_url"] = _("Leave credentials, ?query and #fragment out of the base URL.")
    return url.rstrip("/")


def _clean_key(raw: str | None, errors: dict[str, str]) -> str:
    key = (raw or "").strip()
    if not key:
        return ""
    if not (MIN_KEY <= len(key) <= MAX_KEY) or any(ch.isspace() or not ch.isprintable() or ord(ch) > 126 for ch in key):
        errors["api_key"] = _(
            "That doesn't look like an API key (8–512 characters, no spaces). "
            "Copy it again from the provider's dashboard."
        )
        return ""
    return key


def _clean_options(raw: str | None, current: dict[str, Any], errors: dict[str, str]) -> dict[str, Any]:
    if raw is None:
        return current
    text = raw.strip()
    if not text:
        return {}
    if len(text) > MAX_OPTIONS:
        errors["options"] = _("Keep options under %(n)s characters.", n=MAX_OPTIONS)
        return current
    try:
        value = json.loads(text)
    except ValueError:
        errors["options"] = _('Options must be a JSON object, e.g. {"temperature": 0.7}.')
        return current
    if not isinstance(value, dict):
        errors["options"] = _('Options must be a JSON object, e.g. {"temperature": 0.7}.')
        return current
    if value != current and _secret_looking(value):
        errors["options"] = _(
            "Options are stored unencrypted: put keys and tokens in the API key field, not in options."
        )
        return current
    return current if value == current else value  # unchanged: keep the stored value exactly


_SECRET_WORDS = {
    "key",
    "apikey",
    "token",
    "secret",
    "password",
    "passwd",
    "authorization",
    "credential",
    "credentials",
    "bearer",
}


def _secret_name(name: str) -> bool:
    """``api_key``, ``apiKey``, ``x-api-key``, ``token`` yes; ``max_tokens``, ``keywords`` no."""
    words = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name).lower()
    return any(w in _SECRET_WORDS for w in re.split(r"[^a-z0-9]+", words))


def _secret_looking(value: object) -> bool:
    """True when a JSON value has a field named like a credential (anywhere inside)."""
    if isinstance(value, dict):
        return any(_secret_name(str(k)) or _secret_looking(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_secret_looking(v) for v in value)
    return False


def _public(row: ProviderConfig | None) -> dict[str, Any]:
    if row is None:
        return {}
    return {"provider": row.provider, "model": row.model, "base_url": row.base_url, "options": row.options}


def save(actor: Actor, slot: str, form: Mapping[str, str]) -> ProviderConfig:
    """Create or update a slot. A new key is encrypted first; if the secrets backend refuses,
    nothing is written at all."""
    require(actor, Perm.MANAGE_TENANT)
    if slot not in SLOTS:
        raise NotFound()
    errors: dict[str, str] = {}
    row = db.session.execute(
        select(ProviderConfig)
        .where(ProviderConfig.tenant_id == actor.tenant_id, ProviderConfig.slot == slot)
        .with_for_update()
    ).scalar_one_or_none()
    provider = (form.get("provider") or "").strip()
    if provider not in SLOTS[slot][1]:
        errors["provider"] = _("Pick one of the providers offered for %(slot)s.", slot=slot_phrase(slot))
    model = (form.get("model") or "").strip()
    if len(model) > MAX_MODEL:
        errors["model"] = _("Keep the model name under %(n)s characters.", n=MAX_MODEL)
    base_url = _clean_base_url(form.get("base_url", ""), errors)
    if provider in PROVIDERS and not PROVIDERS[provider].default_base and not base_url and "base_url" not in errors:
        errors["base_url"] = _(
            "%(provider)s needs a base URL (e.g. http://localhost:8000/v1).", provider=provider_label(provider)
        )
    options = _clean_options(form.get("options"), dict(row.options or {}) if row else {}, errors)
    key = _clean_key(form.get("api_key"), errors)
    if (
        row is not None
        and row.api_key_enc
        and not key
        and provider != row.provider
        and provider in PROVIDERS
        and PROVIDERS[provider].needs_key
        and "api_key" not in errors
    ):
        errors["api_key"] = _(
            "Enter the %(provider)s key: the saved key belongs to %(saved)s.",
            provider=provider_label(provider),
            saved=provider_label(row.provider),
        )
    if errors:
        raise ValidationError(errors)
    ciphertext = ""
    if key:
        try:
            ciphertext = secrets_backend().encrypt(key)
        except SecretsError as exc:
            log.warning("provider key not saved: secrets backend refused (%s)", exc.details)
            with _health_lock:  # the page's notice should say so at once, not after HEALTH_TTL
                _health.pop(id(secrets_backend()), None)
            # SecretsUnavailable.default_message, in the page's language:
            message = _(
                "The secrets store is unavailable, so keys can't be changed right now. "
                "Nothing was saved; try again in a few minutes."
            )
            raise ValidationError({"api_key": message}) from None
    before = _public(row)
    had_key = bool(row and row.api_key_enc)
    if row is None:
        row = ProviderConfig(tenant_id=actor.tenant_id, slot=slot, provider=provider, options=options)
        db.session.add(row)
    row.provider, row.model, row.base_url, row.options = provider, model, base_url, options
    if ciphertext:
        row.api_key_enc, row.api_key_hint = ciphertext, (key[-4:] if len(key) >= 12 else "")
        row.last_test_status, row.last_test_message, row.last_tested_at = "", "", None
    row.updated_at = datetime.now(UTC)
    details = {"slot": slot}
    if ciphertext:
        details["key"] = "key replaced" if had_key else "key added"
    audit.record(
        "provider.update",
        "provider_config",
        f"{actor.tenant_id}:{slot}",
        actor=actor,
        before=before,
        after=_public(row),
        details=details,
    )
    try:
        db.session.commit()
    except IntegrityError as exc:
        log.warning(
            "provider save conflict: %s", exc.orig.diag.constraint_name if isinstance(exc.orig, psycopg.Error) else ""
        )
        db.session.rollback()
        raise Conflict(_("Someone saved this slot at the same moment. Reload and try again.")) from None
    return row


def remove_key(actor: Actor, config_id: str) -> ProviderConfig:
    row = get(actor, config_id)  # another table's row: 404 before the role's 403
    require(actor, Perm.MANAGE_TENANT)
    if row.api_key_enc:
        row.api_key_enc, row.api_key_hint = "", ""
        row.last_test_status, row.last_test_message, row.last_tested_at = "", "", None
        row.updated_at = datetime.now(UTC)
        audit.record(
            "provider.key_remove",
            "provider_config",
            f"{actor.tenant_id}:{row.slot}",
            actor=actor,
            details={"slot": row.slot, "key": "key removed"},
        )
        db.session.commit()
    return row


def remove(actor: Actor, config_id: str) -> str:
    """Forget a slot entirely (provider, model, key)."""
    row = get(actor, config_id)  # another table's row: 404 before the role's 403
    require(actor, Perm.MANAGE_TENANT)
    slot = row.slot
    audit.record(
        "provider.delete",
        "provider_config",
        f"{actor.tenant_id}:{slot}",
        actor=actor,
        before=_public(row),
        after={},
        details={"slot": slot, "key": "key removed" if row.api_key_enc else ""},
    )
    db.session.delete(row)
    db.session.commit()
    return slot


def test(actor: Actor, config_id: str) -> catalog.CheckResult:
    """The Test button: decrypt the key in memory, make one cheap authenticated call, keep the
    outcome on the row (status and a safe message, never the key or the provider's body)."""
    row = get(actor, config_id)  # another table's row: 404 before the role's 403
    require(actor, Perm.MANAGE_TENANT)
    provider, base_url, ciphertext = row.provider, row.base_url, row.api_key_enc
    db.session.rollback()  # hold no transaction open while waiting for the provider
    key = ""
    result = None
    if ciphertext:
        try:
            key = secrets_backend().decrypt(ciphertext)
        except SecretsError as exc:
            log.warning("provider test: key not readable (%s)", exc.details)
            result = catalog.CheckResult(catalog.ERROR, exc.message)
    if result is None:
        result = catalog.check(provider, key, base_url)
    del key
    row = get(actor, config_id)
    row.last_test_status, row.last_test_message = result.status, result.message[:300]
    row.last_tested_at = datetime.now(UTC)
    db.session.commit()
    return result


# ---- use ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class TenantKey:
    """A tenant's saved key for one slot, still encrypted; ``reveal()`` decrypts it in memory."""

    provider: str
    base_url: str
    ciphertext: str = field(repr=False)

    @property
    def identity(self) -> str:
        """Changes whenever the key changes (for caches), reveals nothing about it."""
        return hashlib.sha256(self.ciphertext.encode()).hexdigest()[:16]

    def reveal(self) -> str:
        return secrets_backend().decrypt(self.ciphertext)


def key_for(actor: Actor, slot: str, provider: str) -> TenantKey | None:
    """The actor's tenant's key for ``slot`` when that slot uses ``provider`` (one query)."""
    row = db.session.execute(
        select(ProviderConfig.provider, ProviderConfig.base_url, ProviderConfig.api_key_enc).where(
            ProviderConfig.tenant_id == actor.tenant_id, ProviderConfig.slot == slot
        )
    ).first()
    if row is None or row.provider != provider or not row.api_key_enc:
        return None
    return TenantKey(row.provider, row.base_url, row.api_key_enc)


# ---- operations -----------------------------------------------------------------------------


def rewrap_all(*, batch: int = 100) -> tuple[int, int]:
    """Re-encrypt every stored key with the backend's newest key version (Vault ``rewrap``, or
    decrypt + encrypt for the local keyring). Returns (rewrapped, unchanged). A row replaced by a
    user meanwhile is left alone (compare-and-set on the old ciphertext)."""
    backend = secrets_backend()
    changed = same = 0
    after = ""
    while True:
        rows = db.session.execute(
            select(ProviderConfig.id, ProviderConfig.api_key_enc)
            .where(ProviderConfig.api_key_enc != "", ProviderConfig.id > after)
            .order_by(ProviderConfig.id)
            .limit(batch)
        ).all()
        if not rows:
            return changed, same
        for config_id, old in rows:
            new = backend.rewrap(old)
            if new == old:
                same += 1
                continue
            done = rowcount(
                db.session.execute(
                    cast(Table, ProviderConfig.__table__)
                    .update()  # mapped to a Table, typed as any FromClause
                    .where(ProviderConfig.id == config_id, ProviderConfig.api_key_enc == old)
                    .values(api_key_enc=new)
                )
            )
            changed += done
        db.session.commit()
        after = rows[-1][0]
