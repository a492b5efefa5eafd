"""A per-process cache in front of :func:`services.auth.resolve` (issue 18).

Resolving the sign-in cookie was ~10 % of a page's CPU: one ORM query (login session joined with
user and tenant) on every request. A miss here applies auth's rules (revoked, idle and absolute
expiry, suspended user or table: ``auth.live``; rotated tokens, with the grace and reuse rules,
through ``auth.resolve`` itself), touches ``last_seen_at`` in the same statement (``auth.touch``)
and keeps a frozen snapshot of the answer, keyed by the token's SHA-256. Only positive answers
are kept.

How long an answer is kept depends on whether this process can hear the others' revocations:

* with ``REDIS_URL``, every process subscribes to one pub/sub channel (:class:`Broadcast`, a daemon
  thread per process) and any process whose write ends a sign-in publishes on it after the commit;
  every process then empties its cache at once. While the subscription is alive (it answered a
  ping in the last few seconds) an answer is kept for ``SIGNIN_CACHE_SECONDS`` (default 30 s): a
  user who browses with a few seconds between pages is resolved from memory on most requests, on
  every worker;
* without Redis, before the subscription is confirmed, or once it stops answering (Redis down, a
  silent network cut), at most ``UNHEARD_SECONDS`` (3 s): fail closed, never the long lifetime
  on a channel that may have lost messages. Losing the subscription also empties the cache.

Revocation therefore applies:

* in this process at once: any flush or ORM ``UPDATE``/``DELETE`` of a login session, user or
  tenant bumps a generation counter (at flush and again after the commit), and entries from an
  older generation are misses;
* in other processes of the app (other gunicorn workers, other pods, the CLI) as soon as the
  published message arrives, normally within milliseconds;
* for writes made outside the app with plain SQL (nobody publishes), within ``SIGNIN_CACHE_SECONDS``
  (3 s without Redis);
* absolute and idle expiry are re-checked on every hit.

A cache hit skips the ``last_seen_at`` touch; the next miss (at most the lifetime later) touches as
usual. An idle expiry judged on a snapshot's older ``last_seen_at`` only ever turns a hit into a
miss, which reads the row as it is.

The snapshot has the attributes the request code reads from ``current_user.login_session`` and ``.user``
(``id``, ``family_id``, ``user``; ``user.name``, ``role``, ``tenant``, ``discord_guilds`` ...). It
is never attached to a database session, so a cached sign-in can't be written through by accident.
"""

from __future__ import annotations

import logging
import os
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app, has_app_context
from sqlalchemy import event, inspect
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session, UOWTransaction

from glyphoxa_htmx.core.deps import settings
from glyphoxa_htmx.core.memo import Memo
from glyphoxa_htmx.services import auth

if TYPE_CHECKING:
    import redis

MAX_ENTRIES = 50_000
SPREAD = 0.3  # an entry lives between 70 % and 100 % of the lifetime (see resolve)
UNHEARD_SECONDS = 3.0  # the longest an answer is kept while other processes' revocations can't be heard
HEARTBEAT_SECONDS = 1.0  # the listener pings this often; no answer for 3 beats: not heard
CHANNEL = "glyphoxa:signin:changed"
EXTENSION = "glyphoxa.signin_broadcast"

log = logging.getLogger(__name__)


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


def _from_columns(r: Any) -> LoginSnapshot:
    return LoginSnapshot(
        id=r.id,
        family_id=r.family_id,
        user_id=r.user_id,
        token_hash=r.token_hash,
        expires_at=r.expires_at,
        last_seen_at=r.last_seen_at,
        ip=r.ip,
        user_agent=r.user_agent,
        user=UserSnapshot(
            id=r.u_id,
            tenant_id=r.tenant_id,
            name=r.name,
            email=r.email,
            avatar_url=r.avatar_url,
            role=r.role,
            status=r.u_status,
            discord_id=r.discord_id,
            discord_guilds=tuple(r.discord_guilds or ()),
            locale=r.locale,
            tenant=TenantSnapshot(id=r.t_id, name=r.t_name, status=r.t_status) if r.t_id is not None else None,
        ),
    )


_lock = threading.Lock()
_entries: Memo[str, tuple[float, int, LoginSnapshot]] = Memo(MAX_ENTRIES)
_generation = 0


def invalidate() -> None:
    """Forget every cached sign-in of this process (called on any local write that could end one,
    and when another process says it wrote one)."""
    global _generation
    with _lock:
        _generation += 1
        _entries.clear()


# What each message on the channel empties in every process, by topic: the sign-ins here, and
# other per-process caches of rows that any process may change (``on_change``).
SIGNIN = "signin"
_forgetters: dict[str, Callable[[], None]] = {SIGNIN: invalidate}


def on_change(topic: str, forget: Callable[[], None]) -> None:
    """Call ``forget`` in this process whenever any process publishes ``topic`` (``publish``), and
    whenever the channel may have lost a message (then every topic's ``forget`` runs)."""
    _forgetters[topic] = forget


