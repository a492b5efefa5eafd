"""A short per-process cache in front of :func:`services.auth.resolve` (issue 18).

Resolving the sign-in cookie was ~10 % of a page's CPU: one ORM query (login session joined with
user and tenant) on every request. This module wraps the resolution function without touching its
internals: a miss calls ``auth.resolve`` (which applies every rule: revoked, rotated-token reuse,
idle and absolute expiry, suspended user or table, ``last_seen_at`` touch) and keeps a frozen
snapshot of the answer, keyed by the token's SHA-256, for ``SIGNIN_CACHE_SECONDS`` (default 3 s;
0 turns the cache off). Only positive answers are kept.

Revocation stays effective within seconds:

* in this process at once: any flush or ORM ``UPDATE``/``DELETE`` of a login session, user or
  tenant bumps a generation counter (at flush and again after the commit), and entries from an
  older generation are misses;
* in other processes (other gunicorn workers, writes made with plain SQL) within the TTL;
* absolute and idle expiry are re-checked on every hit.

A cache hit skips the ``last_seen_at`` touch; the next miss (at most TTL later) touches as usual,
which is well inside the touch granularity (one minute).

The snapshot has the attributes the request code reads from ``current_user.login_session`` and ``.user``
(``id``, ``family_id``, ``user``; ``user.name``, ``role``, ``tenant``, ``discord_guilds`` ...). It
is never attached to a database session, so a cached sign-in can't be written through by accident.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session, UOWTransaction

from glyphoxa_htmx.core.deps import settings
from glyphoxa_htmx.services import auth

if TYPE_CHECKING:
    from glyphoxa_htmx.models import LoginSession

MAX_ENTRIES = 50_000


@dataclass(frozen=True)
class TenantSnapshot:
    id: str
    name: str
    status: str


@dataclass(frozen=True)
class UserSnapshot:
    id: str
    tenant_id: str | None
    name: str
    email: str | None
    avatar_url: str | None
    role: str
    status: str
    discord_id: str | None
    discord_guilds: tuple[dict[str, Any], ...]  # see User.discord_guilds
    tenant: TenantSnapshot | None
    locale: str | None = None


@dataclass(frozen=True)
class LoginSnapshot:
    id: str
    family_id: str
    user_id: str
    token_hash: str
    expires_at: datetime
    last_seen_at: datetime
    ip: str | None
    user_agent: str | None
    user: UserSnapshot


def snapshot(row: LoginSession) -> LoginSnapshot:
    user = row.user
    tenant = user.tenant
    return LoginSnapshot(
        id=row.id,
        family_id=row.family_id,
        user_id=row.user_id,
        token_hash=row.token_hash,
        expires_at=row.expires_at,
        last_seen_at=row.last_seen_at,
        ip=row.ip,
        user_agent=row.user_agent,
        user=UserSnapshot(
            id=user.id,
            tenant_id=user.tenant_id,
            name=user.name,
            email=user.email,
            avatar_url=user.avatar_url,
            role=user.role,
            status=user.status,
            discord_id=user.discord_id,
            discord_guilds=tuple(user.discord_guilds or ()),
            locale=user.locale,
            tenant=TenantSnapshot(id=tenant.id, name=tenant.name, status=tenant.status) if tenant is not None else None,
        ),
    )


_lock = threading.Lock()
_entries: dict[str, tuple[float, int, LoginSnapshot]] = {}
_generation = 0


def invalidate() -> None:
    """Forget every cached sign-in of this process (called on any local write that could end one)."""
    global _generation
    with _lock:
        _generation += 1
        _entries.clear()


def resolve(token: str | None, user_agent: str | None = None) -> LoginSnapshot | None:
    """The live sign-in for a cookie token (a snapshot), or None; ``auth.resolve`` on a miss.

    Keyed by the token's hash *and* the browser's User-Agent: ``auth.resolve`` treats a rotated
    token differently by user agent (the same browser's in-flight requests get a grace window,
    another browser is reuse and revokes the family), so a hit must never answer for a browser
    that ``auth.resolve`` has not seen with this token."""
    if not token:
        return None
    ttl = settings().signin_cache_seconds
    if ttl <= 0:
        row = auth.resolve(token, user_agent=user_agent)
        return snapshot(row) if row is not None else None
    key = f"{auth.hash_token(token)}\x00{user_agent or ''}"
    now = time.monotonic()
    hit = _entries.get(key)
    if hit is not None and hit[0] > now and hit[1] == _generation:
        snap = hit[2]
        current = datetime.now(UTC)
        idle = timedelta(minutes=settings().session_idle_minutes)
        if snap.expires_at > current and snap.last_seen_at + idle > current:
            return snap
    generation = _generation  # read before the query: a write during it makes this entry stale
    row = auth.resolve(token, user_agent=user_agent)
    if row is None:
        _entries.pop(key, None)
        return None
    snap = snapshot(row)
    with _lock:
        if len(_entries) >= MAX_ENTRIES:
            _entries.clear()
        if generation == _generation:
            _entries[key] = (now + ttl, generation, snap)
    return snap


# ---- invalidation on local writes ----------------------------------------------------------

_WATCHED: tuple[type[Any], ...] = ()


def _watched() -> tuple[type[Any], ...]:
    global _WATCHED
    if not _WATCHED:
        from glyphoxa_htmx.models import LoginSession, Tenant, User

        _WATCHED = (LoginSession, User, Tenant)
    return _WATCHED


def _ends_a_sign_in(obj: DeclarativeBase) -> bool:
    """A changed row that could end or alter a sign-in: anything but the ``last_seen_at`` touch
    (which happens about once a minute per sign-in and must not empty the cache)."""
    changed = {attr.key for attr in inspect(obj).attrs if attr.history.has_changes()}
    return bool(changed - {"last_seen_at"})


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _flush_context: UOWTransaction) -> None:
    watched = _watched()
    # New rows never end an existing sign-in (rotation marks the old row, which is dirty).
    if any(isinstance(obj, watched) for obj in session.deleted) or any(
        isinstance(obj, watched) and _ends_a_sign_in(obj) for obj in session.dirty
    ):
        session.info["gx_signin_changed"] = True
        invalidate()


@event.listens_for(Session, "do_orm_execute")
def _orm_execute(state: ORMExecuteState) -> None:
    if state.is_update or state.is_delete:
        mapper = state.bind_mapper
        if mapper is not None and issubclass(mapper.class_, _watched()):
            state.session.info["gx_signin_changed"] = True
            invalidate()


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    if session.info.pop("gx_signin_changed", False):
        invalidate()  # again: a request may have cached the old state between flush and commit
