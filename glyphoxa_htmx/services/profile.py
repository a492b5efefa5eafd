"""Your own account (``/me``, issue 12): display name, linked sign-in providers, deleting it."""

from __future__ import annotations

from sqlalchemy import func, select

from glyphoxa_htmx.core import audit
from glyphoxa_htmx.core.authz import Actor, Role
from glyphoxa_htmx.core.errors import NotFound, ValidationError
from glyphoxa_htmx.core.i18n import _, valid_locale
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import User
from glyphoxa_htmx.services.auth import Identity

PROVIDERS = {"discord": "discord_id", "google": "google_id", "github": "github_id"}


def me(actor: Actor) -> User:
    user = db.session.get(User, actor.user_id)
    if user is None:
        raise NotFound()
    return user


def linked(user: User) -> list[str]:
    return [p for p, column in PROVIDERS.items() if getattr(user, column)]


def rename(actor: Actor, name: str) -> User:
    name = (name or "").strip()
    if not name:
        raise ValidationError({"name": _("Give yourself a name your table will recognise.")})
    if len(name) > 80:
        raise ValidationError({"name": _("Keep it under 80 characters.")})
    user = me(actor)
    before = {"name": user.name}
    user.name = name
    audit.record("user.update", "user", user.id, actor=actor, before=before, after={"name": name})
    db.session.commit()
    return user


def set_locale(actor: Actor, value: str) -> User:
    """The interface language: "en", "de", or "auto" (follow the browser). Anything else is refused."""
    value = (value or "").strip()
    if value != "auto" and not valid_locale(value):
        raise ValidationError({"locale": _("Choose one of the listed languages.")})
    user = me(actor)
    new = None if value == "auto" else value
    if user.locale != new:
        before = {"locale": user.locale}
        user.locale = new
        audit.record("user.update", "user", user.id, actor=actor, before=before, after={"locale": new})
        db.session.commit()
    return user


def link(actor: Actor, identity: Identity) -> User:
    """Attach another provider's identity to this account (one account per identity)."""
    column = PROVIDERS.get(identity.provider)
    if column is None:
        raise ValidationError({"": _("That sign-in provider can't be linked.")})
    user = me(actor)
    other = db.session.execute(select(User.id).where(getattr(User, column) == identity.subject)).scalar_one_or_none()
    if other is not None and other != user.id:
        raise ValidationError(
            {"": _("That account already signs in to another person here; it can't be linked twice.")}
        )
    setattr(user, column, identity.subject)
    if identity.email and identity.email_verified and not user.email:
        taken = db.session.execute(select(User.id).where(User.email == identity.email)).scalar_one_or_none()
        if taken is None:
            user.email, user.email_verified = identity.email, True
    audit.record("user.link_provider", "user", user.id, actor=actor, after={"provider": identity.provider})
    db.session.commit()
    return user


def unlink(actor: Actor, provider: str) -> User:
    user = me(actor)
    if provider not in PROVIDERS or not getattr(user, PROVIDERS[provider]):
        raise ValidationError({"": _("That provider isn't linked.")})
    if linked(user) == [provider]:
        raise ValidationError({"": _("This is your only way to sign in; link another provider before unlinking it.")})
    setattr(user, PROVIDERS[provider], None)
    audit.record("user.unlink_provider", "user", user.id, actor=actor, before={"provider": provider})
    db.session.commit()
    return user


def delete_account(actor: Actor, confirm: str) -> None:
    """Delete my account (sign-ins end with it). Refused while I am the last owner of a table:
    with other members someone else must be owner first; alone, the table is deleted instead."""
    user = me(actor)
    if (confirm or "").strip().lower() != "delete":
        raise ValidationError({"confirm": _("Type delete to confirm.")})
    if user.role == Role.SUPER_ADMIN:
        raise ValidationError({"confirm": _("Operators' accounts are managed with the command line.")})
    if user.role == Role.TENANT_OWNER and user.tenant_id:
        from glyphoxa_htmx.services import invitations

        if invitations.owners_left(user.tenant_id, without=user.id) == 0:
            others = db.session.execute(
                select(func.count()).select_from(User).where(User.tenant_id == user.tenant_id, User.id != user.id)
            ).scalar_one()
            if others:
                raise ValidationError(
                    {
                        "confirm": _(
                            "You are the last owner of a table with other members: make "
                            "someone else owner on the Team page first."
                        )
                    }
                )
            raise ValidationError(
                {
                    "confirm": _(
                        "You are the only one at your table: delete the table in Settings → "
                        "Danger zone (that deletes your account with it)."
                    )
                }
            )
    audit.record("user.delete", "user", user.id, actor=actor, before={"name": user.name, "role": user.role})
    db.session.delete(user)  # login sessions go with it (ON DELETE CASCADE)
    db.session.commit()
