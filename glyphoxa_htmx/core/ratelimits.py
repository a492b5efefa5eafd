"""The plan §7 rate-limit classes that aren't tied to one route (the README's table lists them
all). Flask-Limiter counts in Redis (``REDIS_URL``) so every process shares one budget.

* general: every route without a class of its own, per signed-in user (per IP before sign-in).
  Sized far above a DM's live-session traffic: the live page is one WebSocket (or one poll per
  second as the fallback), the stop check polls every 2 s, the admin dashboard every 15 s —
  about 100 requests a minute with three tabs open, against a default of 600.
* admin: operator pages, per operator.
* upload: file uploads (voice samples, imports), per user; applied with ``upload_limit``.

Routes with their own limit (sign-in, voice preview, provider Test, the billing webhook) keep it
instead of the general one; /healthz, /readyz and static files are exempt. Each class is read
from the settings (RATE_LIMIT_GENERAL, RATE_LIMIT_ADMIN, RATE_LIMIT_UPLOAD)."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from flask import Flask, request
from flask.globals import _cv_request
from flask_limiter.util import get_qualified_name
from limits import RateLimitItem, parse_many
from limits.storage import RedisStorage
from limits.strategies import FixedWindowRateLimiter

from glyphoxa_htmx.extensions import limiter, user_or_ip

if TYPE_CHECKING:
    from glyphoxa_htmx.config import Settings

log = logging.getLogger(__name__)


def _setting(name: str) -> Callable[[], str]:
    def read() -> str:
        from glyphoxa_htmx.core.deps import settings

        value: str = getattr(settings(), name)
        return value

    return read


general_limit_value = _setting("rate_limit_general")
admin_limit = limiter.limit(_setting("rate_limit_admin"), key_func=user_or_ip)
upload_limit = limiter.limit(_setting("rate_limit_upload"), key_func=user_or_ip)


def check(settings: Settings) -> list[str]:
    """Problems with the configured classes (empty: all parse)."""
    problems = []
    for name in ("rate_limit_general", "rate_limit_admin", "rate_limit_upload"):
        try:
            parse_many(getattr(settings, name))
        except ValueError:
            problems.append(f"{name.upper()}: {getattr(settings, name)!r} is not a limit like '600 per minute'")
    return problems


# --------------------------------------------------------------------------- the general class, fast


def init_app(app: Flask) -> None:
    """Count the general class without Flask-Limiter's per-request resolution (issue 18).

    Flask-Limiter's before-request check works out, on every request, which limits apply to the
    endpoint (decorated, blueprint, hinted, exempt, application, meta and default limits; the
    default re-parsed from its callable) before its one storage hit: ~0.3 ms of Python a request,
    a quarter of a page without a query. For an endpoint whose only limit is the general class the
    answer never changes, so it is worked out once per endpoint (by the same rules, asked of
    Flask-Limiter's own manager) and the request does just the hit, through Flask-Limiter's own
    strategy and storage and with its storage keys (``LIMITER/<user or ip>/<endpoint>/<limit>``,
    so counts carry over across a deploy and across processes running either path). Everything
    else goes to Flask-Limiter's own check, unchanged: endpoints with a class or limit of their
    own, exempt ones, hinted ones, a dead storage, and every refusal (the breached window is hit
    once more there, already over its limit, and Flask-Limiter raises its RateLimitExceeded
    with the context the 429 page reads Retry-After from). Call right after ``limiter.init_app``."""
    funcs = app.before_request_funcs.setdefault(None, [])
    slow = limiter._check_request_limit
    if slow not in funcs:  # this app has no Flask-Limiter check to replace (cannot happen after init_app)
        raise RuntimeError("ratelimits.init_app must run after limiter.init_app")
    plans: dict[str, Any] = {}

    def check_request() -> None:
        endpoint = request.endpoint
        if not endpoint or not limiter.enabled or limiter._storage_dead:
            return slow()
        plan = plans.get(endpoint)
        if plan is None:
            plan = plans[endpoint] = _plan(app, endpoint)
        if plan is _SLOW or limiter.limit_manager.has_hints(endpoint):
            return slow()
        key = user_or_ip()
        batched = _batched_for(limiter.limiter)
        if batched is not None and batched.hit(plan, key, endpoint):
            return None  # well within the limit: counted here, in Redis within FLUSH_SECONDS
        try:
            within = all(limiter.limiter.hit(item, key, endpoint) for item in plan)
        except Exception:  # noqa: BLE001 - the storage failed: Flask-Limiter's own error handling
            within = False
        return None if within else slow()  # over: Flask-Limiter refuses it, with its context

    funcs[funcs.index(slow)] = check_request
    _skip_unused_context(app)


def _skip_unused_context(app: Flask) -> None:
    """Flask-Limiter's after-request hook (conditional deductions, rate-limit headers) and its
    teardown (reset) read a per-request context they create when it isn't there; the fast check
    above never makes one, so on most requests they built a context just to find or reset nothing
    (~10 µs). When the request context has none, they are skipped: exactly what they would do.
    When it has one (Flask-Limiter's own check ran), they run as ever."""
    after = app.after_request_funcs.setdefault(None, [])
    teardown = app.teardown_request_funcs.setdefault(None, [])
    inject = next(
        (f for f in after if getattr(f, "func", None) is getattr(type(limiter), "_Limiter__inject_headers", None)),
        None,
    )
    release = getattr(limiter, "_Limiter__release_context", None)
    if inject is None or release is None or release not in teardown:
        raise RuntimeError("Flask-Limiter's hooks are not where ratelimits expects them (a new version?)")

    def inject_headers(response: Any) -> Any:
        return inject(response) if _has_limiter_context() else response

    def release_context(exc: BaseException | None = None) -> None:
        if _has_limiter_context():
            release(exc)

    after[after.index(inject)] = inject_headers
    teardown[teardown.index(release)] = release_context


def _has_limiter_context() -> bool:
    ctx = _cv_request.get(None)
    return ctx is None or hasattr(ctx, "_limiter_request_context")


_SLOW = object()


def _plan(app: Flask, endpoint: str) -> Any:
    """The general class's parsed items (sorted as Flask-Limiter hits them) when they are the
    endpoint's only limits and are plain (per user or IP, per endpoint, cost 1); else ``_SLOW``."""
    from flask_limiter import ExemptionScope

    manager = limiter.limit_manager
    view = app.view_functions.get(endpoint)
    blueprint = endpoint.rpartition(".")[0] or None
    if (
        view is None
        or endpoint.split(".")[-1] == "static"
        or limiter._request_filters
        or limiter._key_prefix
        or limiter._meta_limits
        or manager.application_limits
        or get_qualified_name(view) in limiter._marked_for_limiting
        or (blueprint and manager.blueprint_limits(app, blueprint))
        or manager.exemption_scope(app, endpoint, blueprint) != ExemptionScope.NONE
    ):
        return _SLOW
    defaults = manager.default_limits  # evaluates the general class's setting (this app's)
    if not defaults:
        return _SLOW
    for lim in defaults:
        if (
            lim.key_func is not user_or_ip
            or lim.scope
            or lim.shared
            or lim.per_method
            or lim.methods
            or lim.exempt_when
            or lim.deduct_when
            or lim.meta_limits
            or lim.cost != 1
            or lim.on_breach
        ):
            return _SLOW
    return tuple(lim.limit for lim in sorted(defaults, key=lambda x: x.limit))


# --------------------------------------------------------------------------- the general class, batched

FLUSH_SECONDS = 0.2  # how often a process sends the hits it counted to Redis
STALE_SECONDS = 2.0  # no flush for this long (Redis unreachable): every hit goes to Redis itself
# How often the flush thread forgets windows that ended. Not on every flush: the scan goes over
# every key the process has seen in the window (~9 per active user: one per endpoint), and at
# 1,000 users five scans a second took ~1 % of a worker's CPU (issue 18).
PRUNE_SECONDS = 5.0


class _Count:
    """One limit of one user (or IP) on one endpoint: one Redis key, Flask-Limiter's."""

    __slots__ = ("exact_until", "item", "key", "known", "pending", "until")

    def __init__(self, item: RateLimitItem, key: str) -> None:
        self.item, self.key = item, key
        self.pending = 0  # hits counted here, not yet in Redis
        self.known = 0  # the window's count in Redis at the last flush: every process's hits
        self.until = 0.0  # when that window ends (time.monotonic)
        self.exact_until = 0.0  # near the limit: Flask-Limiter hits Redis for every request until then


class Batched:
    """The general class's hits, counted in the process and sent to Redis in one pipeline every
    FLUSH_SECONDS by a daemon thread (issue 18: a Redis round trip on every request was ~0.09 ms of
    the app's CPU, ~9 % of a page, plus a GIL hand-off and Redis's own CPU on the same machine).

    The same keys, Lua script and fixed windows as Flask-Limiter's own hit, so the count is one
    count across processes, instances and either path. Each flush reads back every flushed key's
    count (all processes' hits) and the time its window ends. A request is counted here only while
    that count plus this process's unflushed hits stays below the limit minus a tenth of it; from
    there until the window ends every request goes to Flask-Limiter, which counts in Redis and
    refuses exactly as before. A key with ``cap`` unflushed hits (a twentieth of the limit) is
    flushed in the request, so one process is never more than ``cap`` hits ahead of Redis: with P
    processes serving one user at once, a burst can pass the limit by at most (P − 1) × cap (the
    hits another process admitted before its next flush showed it the count); processes taking
    turns are exact. Limits under 40 a window are never batched. Fail closed: with no good flush
    for STALE_SECONDS (Redis down), every request takes Flask-Limiter's path and its handling of a
    dead storage; hits a failed flush couldn't send are kept for the next one."""

    def __init__(self, storage: RedisStorage, flush_seconds: float | None = None) -> None:
        self.storage = storage
        # (FLUSH_SECONDS read now, not when this was defined: a test or a setting may change it)
        self.flush_seconds = FLUSH_SECONDS if flush_seconds is None else flush_seconds
        self.stopped = False
        self._reset()

    def _reset(self) -> None:
        self._lock = threading.Lock()
        self._flushing = threading.Lock()
        self._counts: dict[tuple[RateLimitItem, str, str], _Count] = {}
        self._dirty: list[_Count] = []  # the counts with unflushed hits (each once)
        self._pruned_at = time.monotonic()
        self._ok_at = -float("inf")  # the last good flush (time.monotonic)
        self._pid = 0  # the process whose flush thread runs
        self._failing = False  # the last flush failed

    @staticmethod
    def headroom(item: RateLimitItem) -> int:
        return max(item.amount // 10, 1)

    @staticmethod
    def cap(item: RateLimitItem) -> int:
        return item.amount // 20

    def hit(self, items: Sequence[RateLimitItem], key: str, endpoint: str) -> bool:
        """Count one hit of each of ``items`` here. False: count it in Redis instead (Flask-Limiter),
        because a limit is near, too small to batch, or there was no good flush lately."""
        if self._pid != os.getpid():
            self._start()
        now = time.monotonic()
        if self.stopped or now - self._ok_at > STALE_SECONDS:
            return False
        full = near = entering = False
        with self._lock:
            counts = []
            for item in items:
                if self.cap(item) < 2:
                    near = True  # too small to batch
                    break
                count = self._counts.get((item, key, endpoint))
                if count is None:
                    count = self._counts[(item, key, endpoint)] = _Count(item, item.key_for(key, endpoint))
                if now < count.exact_until:
                    near = True
                    break
                known = count.known if now < count.until else 0
                if known + count.pending + 1 > item.amount - self.headroom(item):
                    count.exact_until = now + item.get_expiry()  # by then this window has ended
                    near = entering = True
                    break
                counts.append(count)
            else:
                for count in counts:
                    if not count.pending:
                        self._dirty.append(count)
                    count.pending += 1
                    full = full or count.pending >= self.cap(count.item)
        if entering or full:
            self.flush()  # entering: Redis gets this process's hits before Flask-Limiter counts on
        return not near

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
        ref = weakref.ref(self)
        threading.Thread(target=_flush_loop, args=(ref, self.flush_seconds), name="gx-ratelimit", daemon=True).start()
        try:  # batch only once Redis has answered (until then, and while it doesn't, Flask-Limiter counts)
            self.storage.get_connection().ping()
            self._ok_at = time.monotonic()
        except Exception:  # noqa: BLE001 - unreachable: the exact path, with Flask-Limiter's handling
            log.warning("rate limit storage unreachable: every request is counted in it directly")

    def flush(self, prune: bool = False) -> None:
        """Send every unflushed hit to Redis in one pipeline and read back each key's count;
        ``prune`` (the flush thread, not a request) also forgets windows that ended, at most every
        PRUNE_SECONDS."""
        with self._flushing:
            now = time.monotonic()
            with self._lock:
                if prune and now - self._pruned_at >= PRUNE_SECONDS:
                    self._pruned_at = now  # (a window that ended, nothing unsent: nothing left to know)
                    for k in [
                        k for k, c in self._counts.items() if not c.pending and now >= max(c.until, c.exact_until)
                    ]:
                        del self._counts[k]
                batch = [(count, count.pending) for count in self._dirty]
                self._dirty = []
                for count, _n in batch:
                    count.pending = 0
            if not batch:
                self._ok_at = now
                return
            storage = self.storage
            pipe = storage.get_connection().pipeline(transaction=False)  # type: ignore[attr-defined]  # (redis-py)
            for count, n in batch:
                name = storage.prefixed_key(count.key)
                storage.lua_incr_expire([name], [count.item.get_expiry(), n], client=pipe)
                pipe.pttl(name)
            try:
                replies = pipe.execute()
            except Exception as exc:  # noqa: BLE001 - Redis unreachable: keep the hits for the next flush
                with self._lock:
                    for count, n in batch:
                        if not count.pending:  # (else it is in the list again already)
                            self._dirty.append(count)
                        count.pending += n
                if not self._failing:  # (once per outage, not every FLUSH_SECONDS)
                    log.warning("rate limit counts not sent to Redis: %s", type(exc).__name__)
                self._failing = True
                return
            self._failing = False
            now = time.monotonic()
            with self._lock:
                for (count, _n), total, ttl in zip(batch, replies[0::2], replies[1::2], strict=True):
                    count.known = int(total)
                    # PTTL: -2 the key just expired (a new window), -1 it has no expiry (never set
                    # by this script; count it as a whole window: fail closed), else milliseconds.
                    ttl = int(ttl)
                    seconds = count.item.get_expiry() if ttl == -1 else max(ttl, 0) / 1000
                    count.until = now + seconds
            self._ok_at = now


def _flush_loop(ref: weakref.ref[Batched], seconds: float) -> None:
    pid = os.getpid()
    while True:
        time.sleep(seconds)
        batched = ref()
        if batched is None or batched.stopped or batched._pid != pid:
            return
        try:
            batched.flush(prune=True)
        except Exception:  # noqa: BLE001 - never let the thread die; the request path fails closed
            log.exception("rate limit flush failed")
        del batched


_batchers: dict[int, Batched] = {}


def _forked() -> None:
    for batched in _batchers.values():
        batched._reset()  # a worker starts with none of the parent's counts, unheld locks, its own thread


os.register_at_fork(after_in_child=_forked)


@atexit.register
def _flush_at_exit() -> None:
    """A worker that stops (a deploy, max_requests) sends what it counted since the last flush."""
    for batched in _batchers.values():
        if batched._pid == os.getpid() and not batched.stopped:
            try:
                batched.flush()
            except Exception:  # noqa: BLE001 - nothing to do about it on the way out
                pass


def _batched_for(strategy: Any) -> Batched | None:
    """The batcher of Flask-Limiter's current storage, if it can batch: fixed windows in one Redis
    (not a cluster or a sentinel set, whose pipelines differ)."""
    storage = getattr(strategy, "storage", None)
    found = _batchers.get(id(storage))
    if found is not None and found.storage is storage:
        return found
    if type(strategy) is not FixedWindowRateLimiter or type(storage) is not RedisStorage:
        return None
    for old in _batchers.values():
        old.stopped = True  # another app (tests) rebound the limiter: the old storage's thread ends
    _batchers.clear()
    batched = _batchers[id(storage)] = Batched(storage)
    return batched
