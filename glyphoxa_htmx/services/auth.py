"""Sign-in: external identities -> users (self-service signup), and server-side login sessions.

A login session is a random token in an HttpOnly cookie; only its SHA-256 is stored. Sessions
expire when idle (SESSION_IDLE_MINUTES) and absolutely (SESSION_ABSOLUTE_DAYS, kept across
rotation). ``rotate`` issues a new token in the same family; presenting a rotated token again is
treated as theft and revokes the whole family (refresh-token rotation with reuse detection) —
except within ROTATION_GRACE of the rotation, from the same browser (user agent): requests that
were already in flight with the previous cookie then resolve to the family's new session, so
parallel htmx requests during a rotation never sign anyone out.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import Select, and_, bindparam, case, or_, select, update
from sqlalchemy.exc import IntegrityError

from glyphoxa_htmx.core import audit
from glyphoxa_htmx.core.authz import Actor, Role
from glyphoxa_htmx.core.dbconn import existing_session, rowcount
from glyphoxa_htmx.core.deps import settings
from glyphoxa_htmx.core.errors import Forbidden, NotFound, ValidationError
from glyphoxa_htmx.core.i18n import _, lazy_gettext
from glyphoxa_htmx.core.metrics import ACTIVE_USERS, SIGNUPS
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import LoginSession, Tenant, User
from glyphoxa_htmx.services import plans, tenants

if TYPE_CHECKING:
    from glyphoxa_htmx.services.signin_cache import LoginSnapshot

log = logging.getLogger(__name__)

PROVIDER_COLUMNS = {"discord": "discord_id", "google": "google_id", "github": "github_id", "dev": "discord_id"}
LAST_SEEN_GRANULARITY = timedelta(minutes=1)
# How long a rotated token still resolves (to its family's current session, same user agent only).
ROTATION_GRACE = timedelta(seconds=30)


def now() -> datetime:
    return datetime.now(UTC)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class Identity:
    """What an identity provider told us about a person."""

    provider: str
    subject: str
    name: str
    email: str | None = None
    avatar_url: str | None = None
    email_verified: bool = False
    guilds: tuple[dict[str, Any], ...] = ()  # [{id, name, owner, manage}] (Discord only)
    guilds_fetched_at: datetime | None = None  # set when the guild list (with permissions) was read


class AccountSuspended(Forbidden):
    default_message = lazy_gettext("This account is suspended. Contact support if you think that's a mistake.")


class NotAdmitted(Forbidden):
    default_message = lazy_gettext(
        "This server isn't open for sign-ups. Ask the table that invited you for an invitation."
    )


def sign_in(
    identity: Identity, *, ip: str | None = None, invitation_id: str | None = None, terms_accepted: bool = False
) -> tuple[User, bool]:
    """Find or create the user for an identity. Returns (user, created). Commits.
    ``invitation_id``: an invitation link the person followed before signing in.
    ``terms_accepted``: they ticked "I accept the terms" (asked only when TERMS_URL is set)."""
    column = getattr(User, PROVIDER_COLUMNS[identity.provider])
    user = db.session.execute(select(User).where(column == identity.subject)).scalar_one_or_none()
    created = False
    if user is None:
        cfg = settings()
        if cfg.terms_url and not terms_accepted and identity.provider != "dev":
            raise NotAdmitted(_("To create an account, tick “I accept the terms” on the sign-in page, then continue."))
        user = _join_invited(identity, invitation_id, ip=ip)
        if user is None:
            _check_admission(identity)
            user = _signup(identity, ip=ip)
        if cfg.terms_url and terms_accepted:
            user.terms_accepted_at = now()
        created = True
        assert user.tenant_id is not None  # a new user joined a table or founded one
        signup_tier = plans.current(user.tenant_id).key
    if user.status != "active":
        raise AccountSuspended()
    tenant = db.session.get(Tenant, user.tenant_id) if user.tenant_id else None
    if tenant is not None and tenant.status != "active" and user.role != Role.SUPER_ADMIN:
        raise AccountSuspended(_("This table is suspended. Contact support."))
    user.last_login_at = now()
    if identity.avatar_url:
        user.avatar_url = identity.avatar_url
    if identity.provider == "discord" and identity.guilds_fetched_at is not None:
        # The servers this person manages, and when we learnt it (Settings → Discord checks both).
        user.discord_guilds = list(identity.guilds)
        user.discord_guilds_at = identity.guilds_fetched_at
    audit.record(
        "user.sign_in",
        "user",
        user.id,
        tenant_id=user.tenant_id,
        user_id=user.id,
        ip=ip,
        details={"provider": identity.provider},
    )
    db.session.commit()
    if created:
        SIGNUPS.labels(signup_tier).inc()
    return user, created


def _join_invited(identity: Identity, invitation_id: str | None, *, ip: str | None) -> User | None:
    """Adoption hook: someone invited to an adopted tenant (by Discord id or link) joins it
    instead of founding a new one. None when there is no pending invitation for them."""
    from glyphoxa_htmx.services import adoption

    invitation = adoption.claim(identity.provider, identity.subject, invitation_id)
    if invitation is None and invitation_id:
        # They followed a link that was used or expired meanwhile: say so rather than found a table.
        db.session.rollback()
        raise NotFound(
            _(
                "This invitation link has been used or has expired. Ask for a new one, or sign in "
                "without it to start your own table."
            )
        )
    if invitation is None:
        return None
    from glyphoxa_htmx.services import invitations

    invitations.check_seat_at_accept(invitation)  # the plan may have changed since the invitation
    user = User(
        id=str(uuid.uuid4()),
        tenant_id=invitation.tenant_id,
        name=identity.name or "Dungeon Master",
        email=identity.email if identity.email_verified else None,
        avatar_url=identity.avatar_url,
        email_verified=identity.email_verified,
        role=invitation.role,
    )
    setattr(user, PROVIDER_COLUMNS[identity.provider], identity.subject)
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        raise Forbidden(
            _("An account with that e-mail already exists. Sign in with the provider you used before.")
        ) from exc
    adoption.mark_used(invitation, user, ip=ip)
    audit.record(
        "user.signup",
        "user",
        user.id,
        tenant_id=user.tenant_id,
        user_id=user.id,
        ip=ip,
        after={"name": user.name, "role": user.role, "provider": identity.provider},
        details={"invitation_id": invitation.id},
    )
    return user


def _check_admission(identity: Identity) -> None:
    """GLYPHOXA_ADMISSION for someone who would found a new table (invited people are admitted by
    their invitation): open, invite (nobody), allowlist (listed Discord ids). Unknown: nobody."""
    if identity.provider == "dev":
        return  # development sign-in (never on in production)
    mode = settings().admission
    if mode == "open":
        return
    if mode == "allowlist" and identity.provider == "discord" and identity.subject in settings().allowlisted():
        return
    log.info("sign-up refused by admission mode", extra={"mode": mode, "provider": identity.provider})
    if mode == "allowlist":
        raise NotAdmitted(
            _(
                "This server admits only people on its list. Ask its operator to add your Discord "
                "account, or ask a table for an invitation."
            )
        )
    raise NotAdmitted()


def _signup(identity: Identity, *, ip: str | None) -> User:
    """Self-service signup (plan §6): a tenant_owner user and a fresh tenant, atomically."""
    tenant = tenants.create_for_signup(identity.name, ip=ip)
    if plans.billing_enabled():
        # A new table starts on the free plan: the gateway created it unlimited (0 hours).
        plans.apply_tier(tenant.id, plans.APPRENTICE, reason="signup")
    user = User(
        id=str(uuid.uuid4()),
        tenant_id=tenant.id,
        name=identity.name or "Dungeon Master",
        # Only a provider-verified e-mail is kept: the column is unique, and an unverified
        # address would let someone squat another person's e-mail before they sign up.
        email=identity.email if identity.email_verified else None,
        avatar_url=identity.avatar_url,
        email_verified=identity.email_verified,
        role=Role.TENANT_OWNER.value,
    )
    setattr(user, PROVIDER_COLUMNS[identity.provider], identity.subject)
    db.session.add(user)
    try:
        db.session.flush()
    except IntegrityError as exc:
        # e.g. the e-mail is already used by another account: undo the gateway tenant too.
        db.session.rollback()
        tenants.undo_gateway_tenant(tenant.id)
        raise Forbidden(
            _("An account with that e-mail already exists. Sign in with the provider you used before.")
        ) from exc
    audit.record(
        "user.signup",
        "user",
        user.id,
        tenant_id=tenant.id,
        user_id=user.id,
        ip=ip,
        after={"name": user.name, "role": user.role, "provider": identity.provider},
    )
    log.info("signup", extra={"user_id": user.id, "tenant_id": tenant.id})
    return user


def create_dev_user(
    name: str, role: str = "tenant_owner", tenant_id: str | None = None, *, ip: str | None = None
) -> User:
    """Dev sign-in: a new person. Without ``tenant_id`` they sign up (own tenant, owner); with it
    they join that existing tenant with ``role`` (for trying the other roles)."""
    name = (name or "").strip() or "Dev DM"
    if role == Role.SUPER_ADMIN:
        # Operators are never made by a form anyone can post: the CLI does it.
        raise ValidationError(
            {"role": _("Super admins are made with the CLI (glyphoxa-web create-admin), never by this form.")}
        )
    if role not in {r.value for r in Role}:
        raise ValidationError({"role": _("Unknown role.")})
    subject = "dev-" + secrets.token_hex(6)
    if not tenant_id:
        user, _created = sign_in(Identity(provider="dev", subject=subject, name=name), ip=ip)
        if role != user.role:
            before = {"role": user.role}
            user.role = role
            audit.record(
                "user.role_change",
                "user",
                user.id,
                tenant_id=user.tenant_id,
                user_id=user.id,
                ip=ip,
                before=before,
                after={"role": role},
            )
            db.session.commit()
        return user
    if db.session.get(Tenant, tenant_id) is None:
        raise ValidationError({"tenant_id": _("No tenant with that id.")})
    user = User(id=str(uuid.uuid4()), tenant_id=tenant_id, name=name, role=role, discord_id=subject)
    db.session.add(user)
    db.session.flush()
    audit.record(
        "user.create",
        "user",
        user.id,
        tenant_id=tenant_id,
        user_id=user.id,
        ip=ip,
        after={"name": name, "role": role, "provider": "dev"},
    )
    db.session.commit()
    return user


def dev_users(limit: int = 30) -> list[User]:
    """Dev sign-in page: recent people to enter as, the seeded demo DM (the README's "Demo DM")
    first so that it is the pre-selected choice."""
    from glyphoxa_htmx.seed import DEMO_TENANT

    demo_owner = (User.tenant_id == DEMO_TENANT) & (User.role == Role.TENANT_OWNER.value)
    return list(
        db.session.execute(
            select(User).order_by(case((demo_owner, 0), else_=1), User.created_at.desc()).limit(limit)
        ).scalars()
    )


def get_user(user_id: str) -> User | None:
    return db.session.get(User, user_id)


# ---- login sessions -------------------------------------------------------------------------


def start_session(user: User, *, ip: str | None = None, user_agent: str | None = None) -> str:
    """Open a new session family; return the raw token for the cookie (never stored)."""
    cfg = settings()
    token = secrets.token_urlsafe(32)
    row = LoginSession(
        family_id=str(uuid.uuid4()),
        user_id=user.id,
        token_hash=hash_token(token),
        expires_at=now() + timedelta(days=cfg.session_absolute_days),
        ip=ip,
        user_agent=_ua(user_agent),
    )
    db.session.add(row)
    user.last_login_at = now()  # every new sign-in (any provider, dev sign-in too) counts
    db.session.commit()
    track_active_users(user.tenant_id)
    return token


ACTIVE_WINDOW = timedelta(days=30)


def track_active_users(tenant_id: str | None) -> None:
    """glyphoxa_web_active_users_total{tenant_id}: people of the tenant with a live sign-in session
    seen in the last 30 days. Recomputed (one query) whenever a session starts or ends."""
    if not tenant_id:
        return
    from sqlalchemy import func

    count = db.session.execute(
        select(func.count(func.distinct(LoginSession.user_id)))
        .join(User, User.id == LoginSession.user_id)
        .where(
            User.tenant_id == tenant_id,
            LoginSession.revoked_at.is_(None),
            LoginSession.expires_at > now(),
            LoginSession.last_seen_at > now() - ACTIVE_WINDOW,
        )
    ).scalar_one()
    ACTIVE_USERS.labels(tenant_id).set(count)


def _revoke_family(family_id: str, reason: str) -> None:
    db.session.execute(
        update(LoginSession)
        .where(LoginSession.family_id == family_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=now(), revoked_reason=reason)
    )


def _ua(user_agent: str | None) -> str:
    return (user_agent or "")[:300]


def _grace_successor(row: LoginSession, user_agent: str | None, current: datetime) -> LoginSession | None:
    """For a rotated token presented within ROTATION_GRACE by the browser that rotated it: the
    family's current session. None otherwise (which is reuse)."""
    if row.rotated_at is None or current - row.rotated_at > ROTATION_GRACE:
        return None
    successor = db.session.execute(
        select(LoginSession)
        .where(
            LoginSession.family_id == row.family_id,
            LoginSession.rotated_at.is_(None),
            LoginSession.revoked_at.is_(None),
        )
        .order_by(LoginSession.created_at.desc())
        .limit(1)
    ).scalar_one_or_none()
    if successor is None or (successor.user_agent or "") != _ua(user_agent):
        return None
    return successor


@cache
def _by_token() -> Select[tuple[LoginSession]]:
    """The sign-in session of a token hash (its user and table joined by the relationships' eager
    loading), built once per process: composing it and its cache key on every cache miss cost
    more Python than the rest of the lookup (issue 18)."""
    return select(LoginSession).where(
        LoginSession.token_hash == bindparam("token_hash", type_=LoginSession.token_hash.type)
    )


def resolve(token: str | None, *, user_agent: str | None = None) -> LoginSession | None:
    """The live session for a cookie token, or None. One query (session joined with its user).
    Reading only: the ``last_seen_at`` touch is the sign-in cache's (``touch``, in its read).

    A rotated token presented again revokes its family (and is refused), unless it comes from
    the same user agent within ROTATION_GRACE of the rotation: then it resolves to the family's
    new session (a second query, only in that case)."""
    if not token:
        return None
    row = db.session.execute(_by_token(), {"token_hash": hash_token(token)}).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return None
    current = now()
    if row.rotated_at is not None:
        successor = _grace_successor(row, user_agent, current)
        if successor is None:
            _revoke_family(row.family_id, "reuse_detected")
            audit.record(
                "session.reuse_detected",
                "login_session",
                row.family_id,
                tenant_id=row.user.tenant_id,
                user_id=row.user_id,
                ip=row.ip,
            )
            db.session.commit()
            log.warning("rotated session token reused; family revoked", extra={"user_id": row.user_id})
            return None
        row = successor
    tenant = row.user.tenant
    if not live(
        row.expires_at,
        row.last_seen_at,
        row.user.status,
        tenant.status if tenant is not None else None,
        row.user.role,
        current,
    ):
        return None
    return row


def live(
    expires_at: datetime,
    last_seen_at: datetime,
    user_status: str,
    tenant_status: str | None,
    role: str,
    current: datetime | None = None,
) -> bool:
    """Whether a sign-in that is neither revoked nor rotated still holds: not past its absolute or
    idle expiry, its user active, its table active (or missing: ``tenant_status`` None) unless the
    user is an operator. The one place for these rules (``resolve`` and the sign-in cache's read);
    ``live_where`` below writes them in SQL for the touch, and a test holds the two together."""
    current = current or now()
    idle = timedelta(minutes=settings().session_idle_minutes)
    if expires_at <= current or last_seen_at + idle <= current:
        return False
    if user_status != "active":
        return False
    return tenant_status is None or tenant_status == "active" or role == Role.SUPER_ADMIN


def live_where(user_status: Any, tenant_status: Any, role: Any) -> Any:
    """``live``'s rules as a SQL condition, for the statement that reads a sign-in and records
    that it was used in one (``touch``): the login session's own columns (on the row the UPDATE
    locks, so a revocation committed meanwhile is seen) and the given user and table status and
    role expressions; bind parameters ``at`` (now) and ``idle_after`` (now - the idle limit),
    from ``touch_params``. tests/test_signin_columns.py runs both over the same rows."""
    s = LoginSession
    return and_(
        s.revoked_at.is_(None),
        s.rotated_at.is_(None),
        s.expires_at > bindparam("at", type_=s.expires_at.type),
        s.last_seen_at > bindparam("idle_after", type_=s.last_seen_at.type),
        user_status == "active",
        or_(tenant_status.is_(None), tenant_status == "active", role == Role.SUPER_ADMIN),
    )


def touch(user_status: Any, tenant_status: Any, role: Any, session_id: Any) -> Any:
    """An UPDATE recording that the sign-in ``session_id`` was used (``last_seen_at`` = ``at``),
    only while it is live (``live_where``) and at most once per ``LAST_SEEN_GRANULARITY``
    (``touch_before``), returning the time recorded: for a data-modifying CTE in the sign-in
    read, so a user's first request after a while costs one round trip, not a read and then an
    UPDATE. The statement commits nothing itself; ``touched`` does."""
    s = LoginSession
    return (
        update(s)
        .where(
            s.id == session_id,
            s.last_seen_at <= bindparam("touch_before", type_=s.last_seen_at.type),
            live_where(user_status, tenant_status, role),
        )
        .values(last_seen_at=bindparam("at", type_=s.last_seen_at.type))
        .returning(s.last_seen_at)
    )


def touch_params(current: datetime | None = None) -> dict[str, datetime]:
    """The bind parameters of ``touch`` and ``live_where`` for the time ``current``."""
    current = current or now()
    return {
        "at": current,
        "idle_after": current - timedelta(minutes=settings().session_idle_minutes),
        "touch_before": current - LAST_SEEN_GRANULARITY,
    }


def touched() -> None:
    """After a statement that touched ``last_seen_at``: on a read-only page it ran in autocommit on
    the read connection (committed as it ran); elsewhere it joined the session's transaction,
    committed here. A touch ends no sign-in, so it empties nobody's sign-in cache (plain SQL, not
    an ORM update of a login session)."""
    session = existing_session()
    if session is not None and session.in_transaction():
        session.commit()


def refusal(token: str | None) -> str:
    """Why a cookie that no longer resolves was refused, for the sign-in page: 'table_suspended',
    'account_suspended', or 'expired'. Runs only on that failure path (one query)."""
    if not token:
        return "expired"
    row = db.session.execute(_by_token(), {"token_hash": hash_token(token)}).scalar_one_or_none()
    if row is None or row.revoked_at is not None:
        return "expired"
    if row.user.status != "active":
        return "account_suspended"
    tenant = row.user.tenant
    if tenant is not None and tenant.status != "active" and row.user.role != Role.SUPER_ADMIN:
        return "table_suspended"
    return "expired"


def rotate(token: str | None, *, ip: str | None = None, user_agent: str | None = None) -> str | None:
    """Replace the token with a new one in the same family (absolute expiry unchanged).

    Returns the new token; None when the token doesn't resolve; "" when there is nothing to do
    because the token was already rotated (a second, concurrent refresh from the same browser,
    in the grace window): that browser holds, or is about to receive, the new cookie."""
    row = resolve(token, user_agent=user_agent)
    if row is None:
        return None
    if row.token_hash != hash_token(token or ""):
        return ""
    # Claim the rotation atomically: of two concurrent refreshes with one token, one rotates.
    claimed = rowcount(
        db.session.execute(
            update(LoginSession)
            .where(LoginSession.id == row.id, LoginSession.rotated_at.is_(None))
            .values(rotated_at=now())
        )
    )
    if not claimed:
        db.session.rollback()
        return ""
    new_token = secrets.token_urlsafe(32)
    db.session.add(
        LoginSession(
            family_id=row.family_id,
            user_id=row.user_id,
            token_hash=hash_token(new_token),
            expires_at=row.expires_at,
            ip=ip,
            user_agent=_ua(user_agent or row.user_agent),
        )
    )
    audit.record(
        "session.rotate", "login_session", row.family_id, tenant_id=row.user.tenant_id, user_id=row.user_id, ip=ip
    )
    db.session.commit()
    return new_token


def sign_out(token: str | None, *, ip: str | None = None, user_agent: str | None = None) -> None:
    row = resolve(token, user_agent=user_agent)
    if row is None:
        return
    _revoke_family(row.family_id, "sign_out")
    tenant_id = row.user.tenant_id
    audit.record("user.sign_out", "login_session", row.family_id, tenant_id=tenant_id, user_id=row.user_id, ip=ip)
    db.session.commit()
    track_active_users(tenant_id)


def list_sessions(actor: Actor) -> list[LoginSession]:
    """The actor's live sessions (one row per family: the current token of each)."""
    current = now()
    return list(
        db.session.execute(
            select(LoginSession)
            .where(
                LoginSession.user_id == actor.user_id,
                LoginSession.revoked_at.is_(None),
                LoginSession.rotated_at.is_(None),
                LoginSession.expires_at > current,
            )
            .order_by(LoginSession.last_seen_at.desc())
        ).scalars()
    )


def own_session(actor: Actor, session_id: str) -> LoginSession:
    """One of the actor's own sign-in sessions, or NotFound (anyone else's is never revealed)."""
    row = db.session.get(LoginSession, session_id)
    if row is None or row.user_id != actor.user_id:
        raise NotFound()
    return row


def revoke_session(actor: Actor, session_id: str) -> None:
    row = own_session(actor, session_id)
    _revoke_family(row.family_id, "revoked_by_user")
    audit.record("session.revoke", "login_session", row.family_id, actor=actor)
    db.session.commit()


_A = TypeVar("_A", bound=Actor)


def actor_for(row: LoginSession | LoginSnapshot, ip: str | None, kind: type[_A] = Actor, **more: Any) -> _A:  # type: ignore[assignment]  # (mypy can't type a TypeVar's default)
    """The Actor of a live sign-in (``kind`` a subclass of Actor with ``more`` fields of its own)."""
    user = row.user
    return kind(user_id=user.id, tenant_id=user.tenant_id or "", role=Role(user.role), name=user.name, ip=ip, **more)
