"""Small, shared parsing of request values and patterns (one copy each)."""

from __future__ import annotations

import re

# A Discord id (server, channel, user): a snowflake of 17 to 20 digits.
SNOWFLAKE_RE = re.compile(r"^\d{17,20}$")


def int_arg(value, default: int | None = None, *, minimum: int = 0) -> int | None:
    """``value`` as an int no smaller than ``minimum``; ``default`` when missing or malformed."""
    try:
        number = int(value)
    except (TypeError, ValueError):
        return default
    return number if number >= minimum else default


def like_pattern(q: str) -> str:
    """An ILIKE pattern matching ``q`` literally anywhere (``%``, ``_`` and ``\\`` escaped)."""
    return "%" + q.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
