"""Owners bring their table in (issue 12): invitations by Discord user id or shareable signed link
(single- or multi-use, expiring, revocable), each with a role. The invitation row, the signed
link and the sign-in join hook are the adoption ones (``services/adoption.py``,
``web.tenant_invitations``, ``auth._join_invited``): this module adds what owners do with them,
and lets a person who already belongs to another table switch to the one they were invited to.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import aliased

from glyphoxa_htmx.core import audit
from glyphoxa_htmx.core.authz import Actor, Perm, Role, assignable_roles, own, require
from glyphoxa_htmx.core.dbconn import rowcount
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.core.i18n import _
from glyphoxa_htmx.core.parse import SNOWFLAKE_RE
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import LoginSession, Tenant, TenantInvitation, User
from glyphoxa_htmx.services import adoption, plans

DEFAULT_EXPIRY_DAYS = 7
MAX_LINK_USES = 100


@dataclass
class Created:
    invitation: TenantInvitation
    link_token: str | None  # shown once (the link carries it); never stored


def validate(actor: Actor, data: Mapping[str, Any]) -> dict[str, Any]:
    errors: dict[str, str] = {}
    discord_id = str(data.get("discord_id") or "").strip()
    link = bool(data.get("link"))
    role = str(data.get("role") or "").strip()
    try:
        days = int(str(data.get("expires_days") or DEFAULT_EXPIRY_DAYS).strip())
    except ValueError:
        days = -1
    try:
        max_uses = int(str(data.get("max_uses") or 1).strip()) if link else 1
    except ValueError:
        max_uses = -1
    if discord_id and link:
        errors["discord_id"] = _("Either a Discord user id or a link, not both: a link works for whoever opens it.")
    elif discord_id and not SNOWFLAKE_RE.match(discord_id):
        errors["discord_id"] = _(
            "A Discord user id is 17–20 digits (Discord → Settings → Advanced → Developer Mode, "
            "then right-click the person → Copy User ID)."
        )
    elif not discord_id and not link:
        errors["discord_id"] = _("Give their Discord user id, or create a shareable link.")
    if role not in {r.value for r in assignable_roles(actor)}:
        errors["role"] = _("Pick one of the offered roles.")
    if not 1 <= days <= adoption.MAX_EXPIRY_DAYS:
        errors["expires_days"] = _("Between 1 and %(max)s days.", max=adoption.MAX_EXPIRY_DAYS)
    if not 1 <= max_uses <= MAX_LINK_USES:
        errors["max_uses"] = _("Between 1 and %(max)s people.", max=MAX_LINK_USES)
    if errors:
        raise ValidationError(errors)
    return {"discord_id": discord_id or None, "link": link, "role": role, "expires_days": days, "max_uses": max_uses}


def create(actor: Actor, data: Mapping[str, Any]) -> Created:
    """An owner invites someone. Nothing is written on any refusal. Commits."""
    require(actor, Perm.MANAGE_USERS)
    clean = validate(actor, data)
    if clean["discord_id"]:
        member = db.session.execute(select(User.tenant_id).where(User.discord_id == clean["discord_id"])).first()
        if member is not None and member.tenant_id == actor.tenant_id:
            raise ValidationError({"discord_id": _("That person is already at your table.")})
    if clean["role"] in plans.SEAT_ROLES:
        plans.check_seat_limit(actor)
    invitation = TenantInvitation(
        id=str(uuid.uuid4()),
        tenant_id=actor.tenant_id,
        discord_id=clean["discord_id"],
        role=clean["role"],
        link=clean["link"],
        max_uses=clean["max_uses"],
        created_by=actor.user_id,
        expires_at=adoption.now() + timedelta(days=clean["expires_days"]),
    )
    db.session.add(invitation)
    db.session.flush()
    audit.record(
        "invitation.create",
        "invitation",
        invitation.id,
        actor=actor,
        after={
            "role": invitation.role,
            "discord_id": invitation.discord_id,
            "link": invitation.link,
            "max_uses": invitation.max_uses,
            "expires_at": invitation.expires_at.isoformat(),
        },
    )
    db.session.commit()
    return Created(invitation, adoption.link_token(invitation) if invitation.link else None)


def list_pending(actor: Actor) -> list[tuple[TenantInvitation, str | None]]:
    """The table's usable invitations with the name of who created each (one query)."""
    require(actor, Perm.MANAGE_USERS)
    creator = aliased(User)
    rows = db.session.execute(
        select(TenantInvitation, creator.name)
        .outerjoin(creator, creator.id == TenantInvitation.created_by)
        .where(
            TenantInvitation.tenant_id == actor.tenant_id,
            TenantInvitation.revoked_at.is_(None),
            TenantInvitation.uses < TenantInvitation.max_uses,
            TenantInvitation.expires_at > adoption.now(),
        )
        .order_by(TenantInvitation.created_at.desc(), TenantInvitation.id)
    ).all()
    return [(r[0], r[1]) for r in rows]


def revoke(actor: Actor, invitation_id: str) -> TenantInvitation:
    invitation = own(actor, db.session.get(TenantInvitation, invitation_id))  # 404 first
    require(actor, Perm.MANAGE_USERS)
    if invitation.revoked_at is None:
        invitation.revoked_at = adoption.now()
        invitation.revoked_by = actor.user_id
        audit.record(
            "invitation.revoke",
            "invitation",
            invitation.id,
            actor=actor,
            before={"uses": invitation.uses, "max_uses": invitation.max_uses},
            after={"revoked_at": invitation.revoked_at.isoformat()},
        )
        db.session.commit()
    return invitation


