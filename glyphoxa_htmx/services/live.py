"""Live transcript fan-out: ONE database poll per watched session per process.

A :class:`Hub` (one per app per process) keeps a :class:`Watch` thread for every session that
at least one viewer is watching. Each tick the watch runs a single SQL statement that returns
the session's state together with the transcript lines after the lowest cursor among its
viewers, and hands every viewer (a :class:`Subscription` with its own queue) the lines it has
not seen yet. Viewers never query the database themselves. The watch stops when its last
viewer leaves, or after it has delivered everything of an ended session followed by an
``ended`` event.

Resume without gaps or duplicates: a viewer subscribes with the highest line id it has; each
viewer has its own cursor, the poll starts at the smallest cursor, and a viewer is only served
from a poll that covered everything after its cursor. The cursor is an arrival mark, not a place
in time: lines of one session are written by one worker sequentially, so their ids grow in
commit order, and a line that arrives late with an earlier timestamp still has a higher id and
is delivered exactly once. (A keyset on (timestamp, id) would skip it.) The transcript's order,
(timestamp, id), is applied where lines are shown: the first paint, each rendered delivery, and
the live script, which moves a late line into its place.

Events put on a subscription's queue: ``("state", state)``, ``("lines", [Line, ...])`` and
finally ``("ended", error_or_empty)``; ``("overflow", None)`` if a viewer fell too far behind
(its socket should be closed so that the client reconnects and resumes); ``("wake", None)``
(``Subscription.nudge``) carries nothing: it ends a wait because the viewer's socket spoke or closed.

The polling fallback (:meth:`Hub.poll`) is served from the same watch: every poll keeps the
session's recent lines in a buffer (the last ``BUFFER_LINES``, contiguous from ``buf_floor``).
A polling request takes a lease on the watch (it lingers ``POLL_IDLE_TIMEOUT`` seconds after the
last request, then retires) and is answered from the buffer when the last poll is less than one
tick old and covers its cursor; otherwise it asks the watch for one more poll and waits for it.
So N polling viewers of one session cost at most one poll per tick between them, never one per
request; without WebSocket viewers a lease-only watch polls only when a request asks.

Thread-safety: one lock per hub guards the watches, their viewer sets and buffers; a condition
on that lock wakes polling requests when a poll was delivered. The watch threads use the app's
SQLAlchemy engine directly (short checkouts, no app context).
"""

from __future__ import annotations

import bisect
import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from flask import current_app
from psycopg.errors import UndefinedTable
from sqlalchemy import text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import ProgrammingError

from glyphoxa_htmx.core.authz import Actor, Perm, own, require
from glyphoxa_htmx.models import GatewaySession
from glyphoxa_htmx.services.transcripts import Line, qualified, schema_name

log = logging.getLogger(__name__)

POLL_INTERVAL = 0.5  # seconds between polls: a new line reaches the browser within a second
BATCH = 200  # lines per poll; a full batch is followed by another poll at once
MAX_QUEUE = 2000  # events a slow viewer may have pending before it is told to resync
ERROR_BACKOFF = 2.0
BUFFER_LINES = 1000  # recent lines a watch keeps for polling viewers
POLL_IDLE_TIMEOUT = 15.0  # a watch kept only by polling viewers retires this long after the last request
POLL_WAIT = 10.0  # longest a polling request waits for the watch's next poll


@dataclass(frozen=True)
class PollResult:
    """What one polling request gets: lines after its cursor, the state, and whether this is the
    end (the session ended and these are its last lines)."""

    lines: list[Line]
    state: str
    error: str
    ended: bool


