"""People in a tenant (team page) and platform-wide (super admin)."""

from __future__ import annotations

from sqlalchemy import func, select

from glyphoxa_htmx.core import audit, keyset
from glyphoxa_htmx.core.authz import Actor, Perm, Role, assignable_roles, own, require
from glyphoxa_htmx.core.errors import NotFound, ValidationError
from glyphoxa_htmx.core.i18n import _
from glyphoxa_htmx.core.parse import like_pattern
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import User
from glyphoxa_htmx.services import plans


def list_members(actor: Actor) -> list[User]:
    require(actor, Perm.VIEW_SESSIONS)  # every member may see who is at the table
    return list(
        db.session.execute(
            select(User).where(User.tenant_id == actor.tenant_id).order_by(User.created_at, User.id)
        ).scalars()
    )


def get_member(actor: Actor, user_id: str) -> User:
    return own(actor, db.session.get(User, user_id))


def change_role(actor: Actor, user_id: str, role: str) -> User:
    user = get_member(actor, user_id)  # 404 first, then the role (403)
    require(actor, Perm.MANAGE_USERS)
    if role not in {r.value for r in assignable_roles(actor)}:
        raise ValidationError({"role": _("Pick one of the offered roles.")})
    if user.role == Role.SUPER_ADMIN:
        raise ValidationError({"role": _("Operators' roles are managed by the platform.")})
    if user.role == Role.TENANT_OWNER and role != Role.TENANT_OWNER:
        # Serialise owner changes per tenant, so two owners demoting each other at the same
        # moment can't both see "2 owners" and leave the table with none.
        db.session.execute(select(func.pg_advisory_xact_lock(func.hashtext("owners:" + actor.tenant_id))))
        db.session.refresh(user)
        if user.role != Role.TENANT_OWNER:
            raise ValidationError({"role": _("Someone changed this person's role just now. Reload and try again.")})
        owners = db.session.execute(
            select(func.count())
            .select_from(User)
            .where(User.tenant_id == actor.tenant_id, User.role == Role.TENANT_OWNER.value, User.status == "active")
        ).scalar_one()
        if owners <= 1:
            raise ValidationError({"role": _("Every table needs at least one owner. Make someone else owner first.")})
    if role in plans.SEAT_ROLES and user.role not in plans.SEAT_ROLES:
        plans.check_seat_limit(actor)
    before = {"role": user.role}
    user.role = role
    audit.record("user.role_change", "user", user.id, actor=actor, before=before, after={"role": role})
    db.session.commit()
    return user


def remove_member(actor: Actor, user_id: str) -> User:
    """Take someone off the table: their sign-in sessions end at once and their account here is
    deleted (one table per person: if they sign in again they start their own, or join by a new
    invitation). Never the last owner; operators are managed by the platform. Commits."""
    from glyphoxa_htmx.services import invitations

    user = get_member(actor, user_id)  # 404 first, then the role (403)
    require(actor, Perm.MANAGE_USERS)
    if user.role == Role.SUPER_ADMIN:
        raise ValidationError({"remove": _("Operators are managed by the platform.")})
    if user.role == Role.TENANT_OWNER and invitations.owners_left(actor.tenant_id, without=user.id) == 0:
        raise ValidationError({"remove": _("Every table needs at least one owner. Make someone else owner first.")})
    before = {"name": user.name, "role": user.role, "tenant_id": user.tenant_id}
    revoked = invitations.revoke_sign_ins(user.id, "removed_from_table")
    audit.record("user.remove", "user", user.id, actor=actor, before=before, details={"sessions_revoked": revoked})
    db.session.delete(user)
    db.session.commit()
    return user


def list_all(actor: Actor, *, q: str = "", limit: int = 50, after: str | None = None) -> tuple[list[User], str | None]:
    """Super admin: every user on the platform, by id, keyset pages (core/keyset.py): ``after``
    is the previous page's cursor."""
    require(actor, Perm.MANAGE_ALL_TENANTS)
    stmt = select(User)
    if q:
        pattern = like_pattern(q)
        stmt = stmt.where(User.name.ilike(pattern) | User.email.ilike(pattern) | User.tenant_id.ilike(pattern))
    rows, cursor = keyset.page(stmt, ((User.id, str),), after, limit, key_of=lambda r: (r[0].id,))
    return [r[0] for r in rows], cursor


def get_any(actor: Actor, user_id: str) -> User:
    """Super admin: any user on the platform."""
    require(actor, Perm.MANAGE_ALL_TENANTS)
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound()
    return user


def set_status(actor: Actor, user_id: str, status: str) -> User:
    user = get_any(actor, user_id)
    if status not in {"active", "suspended"}:
        raise ValidationError({"status": _("Unknown status.")})
    if user.id == actor.user_id:
        raise ValidationError({"status": _("You can't suspend yourself.")})
    before = {"status": user.status}
    user.status = status
    audit.record(
        f"user.{'suspend' if status == 'suspended' else 'unsuspend'}",
        "user",
        user.id,
        actor=actor,
        tenant_id=user.tenant_id,
        before=before,
        after={"status": status},
    )
    db.session.commit()
    return user


def promote_to_admin(
    *, discord_id: str | None = None, user_id: str | None = None, email: str | None = None, name: str | None = None
) -> User:
    """CLI: make an existing user a super admin (by Discord id, user id, e-mail, or the exact name
    shown on the dev sign-in page when it is unique)."""
    stmt = select(User)
    if discord_id:
        stmt = stmt.where(User.discord_id == discord_id)
    elif user_id:
        stmt = stmt.where(User.id == user_id)
    elif email:
        stmt = stmt.where(User.email == email)
    elif name:
        matches = list(db.session.execute(stmt.where(User.name == name.strip()).limit(10)).scalars())
        if len(matches) > 1:
            ids = ", ".join(f"{u.id} ({u.tenant_id})" for u in matches)
            raise ValueError(f"several users are called {name!r}; use --user-id with one of: {ids}")
        stmt = stmt.where(User.name == name.strip())
    else:
        raise ValueError("give --discord-id, --user-id, --email or --name")
    user = db.session.execute(stmt).scalar_one_or_none()
    if user is None:
        raise NotFound(_("No such user. They must sign in once first."))
    before = {"role": user.role}
    user.role = Role.SUPER_ADMIN.value
    audit.record(
        "user.role_change",
        "user",
        user.id,
        tenant_id=user.tenant_id,
        user_id=None,
        before=before,
        after={"role": user.role},
        details={"via": "cli"},
    )
    db.session.commit()
    return user
