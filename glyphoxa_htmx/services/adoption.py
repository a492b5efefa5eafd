"""Adopting an existing installation's tenants: a gateway tenant without a ``web.tenants`` row
gets one, and its owner an invitation (by Discord user id and/or a one-time, signed, expiring
link). When the invited person signs in they join that tenant instead of founding a new one.

Adoption writes only schema ``web`` (the tenant row, the invitation, the audit log). The
gateway's tenant is read (GetTenant/ListTenants) and never changed.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select, update

from glyphoxa_htmx.core import audit
from glyphoxa_htmx.core.authz import Actor, Perm, Role, require
from glyphoxa_htmx.core.dbconn import rowcount
from glyphoxa_htmx.core.deps import gateway
from glyphoxa_htmx.core.errors import NotFound, Unavailable, ValidationError
from glyphoxa_htmx.core.i18n import _
from glyphoxa_htmx.core.parse import SNOWFLAKE_RE
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import Tenant, TenantInvitation, User

if TYPE_CHECKING:
    from glyphoxa_htmx.adapters.gateway.client import TenantInfo

log = logging.getLogger(__name__)

DEFAULT_EXPIRY_DAYS = 14
MAX_EXPIRY_DAYS = 90
_SALT = "glyphoxa-tenant-invite"


def now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Adopted:
    tenant: Tenant
    invitation: TenantInvitation
    link_token: str | None  # only when a link was asked for; shown once, never stored


# --------------------------------------------------------------------------- listing


def unmanaged(actor: Actor) -> list[TenantInfo]:
    """Gateway tenants (ListTenants) that have no ``web.tenants`` row: one gRPC call, one query."""
    require(actor, Perm.MANAGE_ALL_TENANTS)
    from glyphoxa_htmx.adapters.gateway.errors import GatewayError

    client = gateway()
    if client is None:
        raise Unavailable(_("No voice gateway is connected to this server, so its tenants can't be listed."))
    try:
        infos = client.list_tenants()
    except GatewayError as exc:
        raise Unavailable(_("The voice gateway didn't list its tenants: %(reason)s", reason=exc.message)) from exc
    ids = [t.id for t in infos]
    known = set(db.session.execute(select(Tenant.id).where(Tenant.id.in_(ids))).scalars()) if ids else set()
    return sorted((t for t in infos if t.id not in known), key=lambda t: t.id)


def _gateway_tenant(tenant_id: str) -> TenantInfo:
    from glyphoxa_htmx.adapters.gateway.errors import GatewayError
    from glyphoxa_htmx.adapters.gateway.errors import NotFound as GatewayNotFound

    client = gateway()
    if client is None:
        raise Unavailable(_("No voice gateway is connected to this server."))
    try:
        return client.get_tenant(tenant_id)
    except GatewayNotFound:
        raise NotFound(_("The voice gateway has no tenant with that id.")) from None
    except GatewayError as exc:
        raise Unavailable(exc.message) from exc


# --------------------------------------------------------------------------- adopting


def validate(data: Mapping[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    name = str(data.get("name") or "").strip()
    discord_id = str(data.get("owner_discord_id") or "").strip()
    link = bool(data.get("link"))
    try:
        days = int(str(data.get("expires_days") or DEFAULT_EXPIRY_DAYS).strip())
    except ValueError:
        days = -1
    if not name:
        errors["name"] = _("Give the table a name (its id stays as it is).")
    elif len(name) > 80:
        errors["name"] = _("Keep it under 80 characters.")
    if discord_id and not SNOWFLAKE_RE.match(discord_id):
        errors["owner_discord_id"] = _(
            "A Discord user id is 17–20 digits (Discord → Settings → Advanced → "
            "Developer Mode, then right-click the person → Copy User ID)."
        )
    if not discord_id and not link:
        errors["owner_discord_id"] = _("Give the owner's Discord user id, or ask for an invite link (or both).")
    if not 1 <= days <= MAX_EXPIRY_DAYS:
        errors["expires_days"] = _("Between 1 and %(max)s days.", max=MAX_EXPIRY_DAYS)
    if errors:
        raise ValidationError(errors)
    return {"name": name, "owner_discord_id": discord_id or None, "link": link, "expires_days": days}


def adopt(
    actor: Actor | None, tenant_id: str, data: Mapping[str, Any], *, ip: str | None = None, via: str = "admin"
) -> Adopted:
    """Give gateway tenant ``tenant_id`` a web row and its owner an invitation. ``actor`` is a
    super admin, or None for the command line. Commits; nothing is written on any refusal."""
    if actor is not None:
        require(actor, Perm.MANAGE_ALL_TENANTS)
    clean = validate(data)
    if db.session.get(Tenant, tenant_id) is not None:
        raise ValidationError({"": _("%(tenant)s is already managed here.", tenant=tenant_id)})
    info = _gateway_tenant(tenant_id)
    if clean["owner_discord_id"]:
        taken = db.session.execute(select(User.tenant_id).where(User.discord_id == clean["owner_discord_id"])).first()
        if taken is not None:
            raise ValidationError(
                {
                    "owner_discord_id": _(
                        "That Discord account already signed in here (table %(tenant)s); people can't be "
                        "moved between tables by an invitation.",
                        tenant=taken.tenant_id or "—",
                    )
                }
            )
    tenant = Tenant(id=info.id, name=clean["name"])
    db.session.add(tenant)
    invitation = TenantInvitation(
        id=str(uuid.uuid4()),
        tenant_id=info.id,
        discord_id=clean["owner_discord_id"],
        role=Role.TENANT_OWNER.value,
        link=clean["link"],
        created_by=actor.user_id if actor else None,
        expires_at=now() + timedelta(days=clean["expires_days"]),
    )
    db.session.add(invitation)
    db.session.flush()
    audit.record(
        "tenant.adopt",
        "tenant",
        info.id,
        actor=actor,
        tenant_id=info.id,
        ip=ip,
        after={"id": info.id, "name": clean["name"]},
        details={
            "via": via,
            "owner_discord_id": clean["owner_discord_id"],
            "invite_link": clean["link"],
            "invitation_id": invitation.id,
            "expires_at": invitation.expires_at.isoformat(),
            "gateway": {
                "license_tier": info.license_tier,
                "campaign_id": info.campaign_id,
                "guild_count": len(info.guild_ids or []),
            },
        },
    )
    db.session.commit()
    return Adopted(tenant, invitation, link_token(invitation) if invitation.link else None)


# --------------------------------------------------------------------------- invitation links


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=_SALT)


def link_token(invitation: TenantInvitation) -> str:
    """The signed token of a link invitation (carries only the invitation id)."""
    return _serializer().dumps({"inv": invitation.id})


def _pending(invitation: TenantInvitation | None) -> TenantInvitation | None:
    """The invitation if it can still be used: not revoked, not used up, not expired."""
    if (
        invitation is None
        or invitation.revoked_at is not None
        or invitation.uses >= invitation.max_uses
        or invitation.expires_at <= now()
    ):
        return None
    return invitation


def from_link(token: str) -> TenantInvitation:
    """The pending invitation a link names, or NotFound (bad signature, expired, already used)."""
    try:
        payload = _serializer().loads(token, max_age=MAX_EXPIRY_DAYS * 86400)
    except (SignatureExpired, BadSignature):
        raise NotFound(_("This invitation link is not valid (it may have expired). Ask for a new one.")) from None
    invitation = _pending(db.session.get(TenantInvitation, str(payload.get("inv", ""))))
    if invitation is None or not invitation.link:
        raise NotFound(_("This invitation link has been used, revoked or has expired. Ask for a new one."))
    return invitation


def tenant_name(invitation: TenantInvitation) -> str:
    tenant = db.session.get(Tenant, invitation.tenant_id)
    return tenant.name if tenant else invitation.tenant_id


def claim(provider: str, subject: str, invitation_id: str | None) -> TenantInvitation | None:
    """Sign-in hook for a person we don't know yet: the invitation they join with, if any. A link
    they followed (``invitation_id``) wins; else a pending invitation for their Discord id. The
    invitation is locked and marked used by the caller's transaction (``mark_used``)."""
    rows = []
    if invitation_id:
        rows.append(
            db.session.execute(
                select(TenantInvitation)
                .where(TenantInvitation.id == invitation_id, TenantInvitation.link.is_(True))
                .with_for_update()
            ).scalar_one_or_none()
        )
    if provider == "discord" and subject:
        rows.append(
            db.session.execute(
                select(TenantInvitation)
                .where(
                    TenantInvitation.discord_id == subject,
                    TenantInvitation.uses < TenantInvitation.max_uses,
                    TenantInvitation.revoked_at.is_(None),
                    TenantInvitation.expires_at > now(),
                )
                .order_by(TenantInvitation.created_at.desc())
                .limit(1)
                .with_for_update()
            ).scalar_one_or_none()
        )
    for row in rows:
        if _pending(row) is not None:
            return row
    return None


def mark_used(invitation: TenantInvitation, user: User, *, ip: str | None = None) -> None:
    """Consume one use of the invitation (atomically: a use beyond ``max_uses``, or of an invitation
    revoked or expired meanwhile, updates no row and fails)."""
    done = rowcount(
        db.session.execute(
            update(TenantInvitation)
            .where(
                TenantInvitation.id == invitation.id,
                TenantInvitation.uses < TenantInvitation.max_uses,
                TenantInvitation.revoked_at.is_(None),
                TenantInvitation.expires_at > now(),
            )
            .values(used_at=now(), used_by=user.id, uses=TenantInvitation.uses + 1)
            .execution_options(synchronize_session=False)
        )
    )
    if done != 1:
        raise ValidationError({"": _("This invitation has just been used up or revoked. Ask for a new one.")})
    audit.record(
        "tenant.invitation_accept",
        "tenant",
        invitation.tenant_id,
        tenant_id=invitation.tenant_id,
        user_id=user.id,
        ip=ip,
        details={
            "invitation_id": invitation.id,
            "role": invitation.role,
            "via": "link" if invitation.discord_id != user.discord_id else "discord_id",
        },
    )