@dataclass(eq=False)
class Subscription:
    watch: Watch
    cursor: int
    queue: queue.Queue[tuple[str, Any]] = field(default_factory=queue.Queue)
    state: str | None = None
    closed: bool = False
    # The viewer's sign-in (SHA-256 of the cookie token), re-checked by the hub for all viewers
    # of the process together every ``recheck`` seconds; ``signed_out`` is set (and a
    # ``("signed_out", None)`` event queued) once it no longer stands.
    token_hash: str = ""
    recheck: float = 0.0
    signed_out: bool = False

    def get(self, timeout: float) -> list[tuple[str, Any]]:
        """Wait up to ``timeout`` for events; return all that are pending ([] on timeout)."""
        try:
            events = [self.queue.get(timeout=timeout)]
        except queue.Empty:
            return []
        while True:
            try:
                events.append(self.queue.get_nowait())
            except queue.Empty:
                return events

    def nudge(self) -> None:
        """Wake the waiting ``get`` with nothing to deliver (``("wake", None)``, which a reader
        skips): the viewer's socket has something to say, or closed."""
        self.queue.put(("wake", None))

    def close(self) -> None:
        self.watch.hub.unsubscribe(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Watch:
    """The poller of one session: a daemon thread shared by all its viewers in this process."""

    def __init__(self, hub: Hub, tenant_id: str, session_id: str) -> None:
        self.hub = hub
        self.tenant_id = tenant_id
        self.session_id = session_id
        self.table = qualified(schema_name(tenant_id), "session_entries")
        self.subs: set[Subscription] = set()
        self.polls = 0  # database statements run by this watch (one per tick)
        self.state: str | None = None
        self.finished = False
        self.wake = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"live-{session_id[:8]}", daemon=True)
        self._table_ready = False
        # The polling viewers' shared state (all guarded by the hub lock):
        self.error = ""
        self.buffer: list[Line] = []  # every line with buf_floor < id <= the last one, in id order
        self.buf_floor: int | None = None  # None: nothing polled yet
        self.poll_cursor: int | None = None  # polling viewers' cursor, like a subscription's
        self.lease_until = 0.0  # monotonic; polling viewers keep the watch alive until then
        self.started = 0  # polls begun
        self.done = 0  # the last poll delivered (its number)
        self.done_at = 0.0  # monotonic time of that delivery
        self.need = 0  # a poll with this number (or higher) is wanted by a waiting request
        self.waiting: list[int] = []  # cursors of requests waiting for a poll
        self.final = False  # the session ended and everything up to its end was delivered

    # -- database

    def _poll(self, after: int) -> tuple[str | None, str, list[Line]]:
        """(state, error, lines after ``after``) in ONE statement; state None = no such session."""
        params = {"sid": self.session_id, "tid": self.tenant_id, "after": after, "n": BATCH, "tbl": self.table}
        with self.hub.engine.connect() as conn:
            self.polls += 1
            if not self._table_ready:
                # The worker creates tenant_<id> lazily: ask for state and whether the table exists now.
                row = conn.execute(
                    text(
                        "SELECT state, coalesce(error, '') AS error, to_regclass(:tbl) IS NOT NULL AS ready "
                        "FROM public.sessions WHERE id = :sid AND tenant_id = :tid"
                    ),
                    params,
                ).one_or_none()
                if row is None:
                    return None, "", []
                self._table_ready = bool(row.ready)
                if not self._table_ready:
                    return row.state, row.error, []
                self.polls += 1  # the table exists now: fetch its lines in this same tick
            rows = conn.execute(
                text(
                    "SELECT s.state, coalesce(s.error, '') AS error, e.id, e.speaker_id, e.speaker_name, e.npc_id, "
                    "e.text, e.timestamp FROM public.sessions s LEFT JOIN LATERAL ("
                    f"SELECT id, speaker_id, speaker_name, npc_id, text, timestamp FROM {self.table} "
                    "WHERE session_id = s.id AND id > :after ORDER BY id LIMIT :n) e ON true "
                    "WHERE s.id = :sid AND s.tenant_id = :tid ORDER BY e.id"
                ),
                params,
            ).all()
        if not rows:
            return None, "", []
        lines = [
            Line(
                id=int(r.id),
                session_id=self.session_id,
                speaker_id=r.speaker_id or "",
                speaker_name=r.speaker_name or "",
                npc_id=r.npc_id or "",
                text=r.text or "",
                timestamp=r.timestamp,
            )
            for r in rows
            if r.id is not None
        ]
        return rows[0].state, rows[0].error, lines

    # -- loop

    def _run(self) -> None:
        try:
            self._loop()
        except Exception:  # noqa: BLE001 - never leave viewers waiting on a dead poller
            log.exception("live poller for session %s crashed", self.session_id)
            with self.hub.lock:
                for sub in list(self.subs):
                    sub.queue.put(("overflow", None))  # their sockets close with 1013 and resume
                self.subs.clear()
                self._retire()

    def _low(self) -> int:
        cursors = [s.cursor for s in self.subs]
        if self.poll_cursor is not None:
            cursors.append(self.poll_cursor)
        return min(cursors) if cursors else 0

    def _loop(self) -> None:
        errors = 0
        while True:
            idle = 0.0
            with self.hub.lock:
                if not self.subs and self.need <= self.done:
                    idle = self.lease_until - time.monotonic()
                    if idle <= 0:
                        self._retire()
                        return
                else:
                    low = self._low()
                    self.started += 1
                    seq = self.started
            if idle:
                # Only polling viewers, and none waiting: sleep until one asks or the lease ends.
                self.wake.wait(idle)
                self.wake.clear()
                continue
            try:
                state, error, lines = self._poll(low)
                errors = 0
            except ProgrammingError as exc:
                if not isinstance(exc.orig, UndefinedTable):
                    raise
                self._table_ready = False  # the memory schema went away: ask for the session again
                continue
            except Exception as exc:  # noqa: BLE001 - keep watching through database hiccups
                errors += 1
                log.warning("live poll for session %s failed (%d): %s", self.session_id, errors, exc)
                self._table_ready = False
                self.wake.wait(min(ERROR_BACKOFF * errors, 10))
                self.wake.clear()
                continue
            if self._deliver(low, seq, state, error, lines):
                return
            if len(lines) >= BATCH:
                continue
            with self.hub.lock:
                if not self.subs:
                    continue  # polling viewers only: poll again when a request asks
            self.wake.wait(self.hub.interval)
            self.wake.clear()

    def _deliver(self, low: int, seq: int, state: str | None, error: str, lines: list[Line]) -> bool:
        """Hand out one poll's result; returns True when the watch has finished."""
        ended = state is None or state == "ended"
        with self.hub.lock:
            self.state = state
            self.error = error
            polling_covered = self.poll_cursor is None or self.poll_cursor >= low
            # Finish only when this poll covered every viewer (one that joined during the poll
            # with an older cursor is served by the next poll, then the end follows).
            complete = ended and len(lines) < BATCH and polling_covered and all(s.cursor >= low for s in self.subs)
            for sub in list(self.subs):
                if sub.cursor < low:
                    continue  # joined after this poll started: served by the next one
                fresh = [line for line in lines if line.id > sub.cursor]
                shown_state = state or "ended"
                if sub.state != shown_state and not complete:
                    sub.state = shown_state
                    self._put(sub, ("state", shown_state))
                if fresh:
                    sub.cursor = fresh[-1].id
                    self._put(sub, ("lines", fresh))
                if complete:
                    sub.state = "ended"
                    self._put(sub, ("ended", error if state else "gone"))
            self._remember(low, lines)
            if polling_covered and self.poll_cursor is not None and lines:
                self.poll_cursor = max(self.poll_cursor, lines[-1].id)
            self.done, self.done_at = seq, time.monotonic()
            if len(lines) >= BATCH:
                self.need = max(self.need, seq + 1)  # more lines are waiting: fetch them at once
            if complete:
                self.final = True
                self._retire()
            self.hub.changed.notify_all()
        return complete

    def _remember(self, low: int, lines: list[Line]) -> None:
        """Merge a poll (every line after ``low``, up to a batch) into the buffer. Called with
        the hub lock held."""
        top = self.buffer[-1].id if self.buffer else self.buf_floor
        if self.buf_floor is None or top is None or low > top:
            self.buffer, self.buf_floor = list(lines), low  # not contiguous with what we had: restart
        else:
            merged = {line.id: line for line in self.buffer}
            merged.update((line.id, line) for line in lines)
            self.buffer = [merged[i] for i in sorted(merged)]
            self.buf_floor = min(self.buf_floor, low)
        excess = len(self.buffer) - BUFFER_LINES
        if excess > 0:
            # Forget the oldest lines, but none that a waiting request still needs.
            keep_after = min(self.waiting) if self.waiting else None
            drop = 0
            while drop < excess and (keep_after is None or self.buffer[drop].id <= keep_after):
                drop += 1
            if drop:
                self.buf_floor = self.buffer[drop - 1].id
                del self.buffer[:drop]

    def _covers(self, after: int) -> bool:
        return self.done > 0 and self.buf_floor is not None and self.buf_floor <= after

    def _answer(self, after: int, limit: int) -> PollResult:
        ids = [line.id for line in self.buffer]
        start = bisect.bisect_right(ids, after)
        lines = self.buffer[start : start + limit]
        more = len(self.buffer) - start > limit
        state = self.state or "ended"
        error = self.error if self.state else "gone"
        return PollResult(lines=lines, state=state, error=error, ended=self.final and not more)

    def _put(self, sub: Subscription, event: tuple[str, Any]) -> None:
        if sub.closed:
            return
        if sub.queue.qsize() >= MAX_QUEUE:
            sub.closed = True
            self.subs.discard(sub)
            sub.queue.put(("overflow", None))
            return
        sub.queue.put(event)

    def _retire(self) -> None:
        """Called with the hub lock held."""
        self.finished = True
        if self.hub.watches.get(self.session_id) is self:
            del self.hub.watches[self.session_id]
        self.hub.changed.notify_all()  # polling requests waiting on a crashed watch give up


