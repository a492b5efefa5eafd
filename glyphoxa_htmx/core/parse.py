"""Small, shared parsing of request values and patterns (one copy each)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import overload

# A Discord id (server, channel, user): a snowflake of 17 to 20 digits.
SNOWFLAKE_RE = re.compile(r"^\d{17,20}$")


@overload
def int_arg(value: str | None, default: int, *, minimum: int = 0) -> int: ...
@overload
def int_arg(value: str | None, default: None = None, *, minimum: int = 0) -> int | None: ...
def int_arg(value: str | None, default: int | None = None, *, minimum: int = 0) -> int | None:
    """``value`` as an int no smaller than ``minimum``; ``default`` when missing or malformed."""
    if value is None:
        return default
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number >= minimum else default


def like_pattern(q: str) -> str:
    """An ILIKE pattern matching ``q`` literally anywhere (``%``, ``_`` and ``\\`` escaped)."""
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


# Characters a PostgreSQL ``text`` value can't hold: NUL, and lone UTF-16 surrogates (which
# can't be encoded as UTF-8 at all). Any request parameter containing one is refused up front.
UNSTORABLE_RE = re.compile("[\x00\ud800-\udfff]")


def unstorable(values: Iterable[object]) -> bool:
    """Whether any of the strings in ``values`` holds a character PostgreSQL text can't store."""
    return any(isinstance(v, str) and UNSTORABLE_RE.search(v) for v in values)
