"""Local services some tests need beyond PostgreSQL (Redis, a redis-server binary): reachable or
not, and what a missing one means: a skip on a developer's machine, a failure in CI (``CI`` set;
.ci/run sets it), where a skipped test would hide what it exists to prove."""

from __future__ import annotations

import os
import shutil

import pytest
import redis

REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


def redis_reachable(url: str = REDIS_URL) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1).ping())
    except redis.RedisError:
        return False


def require(ok: bool, what: str) -> None:
    """Fail under CI, skip elsewhere, when a needed service is missing (``what`` says which)."""
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(f"{what} (.ci/run should have provided it)")
        pytest.skip(what)


def require_redis(url: str = REDIS_URL) -> str:
    require(redis_reachable(url), f"Redis is not reachable at {url}")
    return url


def require_redis_server() -> str:
    binary = shutil.which("redis-server")
    require(binary is not None, "redis-server is not installed")
    return str(binary)