class Hub:
    """Per-process registry of session watches."""

    def __init__(self, engine: Engine, interval: float = POLL_INTERVAL) -> None:
        self.engine = engine
        self.interval = interval
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)  # a watch delivered a poll or retired
        self.watches: dict[str, Watch] = {}
        self.auth_checks = 0  # batched sign-in re-checks run (one statement per 1,000 viewers)
        self._auth_thread: threading.Thread | None = None

    # -- viewers' sign-ins, re-checked together

    def _signed_in_subs(self) -> list[Subscription]:
        """Called with the lock held."""
        return [sub for w in self.watches.values() for sub in w.subs if sub.token_hash and not sub.signed_out]

    def _ensure_auth_checker(self) -> None:
        """Called with the lock held."""
        if self._auth_thread is None or not self._auth_thread.is_alive():
            self._auth_thread = threading.Thread(target=self._auth_loop, name="live-auth", daemon=True)
            self._auth_thread.start()

    def _auth_loop(self) -> None:
        """Every open socket's sign-in is re-checked at its ``recheck`` interval, but for all of
        them at once: one query per tick per process, however many viewers (it was one query per
        viewer every 5 s, which at 1,000 viewers outnumbered the transcript polls and exhausted
        the pool when they all disconnected)."""
        from glyphoxa_htmx.services.sessions import viewers_signed_in

        errors = 0
        while True:
            with self.lock:
                subs = self._signed_in_subs()
                if not subs:
                    self._auth_thread = None
                    return
                wait = min(sub.recheck for sub in subs) or 5.0
            time.sleep(wait if not errors else min(wait * (errors + 1), 30.0))
            with self.lock:
                subs = self._signed_in_subs()
            if not subs:
                continue
            pairs = {(sub.token_hash, sub.watch.tenant_id) for sub in subs}
            try:
                with self.engine.connect() as conn:
                    valid = viewers_signed_in(conn, pairs)
                errors = 0
            except Exception as exc:  # noqa: BLE001 - keep sockets open through a database hiccup; retry
                errors += 1
                log.warning("live sign-in re-check failed (%d): %s", errors, exc)
                continue
            with self.lock:
                self.auth_checks += 1
                for sub in subs:
                    if (sub.token_hash, sub.watch.tenant_id) not in valid and not sub.closed:
                        sub.signed_out = True
                        sub.queue.put(("signed_out", None))

    def _watch(self, tenant_id: str, session_id: str) -> tuple[Watch, bool]:
        """The live watch of a session, or a new one (not started yet). Called with the lock held."""
        watch = self.watches.get(session_id)
        if watch is None or watch.finished or watch.tenant_id != tenant_id:
            watch = Watch(self, tenant_id, session_id)
            self.watches[session_id] = watch
            return watch, True
        return watch, False

    def subscribe(
        self, tenant_id: str, session_id: str, after: int = 0, *, token_hash: str = "", recheck: float = 5.0
    ) -> Subscription:
        """Start receiving a session's lines with id > ``after``. The caller has checked that
        the session belongs to ``tenant_id`` (the poll re-checks it in SQL). With ``token_hash``
        the viewer's sign-in is re-checked every ``recheck`` seconds (batched per process)."""
        with self.lock:
            watch, start = self._watch(tenant_id, session_id)
            sub = Subscription(watch=watch, cursor=max(0, int(after)), token_hash=token_hash, recheck=recheck)
            watch.subs.add(sub)
            if token_hash:
                self._ensure_auth_checker()
        if start:
            watch.thread.start()
        else:
            watch.wake.set()  # serve the newcomer without waiting for the next tick
        return sub

    def poll(
        self,
        tenant_id: str,
        session_id: str,
        after: int = 0,
        *,
        known_state: str | None = None,
        limit: int = 500,
        timeout: float = POLL_WAIT,
    ) -> PollResult | None:
        """One polling request: the session's lines with id > ``after`` (at most ``limit``), its
        state, and whether this is the end. Served from the watch's buffer when its last poll is
        fresh (under one tick old, and agreeing with ``known_state``, the state the caller just
        read) and covers ``after``; otherwise the watch polls once more, for every request
        waiting at that moment. None if no poll came within ``timeout`` (database trouble).
        The caller has checked that the session belongs to ``tenant_id``."""
        after = max(0, int(after))
        deadline = time.monotonic() + timeout
        with self.lock:
            watch, start = self._watch(tenant_id, session_id)
            watch.lease_until = time.monotonic() + POLL_IDLE_TIMEOUT  # the latest request sets the lease
            # With WebSocket viewers the watch polls every tick anyway: allow for the poll's own time.
            max_age = self.interval * (2 if watch.subs else 1)
            fresh = (
                watch._covers(after)
                and time.monotonic() - watch.done_at < max_age
                and (known_state is None or known_state == (watch.state or "ended"))
                and (watch.final or watch.state not in (None, "ended"))
            )
            if fresh:
                return watch._answer(after, limit)
            behind = watch.buf_floor is None or after < watch.buf_floor
            if behind and (watch.poll_cursor is None or after < watch.poll_cursor):
                watch.poll_cursor = after  # the next poll starts no later than this cursor
            target = watch.started + 1  # a poll that begins after this request registered
            watch.need = max(watch.need, target)
            watch.waiting.append(after)
            try:
                if start:
                    watch.thread.start()
                else:
                    watch.wake.set()
                while not (watch.done >= target and watch._covers(after)):
                    if watch.finished:
                        # Ended and fully delivered (nothing more can come), or crashed.
                        return watch._answer(after, limit) if watch.final and watch._covers(after) else None
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        return None
                    if watch.done >= target:
                        # Polled, but the buffer still starts after this cursor: one more poll.
                        target = watch.started + 1
                        watch.need = max(watch.need, target)
                        watch.wake.set()
                    self.changed.wait(remaining)
                return watch._answer(after, limit)
            finally:
                watch.waiting.remove(after)

    def unsubscribe(self, sub: Subscription) -> None:
        with self.lock:
            sub.closed = True
            sub.watch.subs.discard(sub)
            if not sub.watch.subs:
                sub.watch.wake.set()  # let the thread notice and retire

    def stats(self) -> dict[str, dict[str, Any]]:
        """session id -> {viewers, polls, state} (for tests and diagnostics)."""
        with self.lock:
            return {
                sid: {
                    "viewers": len(w.subs),
                    "polls": w.polls,
                    "state": w.state,
                    "thread": w.thread.name,
                    "buffered": len(w.buffer),
                }
                for sid, w in self.watches.items()
            }


