"""One policy for what a process keeps between requests (issue 18).

Formatted dates, rendered rows, compiled statements, resolved sign-ins... each is kept in a
:class:`Memo`: a plain ``dict`` for lookups (``get``, ``in``, ``[]`` are the built-in ones, no
Python call on a hit) with one way in, :meth:`Memo.keep`, which empties the memo when it is full
before adding.

Why emptied when full and not least-recently-used: a hit must stay a bare dict lookup. Jinja's
LRU cache did a locked ``deque.remove`` on every hit (8.3 µs against 2.5 µs for a dict, the
template cache's own measurement), and a hit is what a memo is for. Each limit is sized above the
working set of 1,000 tenants browsing (the figures are at each memo), so emptying is rare; when
it happens, what is still in use comes back at the cost of one miss each. The limit is what bounds
the memory: a memo never grows past it, whatever the keys.

``size`` counts entries unless the caller weighs them (rendered markdown counts characters);
:meth:`Memo.keep` takes a lock so the count and the dict change together under gthread (a miss
only: hits take no lock). Removing one entry (``pop``, ``del``) doesn't lower the count: the memo
is then emptied a little early, never late.
"""

from __future__ import annotations

import threading
from typing import TypeVar

K = TypeVar("K")
V = TypeVar("V")


class Memo(dict[K, V]):
    """A bounded per-process memo: read it like a dict, add with :meth:`keep`."""

    __slots__ = ("limit", "used", "_lock")

    def __init__(self, limit: int) -> None:
        super().__init__()
        if limit < 1:
            raise ValueError("a memo's limit must be at least 1")
        self.limit = limit
        self.used = 0  # entries (or the callers' sizes) kept since it was last emptied
        self._lock = threading.Lock()

    def keep(self, key: K, value: V, size: int = 1) -> V:
        """Add ``value`` under ``key`` (emptying the memo first if this would pass its limit) and
        return it. A value larger than the whole limit is returned, not kept. A key kept again
        (an entry renewed, or two threads that missed together) replaces its value and is
        counted once: its size is taken to be the same."""
        if size > self.limit:
            return value
        with self._lock:
            if key in self:
                self[key] = value
                return value
            if self.used + size > self.limit:
                super().clear()
                self.used = 0
            self[key] = value
            self.used += size
        return value

    def clear(self) -> None:
        with self._lock:
            super().clear()
            self.used = 0