def link_url(token: str | None) -> str:
    if not token:
        return ""
    from flask import request, url_for

    from glyphoxa_htmx.core.deps import settings

    path = url_for("auth.invite", token=token)
    base = settings().public_url.rstrip("/") if settings().public_url else request.host_url.rstrip("/")
    return base + path


# --------------------------------------------------------------------------- joining


def check_seat_at_accept(invitation: TenantInvitation) -> None:
    """Seat limits are checked again when the invitation lands (the plan may have changed)."""
    if invitation.role in plans.SEAT_ROLES:
        plans.check_seat_limit(Actor(user_id="", tenant_id=invitation.tenant_id, role=Role.VIEWER))


def owners_left(tenant_id: str, *, without: str) -> int:
    """Other active owners of the tenant, under the per-tenant owners lock (see users.change_role)."""
    db.session.execute(select(func.pg_advisory_xact_lock(func.hashtext("owners:" + tenant_id))))
    return db.session.execute(
        select(func.count())
        .select_from(User)
        .where(
            User.tenant_id == tenant_id,
            User.role == Role.TENANT_OWNER.value,
            User.status == "active",
            User.id != without,
        )
    ).scalar_one()


def leave_refusal(user: User) -> str | None:
    """Why this person can't leave their table now (None when they can)."""
    if not user.tenant_id or user.role == Role.SUPER_ADMIN:
        return None if user.role != Role.SUPER_ADMIN else _("Operators' memberships are managed by the platform.")
    if user.role == Role.TENANT_OWNER and owners_left(user.tenant_id, without=user.id) == 0:
        return _(
            "You are the only owner of your current table. Make someone else owner first, or delete that "
            "table (Settings → Danger zone) if nobody else uses it."
        )
    return None


def for_me(user: User) -> list[TenantInvitation]:
    """Pending invitations by Discord id for a person who already has an account (they see them
    on /me: signing in doesn't move anyone between tables)."""
    if not user.discord_id:
        return []
    return list(
        db.session.execute(
            select(TenantInvitation)
            .where(
                TenantInvitation.discord_id == user.discord_id,
                TenantInvitation.revoked_at.is_(None),
                TenantInvitation.uses < TenantInvitation.max_uses,
                TenantInvitation.expires_at > adoption.now(),
                TenantInvitation.tenant_id != (user.tenant_id or ""),
            )
            .order_by(TenantInvitation.created_at.desc())
        ).scalars()
    )


def accept_mine(actor: Actor, invitation_id: str, *, ip: str | None = None) -> User:
    """Accept a Discord-id invitation addressed to me (anyone else's: 404)."""
    from glyphoxa_htmx.core.errors import NotFound

    user = db.session.get(User, actor.user_id)
    invitation = db.session.get(TenantInvitation, invitation_id)
    if (
        user is None
        or invitation is None
        or not user.discord_id
        or invitation.discord_id != user.discord_id
        or adoption._pending(invitation) is None
    ):
        raise NotFound(_("This invitation isn't there any more."))
    return _switch(actor, invitation, ip=ip)


def switch(actor: Actor, token: str, *, ip: str | None = None) -> User:
    """A signed-in person accepts a link to another table: they leave theirs (one table per user),
    unless they are its last owner, and join with the invitation's role. Commits."""
    return _switch(actor, adoption.from_link(token), ip=ip)


def _switch(actor: Actor, invitation: TenantInvitation, *, ip: str | None = None) -> User:
    user = db.session.get(User, actor.user_id)
    if user is None:
        raise ValidationError({"": _("Sign in again.")})
    if user.tenant_id == invitation.tenant_id:
        raise ValidationError({"": _("You're already at this table.")})
    refusal = leave_refusal(user)
    if refusal:
        raise ValidationError({"": refusal})
    check_seat_at_accept(invitation)
    before = {"tenant_id": user.tenant_id, "role": user.role}
    adoption.mark_used(invitation, user, ip=ip)
    audit.record(
        "user.leave",
        "user",
        user.id,
        tenant_id=user.tenant_id,
        user_id=user.id,
        ip=ip,
        before=before,
        details={"to_tenant": invitation.tenant_id},
    )
    user.tenant_id = invitation.tenant_id
    user.role = invitation.role
    audit.record(
        "user.join",
        "user",
        user.id,
        tenant_id=invitation.tenant_id,
        user_id=user.id,
        ip=ip,
        before=before,
        after={"tenant_id": user.tenant_id, "role": user.role},
        details={"invitation_id": invitation.id},
    )
    db.session.commit()
    return user


def revoke_sign_ins(user_id: str, reason: str) -> int:
    """End every sign-in session of a person at once (removal, table deletion)."""
    return rowcount(
        db.session.execute(
            update(LoginSession)
            .where(LoginSession.user_id == user_id, LoginSession.revoked_at.is_(None))
            .values(revoked_at=adoption.now(), revoked_reason=reason)
            .execution_options(synchronize_session=False)
        )
    )


def tenant_name(tenant_id: str | None) -> str:
    tenant = db.session.get(Tenant, tenant_id) if tenant_id else None
    return tenant.name if tenant else (tenant_id or "")