_hub_lock = threading.Lock()


def hub() -> Hub:
    """This process's hub for the current app (created on first use, after any fork)."""
    from glyphoxa_htmx.extensions import db

    app = current_app
    existing: Hub | None = app.extensions.get("glyphoxa.live_hub")
    if existing is not None:
        return existing
    with _hub_lock:
        existing = app.extensions.get("glyphoxa.live_hub")
        if existing is None:
            from glyphoxa_htmx.core.deps import settings

            interval = settings().live_poll_interval or POLL_INTERVAL
            existing = app.extensions["glyphoxa.live_hub"] = Hub(db.engine, interval)
        return existing


def watch(actor: Actor, session_id: str, after: int = 0) -> Subscription:
    """Subscribe the actor to a session of their tenant (NotFound otherwise)."""
    from glyphoxa_htmx.services import sessions

    require(actor, Perm.VIEW_TRANSCRIPTS)
    session = sessions.get(actor, session_id)
    return hub().subscribe(actor.tenant_id, session.id, after)


def poll(actor: Actor, session: GatewaySession, after: int = 0, *, limit: int = 500) -> PollResult:
    """The polling fallback for a session of the actor's tenant (NotFound otherwise), served by
    this process's hub. When the hub can't answer in time: no lines, the state as read."""
    require(actor, Perm.VIEW_TRANSCRIPTS)
    own(actor, session)
    session_id, state, error = session.id, session.state, session.error or ""
    result = hub().poll(actor.tenant_id, session_id, after, known_state=state, limit=limit)
    if result is None:
        log.warning("live poll for session %s: no answer from the hub in time", session_id)
        return PollResult(lines=[], state=state, error=error, ended=False)
    return result