def publish(topic: str) -> None:
    """Tell every other process of the app that rows behind ``topic`` changed (after the commit).
    Without Redis nobody hears it: their answers are then kept ``UNHEARD_SECONDS`` at most."""
    channel = _broadcast()
    if channel is not None:
        channel.publish(topic)


def _forget(message: bytes | str | None) -> None:
    """Run the forgetters a message names: ``<topic> <pid>``. Anything else (an older process's
    bare pid, an unknown topic) empties every cache: fail closed."""
    text = message.decode(errors="replace") if isinstance(message, bytes) else (message or "")
    forget = _forgetters.get(text.partition(" ")[0])
    if forget is not None:
        forget()
    else:
        _forget_all()


def _forget_all() -> None:
    for each in list(_forgetters.values()):
        each()


class Broadcast:
    """Sign-in changes (and the other topics of ``on_change``) between processes over Redis
    pub/sub (``CHANNEL``).

    ``publish`` after a commit that ended or changed a sign-in; a daemon thread per process
    (started on first use, again after a fork) listens and empties this process's cache on every
    message (the caches its topic names). ``heard`` says whether the subscription is alive now:
    subscribed, and a ping answered within the last ``3 × HEARTBEAT_SECONDS``. The thread
    reconnects on its own; losing the subscription empties every cache, since a message may have
    been lost meanwhile."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pid = 0
        self._heard_at = 0.0
        self._publisher: redis.Redis | None = None
        self.closed = False

    def heard(self) -> bool:
        if self._pid != os.getpid():
            self._start()
            return False
        return time.monotonic() - self._heard_at < 3 * HEARTBEAT_SECONDS

    def publish(self, topic: str = SIGNIN) -> None:
        import redis  # here, not at import: redis-py 7 imports OpenTelemetry, which is off by default

        try:
            if self._publisher is None:
                self._publisher = redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=2)
            self._publisher.publish(CHANNEL, f"{topic} {os.getpid()}")
        except redis.RedisError as exc:
            # The write is committed; other processes keep an answer at most their lifetime (or 3 s
            # once they lose the channel too).
            log.warning("change not broadcast", extra={"error": type(exc).__name__, "topic": topic})

    def close(self) -> None:
        self.closed = True

    def _start(self) -> None:
        with _lock:
            if self._pid == os.getpid() or self.closed:
                return
            self._pid, self._heard_at, self._publisher = os.getpid(), 0.0, None
            threading.Thread(target=self._listen, name="signin-broadcast", daemon=True).start()

    def _listen(self) -> None:
        import redis

        pid, backoff, reported = os.getpid(), 0.5, False
        while not self.closed and self._pid == pid:
            error = ""
            try:
                self._listen_once(pid)
                backoff = 0.5
            except (redis.RedisError, OSError) as exc:
                error = type(exc).__name__
            was_heard, self._heard_at = self._heard_at, 0.0
            if was_heard:
                _forget_all()  # a message may have been lost while the channel was down
                reported = False
            if error and not reported:  # once per outage, not on every retry
                log.warning(
                    "sign-in changes of other processes can't be heard; keeping sign-ins %ss at most",
                    UNHEARD_SECONDS,
                    extra={"error": error},
                )
                reported = True
            time.sleep(backoff)
            backoff = min(backoff * 2, 5.0)

    def _listen_once(self, pid: int) -> None:
        import redis

        client = redis.Redis.from_url(self.url, socket_timeout=3 * HEARTBEAT_SECONDS, socket_connect_timeout=2)
        pubsub = client.pubsub()
        try:
            pubsub.subscribe(CHANNEL)
            answered = next_ping = time.monotonic()
            while not self.closed and self._pid == pid:
                now = time.monotonic()
                if now - answered >= 3 * HEARTBEAT_SECONDS:
                    raise redis.TimeoutError("the channel stopped answering")
                if now >= next_ping:
                    pubsub.ping()
                    next_ping = now + HEARTBEAT_SECONDS
                message = pubsub.get_message(timeout=HEARTBEAT_SECONDS)
                if message is None:
                    continue
                if message["type"] == "message":
                    _forget(message.get("data"))
                if message["type"] in ("subscribe", "pong", "message"):
                    answered = self._heard_at = time.monotonic()
        finally:
            pubsub.close()
            client.close()


def init_app(app: Flask, redis_url: str) -> None:
    """Hear and tell other processes' sign-in changes through ``redis_url`` (none: 3 s answers)."""
    old = app.extensions.pop(EXTENSION, None)
    if old is not None:
        old.close()
    if redis_url:
        app.extensions[EXTENSION] = Broadcast(redis_url)


def _broadcast() -> Broadcast | None:
    return current_app.extensions.get(EXTENSION) if has_app_context() else None


def lifetime(configured: float) -> float:
    """How long an answer resolved now may be kept: the configured time while other processes'
    changes can be heard, ``UNHEARD_SECONDS`` (or less) otherwise."""
    channel = _broadcast()
    return configured if channel is not None and channel.heard() else min(configured, UNHEARD_SECONDS)


