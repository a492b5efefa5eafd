"""The one authorization module: roles, the plan's permission matrix, and the acting user.

Every service operation takes an ``Actor`` and calls ``require(actor, Perm.X)``; every lookup of a
tenant-scoped row goes through ``own(actor, row)`` so another tenant's row is a 404, never a 403.
Order matters: an operation on a row looks the row up in the actor's tenant first (404), and
only then checks the permission (403), so a role refusal never confirms that a row exists.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from glyphoxa_htmx.core.errors import Forbidden, NotFound
from glyphoxa_htmx.core.i18n import _, current_locale, lazy_gettext


class Role(StrEnum):
    SUPER_ADMIN = "super_admin"
    TENANT_OWNER = "tenant_owner"
    DM = "dm"
    VIEWER = "viewer"


# Lazy strings (lazy_gettext), worded in the reader's language when made text (str(), a template).
ROLE_LABELS: dict[str, str] = {
    Role.SUPER_ADMIN: lazy_gettext("Super admin"),
    Role.TENANT_OWNER: lazy_gettext("Owner"),
    Role.DM: lazy_gettext("Dungeon Master"),
    Role.VIEWER: lazy_gettext("Viewer"),
}


def role_phrase(role: str) -> str:
    """'a Dungeon Master', 'an Owner': a role's label for a sentence ("X is now …")."""
    label = str(ROLE_LABELS.get(role, str(role).replace("_", " ")))
    if current_locale() != "en":  # the article is English grammar ("X ist jetzt Spielleitung")
        return label
    return ("an " if label[:1].lower() in "aeiou" else "a ") + label


class Perm(StrEnum):
    MANAGE_ALL_TENANTS = "manage_all_tenants"
    PLATFORM_OBSERVABILITY = "platform_observability"
    MANAGE_TENANT = "manage_tenant"
    MANAGE_BILLING = "manage_billing"
    MANAGE_USERS = "manage_users"
    MANAGE_CAMPAIGNS = "manage_campaigns"
    MANAGE_NPCS = "manage_npcs"
    CONTROL_SESSIONS = "control_sessions"
    UPLOAD_VOICE = "upload_voice"
    VIEW_TRANSCRIPTS = "view_transcripts"
    VIEW_USAGE = "view_usage"
    VIEW_SESSIONS = "view_sessions"


_VIEW = {Perm.VIEW_TRANSCRIPTS, Perm.VIEW_USAGE, Perm.VIEW_SESSIONS}
_DM = _VIEW | {Perm.MANAGE_CAMPAIGNS, Perm.MANAGE_NPCS, Perm.CONTROL_SESSIONS, Perm.UPLOAD_VOICE}
_OWNER = _DM | {Perm.MANAGE_TENANT, Perm.MANAGE_BILLING, Perm.MANAGE_USERS}

# The plan's permission matrix (§6), verbatim.
MATRIX: dict[Role, frozenset[Perm]] = {
    Role.SUPER_ADMIN: frozenset(Perm),
    Role.TENANT_OWNER: frozenset(_OWNER),
    Role.DM: frozenset(_DM),
    Role.VIEWER: frozenset(_VIEW),
}


@dataclass(frozen=True)
class Actor:
    """Who is acting: resolved once per request from the sign-in session."""

    user_id: str
    tenant_id: str
    role: Role
    name: str = ""
    ip: str | None = None

    def can(self, perm: Perm) -> bool:
        return perm in MATRIX.get(Role(self.role), frozenset())


def can(actor: Actor | None, perm: Perm) -> bool:
    return actor is not None and actor.can(perm)


def require(actor: Actor | None, perm: Perm) -> Actor:
    if actor is None:
        raise Forbidden(_("Please sign in first."))
    if not actor.can(perm):
        raise Forbidden()
    return actor


_Row = TypeVar("_Row")


def own(actor: Actor, row: _Row | None, *, attr: str = "tenant_id") -> _Row:
    """Return ``row`` if it belongs to the actor's tenant; otherwise NotFound (no existence leak)."""
    if row is None or getattr(row, attr) != actor.tenant_id:
        raise NotFound()
    return row


def assignable_roles(actor: Actor) -> list[Role]:
    """Roles this actor may hand out inside a tenant (super_admin only by the CLI)."""
    if not actor.can(Perm.MANAGE_USERS):
        return []
    return [Role.TENANT_OWNER, Role.DM, Role.VIEWER]