@cache
def _columns() -> Any:
    """A sign-in with its user and table as columns, by token hash, and ``touched_at``: the time
    the same statement recorded as its ``last_seen_at`` (``auth.touch``, a data-modifying CTE:
    only a live sign-in, at most once a minute), else NULL. Built once per process."""
    from sqlalchemy import bindparam, select, true

    from glyphoxa_htmx.models import LoginSession, Tenant, User

    s = LoginSession
    found = (
        select(
            s.id,
            s.family_id,
            s.user_id,
            s.token_hash,
            s.expires_at,
            s.last_seen_at,
            s.rotated_at,
            s.revoked_at,
            s.ip,
            s.user_agent,
            User.id.label("u_id"),
            User.tenant_id,
            User.name,
            User.email,
            User.avatar_url,
            User.role,
            User.status.label("u_status"),
            User.discord_id,
            User.discord_guilds,
            User.locale,
            Tenant.id.label("t_id"),
            Tenant.name.label("t_name"),
            Tenant.status.label("t_status"),
        )  # fmt: skip
        .join(User, User.id == s.user_id)
        .outerjoin(Tenant, Tenant.id == User.tenant_id)
        .where(s.token_hash == bindparam("token_hash", type_=s.token_hash.type))
        .cte("found")
    )
    f = found.c
    touched = auth.touch(f.u_status, f.t_status, f.role, f.id).cte("touched")
    return select(found, touched.c.last_seen_at.label("touched_at")).outerjoin(touched, true())


def _read(token_hash: str, current: datetime) -> Any:
    """The sign-in's row (``_columns``), touched on the way when it is live and due."""
    from glyphoxa_htmx.core.dbconn import query

    found = query(_columns(), {"token_hash": token_hash, **auth.touch_params(current)}).first()
    if found is not None and found.touched_at is not None:
        auth.touched()
    return found


def _snapshot(found: Any) -> LoginSnapshot:
    snap = _from_columns(found)
    return replace(snap, last_seen_at=found.touched_at) if found.touched_at is not None else snap


def _resolve(token: str, user_agent: str | None) -> LoginSnapshot | None:
    """The sign-in of a cookie, as a snapshot, with ``auth.resolve``'s rules.

    The usual case (a sign-in neither revoked nor rotated) is one statement: the read of columns
    straight into the snapshot, with ``auth.live``'s checks, and the ``last_seen_at`` touch in
    the same round trip (``auth.touch``, which applies the same rules in SQL). An ORM load of the
    session, user and table cost ~1 ms of Python, and every sign-in misses once per cache
    lifetime (when 1,000 users arrived within seconds, or their entries expired together, those
    misses were the slowest requests of a load test); the touch was a second round trip on each
    returning user's first request. No row, or a revoked one, is no sign-in, as ``auth.resolve``
    answers. A rotated token (the rotation grace, or reuse, which revokes the family and is
    audited) goes to ``auth.resolve`` itself; the session it answers with is then read the same
    way (rare: within 30 s of a rotation, from the browser that rotated)."""
    current = auth.now()
    found = _read(auth.hash_token(token), current)
    if found is None or found.revoked_at is not None:
        return None
    if found.rotated_at is None:
        if not auth.live(found.expires_at, found.last_seen_at, found.u_status, found.t_status, found.role, current):
            return None
        return _snapshot(found)
    row = auth.resolve(token, user_agent=user_agent)
    if row is None:
        return None
    chosen = _read(row.token_hash, auth.now())  # the family's session it chose
    return _snapshot(chosen) if chosen is not None else None


def resolve(token: str | None, user_agent: str | None = None) -> LoginSnapshot | None:
    """The live sign-in for a cookie token (a snapshot), or None; ``auth.resolve`` on a miss.

    Keyed by the token's hash *and* the browser's User-Agent: ``auth.resolve`` treats a rotated
    token differently by user agent (the same browser's in-flight requests get a grace window,
    another browser is reuse and revokes the family), so a hit must never answer for a browser
    that ``auth.resolve`` has not seen with this token."""
    if not token:
        return None
    configured = settings().signin_cache_seconds
    if configured <= 0:
        return _resolve(token, user_agent)
    ttl = lifetime(configured)
    key = f"{auth.hash_token(token)}\x00{user_agent or ''}"
    now = time.monotonic()
    hit = _entries.get(key)
    if hit is not None and now - hit[0] < ttl and hit[1] == _generation:
        cached = hit[2]
        current = datetime.now(UTC)
        idle = timedelta(minutes=settings().session_idle_minutes)
        if cached.expires_at > current and cached.last_seen_at + idle > current:
            return cached
    generation = _generation  # read before the query: a write during it makes this entry stale
    snap = _resolve(token, user_agent)
    if snap is None:
        _entries.pop(key, None)
        return None
    with _lock:
        if generation == _generation:
            # Dated up to SPREAD of its lifetime earlier, at random: entries made together (a crowd
            # arriving, a deploy) then expire over a stretch of time, not in one wave of misses.
            # Never later: an entry lives at most the lifetime.
            _entries.keep(key, (now - random.random() * SPREAD * ttl, generation, snap))
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
        channel = _broadcast()
        if channel is not None:
            channel.publish()  # and every other process of the app
