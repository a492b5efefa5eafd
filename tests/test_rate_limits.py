"""Rate limits in production are shared by every process through Redis (REDIS_URL)."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

from tests.support.services import REDIS_URL, require_redis

ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import json, sys
from tests.conftest import make_settings
from glyphoxa_htmx.app import create_app
db_url, redis_url, ip = sys.argv[1:4]
app = create_app(make_settings(db_url, redis_url=redis_url, discord_client_id="id", discord_client_secret="s"))
client = app.test_client()
print(json.dumps([client.get("/auth/discord", environ_base={"REMOTE_ADDR": ip}).status_code for _ in range(6)]))
"""


def test_two_processes_share_one_limit_through_redis(app, database_url):
    require_redis(REDIS_URL)
    ip = f"127.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.7"  # a fresh rate-limit key

    def run() -> list[int]:
        out = subprocess.run(
            [sys.executable, "-c", SCRIPT, database_url, REDIS_URL, ip],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        return json.loads(out.stdout.strip().splitlines()[-1])

    first, second = run(), run()
    assert first == [302] * 6
    assert second == [302] * 4 + [429] * 2  # the limit is 10/min per IP across both processes


# The general class takes a short path (core/ratelimits.py) for endpoints whose only limit it is;
# counts must land under Flask-Limiter's own keys, and every other endpoint keeps Flask-Limiter's
# resolution. In a subprocess: the limiter is one object per process and init_app rebinds it.
FAST_PATH = """
import json, sys
from tests.conftest import Browser, make_settings
from glyphoxa_htmx.app import create_app
from glyphoxa_htmx.core import ratelimits
from glyphoxa_htmx.extensions import limiter
db_url, user, tenant = sys.argv[1:4]
app = create_app(make_settings(db_url, rate_limit_general="4 per minute"))
b = Browser(app).login(type("U", (), {"id": user, "tenant_id": tenant}))
codes = [b.get("/campaigns").status_code for _ in range(3)]
with app.test_request_context("/campaigns"):
    item = ratelimits._plan(app, "campaigns.index")[0]
    left = limiter.limiter.get_window_stats(item, "user:" + user, "campaigns.index").remaining
    plans = {ep: ratelimits._plan(app, ep) is ratelimits._SLOW for ep in
             ("campaigns.index", "npcs.voice_preview", "admin.index", "health.healthz", "static")}
codes += [b.get("/campaigns").status_code for _ in range(2)]
last = b.get("/campaigns")
print(json.dumps({"codes": codes, "left": left, "slow": plans, "retry_after": last.headers.get("Retry-After")}))
"""


def _script(script: str, *args: str, timeout: int = 120) -> dict:
    """Run a test script in its own process (the limiter is one object per process and init_app
    rebinds it) and return the JSON it prints last."""
    out = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_the_general_class_short_path_counts_under_flask_limiters_keys(app, database_url, make_user):
    user = make_user(role="tenant_owner")
    result = _script(FAST_PATH, database_url, user.id, user.tenant_id)
    assert result["codes"] == [200] * 4 + [429]
    assert result["left"] == 1  # three hits on Flask-Limiter's own counter for this user and page
    assert int(result["retry_after"]) > 0  # the refusal went through Flask-Limiter, with its context
    assert result["slow"] == {
        "campaigns.index": False,  # general only: the short path
        "npcs.voice_preview": True,  # a limit of its own
        "admin.index": True,  # a blueprint class (admin)
        "health.healthz": True,  # exempt
        "static": True,
    }


# The general class with Redis: each process counts its hits and sends them in one pipeline every
# FLUSH_SECONDS (core/ratelimits.py Batched); near the limit every hit goes to Flask-Limiter again.
BATCHED = """
import json, sys
from tests.conftest import Browser, make_settings
from glyphoxa_htmx.app import create_app
from glyphoxa_htmx.core import ratelimits
from glyphoxa_htmx.extensions import limiter
db_url, redis_url, user, tenant, n, limit, flush = sys.argv[1:8]
ratelimits.FLUSH_SECONDS = float(flush)
# A held-off flush thread must not also make the process fall back to Redis for every hit: on a
# busy machine ten requests (the in-request flush) can take longer than the 2 s staleness bound.
ratelimits.STALE_SECONDS = max(ratelimits.STALE_SECONDS, 10 * float(flush))
app = create_app(make_settings(db_url, redis_url=redis_url, rate_limit_general=f"{limit} per minute"))
b = Browser(app).login(type("U", (), {"id": user, "tenant_id": tenant}))
responses = [b.get("/campaigns") for _ in range(int(n))]
batched = ratelimits._batched_for(limiter.limiter)
with app.test_request_context("/campaigns"):
    item = ratelimits._plan(app, "campaigns.index")[0]
    def left():
        return limiter.limiter.get_window_stats(item, "user:" + user, "campaigns.index").remaining
    before = left()
    batched.flush()
    after = left()
print(json.dumps({
    "codes": [r.status_code for r in responses],
    "retry_after": [r.headers.get("Retry-After") for r in responses if r.status_code == 429][:1],
    "before": before, "after": after, "batched": batched is not None,
}))
"""


def _batched_run(database_url, user, n: int, limit: int, flush: float = 0.2) -> dict:
    return _script(BATCHED, database_url, REDIS_URL, user.id, user.tenant_id, str(n), str(limit), str(flush))


def test_batched_hits_reach_flask_limiters_key_in_redis(app, database_url, make_user):
    """55 requests under 200 a minute, with the flush thread held off: a twentieth of the limit
    (10) unflushed hits make the request flush, so Redis holds 50 and the process 5 more until
    its next flush; then Redis holds all 55, under Flask-Limiter's own key."""
    require_redis(REDIS_URL)
    result = _batched_run(database_url, make_user(role="tenant_owner"), 55, 200, flush=3600)
    assert result["batched"] is True
    assert result["codes"] == [200] * 55
    assert (result["before"], result["after"]) == (150, 145)


def test_batched_limit_is_exact_across_processes_taking_turns(app, database_url, make_user):
    """60 a minute: one process spends 40 (all counted locally, sent in batches and at exit),
    then another the rest; near the limit every hit is Flask-Limiter's again, so exactly 20 more
    pass and the refusals carry Retry-After, as before batching. (Two processes serving at once
    may pass it by the hits one holds unsent: tests/test_gunicorn.py.)"""
    require_redis(REDIS_URL)
    user = make_user(role="tenant_owner")
    first = _batched_run(database_url, user, 40, 60)
    assert first["codes"] == [200] * 40 and first["after"] == 20
    second = _batched_run(database_url, user, 30, 60)
    assert second["codes"] == [200] * 20 + [429] * 10
    assert int(second["retry_after"][0]) > 0
    assert second["after"] == 0


def test_batched_counting_fails_closed_when_redis_goes_away():
    """Without a good flush for STALE_SECONDS (or a first answer from Redis), every hit goes to
    Flask-Limiter's exact path; hits a failed flush couldn't send are kept, not dropped."""
    import time

    import redis
    from limits import parse
    from limits.storage import RedisStorage

    from glyphoxa_htmx.core import ratelimits

    require_redis(REDIS_URL)
    item = parse("600 per minute")
    who = f"user:{uuid.uuid4()}"

    dead = ratelimits.Batched(RedisStorage("redis://127.0.0.1:1/0", socket_connect_timeout=0.2), flush_seconds=3600)
    assert dead.hit([item], who, "campaigns.index") is False  # never answered: not batched
    dead.stopped = True

    storage = RedisStorage(REDIS_URL)
    live = ratelimits.Batched(storage, flush_seconds=3600)
    assert [live.hit([item], who, "campaigns.index") for _ in range(5)] == [True] * 5
    name = storage.prefixed_key(item.key_for(who, "campaigns.index"))
    client = redis.Redis.from_url(REDIS_URL)
    assert client.get(name) is None  # counted here, not yet sent
    live.storage = RedisStorage("redis://127.0.0.1:1/0", socket_connect_timeout=0.2)  # Redis "goes away"
    live.flush()  # fails: the five stay pending
    live._ok_at -= ratelimits.STALE_SECONDS + 1  # ...and no good flush since
    assert live.hit([item], who, "campaigns.index") is False
    live.storage = storage  # back
    live.flush()
    assert int(client.get(name)) == 5 and 0 < client.pttl(name) <= 60_000
    assert live.hit([item], who, "campaigns.index") is True
    live.stopped = True
    client.delete(name)
    time.sleep(0)  # (the flush thread of each ends at its next wake-up)


def test_a_flush_sends_only_keys_with_new_hits_and_ended_windows_are_forgotten_every_few_seconds(monkeypatch):
    """A flush sends the keys hit since the last one, each once with all its hits, and nothing
    when nothing was hit (issue 18: it no longer scans every key the process knows); the flush
    thread forgets ended windows at most every PRUNE_SECONDS, never a key with unsent hits."""
    import redis
    from limits import parse
    from limits.storage import RedisStorage

    from glyphoxa_htmx.core import ratelimits

    require_redis(REDIS_URL)
    storage = RedisStorage(REDIS_URL)
    batched = ratelimits.Batched(storage, flush_seconds=3600)
    item = parse("600 per minute")
    users = [f"user:{uuid.uuid4()}" for _ in range(3)]
    names = [storage.prefixed_key(item.key_for(who, "campaigns.index")) for who in users]
    client = redis.Redis.from_url(REDIS_URL)
    sent: list[int] = []
    script = storage.lua_incr_expire

    def counting(keys, args, client=None):
        sent.append(args[1])
        return script(keys, args, client=client)

    monkeypatch.setattr(storage, "lua_incr_expire", counting)
    try:
        for hits, who in zip((3, 1, 2), users, strict=True):
            assert all(batched.hit([item], who, "campaigns.index") for _ in range(hits))
        batched.flush()
        assert sorted(sent) == [1, 2, 3] and [int(client.get(n)) for n in names] == [3, 1, 2]
        sent.clear()
        batched.flush()
        assert sent == []  # nothing hit since
        assert batched.hit([item], users[1], "campaigns.index")
        batched.flush()
        assert sent == [1] and int(client.get(names[1])) == 2

        # Every window "ended": the flush thread forgets them only once PRUNE_SECONDS have passed
        # since it last did, and keeps the one with a hit not sent yet.
        for count in batched._counts.values():
            count.until = count.exact_until = 0.0
        assert batched.hit([item], users[2], "campaigns.index")
        batched.flush(prune=True)
        assert len(batched._counts) == 3  # pruned less than PRUNE_SECONDS ago (at creation)
        assert int(client.get(names[2])) == 3
        assert batched.hit([item], users[2], "campaigns.index")
        for count in batched._counts.values():
            count.until = count.exact_until = 0.0
        batched._pruned_at -= ratelimits.PRUNE_SECONDS
        sent.clear()
        batched.flush(prune=True)  # (the prune runs before the send: the unsent key must survive it)
        assert sent == [1] and int(client.get(names[2])) == 4
        assert [c.key for c in batched._counts.values()] == [item.key_for(users[2], "campaigns.index")]
    finally:
        batched.stopped = True
        client.delete(*names)


def test_small_limits_are_never_batched():
    """Under 40 a window a twentieth is under two hits: every hit goes to Redis, as before."""
    from limits import parse
    from limits.storage import RedisStorage

    from glyphoxa_htmx.core import ratelimits

    require_redis(REDIS_URL)
    batched = ratelimits.Batched(RedisStorage(REDIS_URL), flush_seconds=3600)
    who = f"user:{uuid.uuid4()}"
    assert batched.hit([parse("39 per minute")], who, "x") is False
    assert batched.hit([parse("40 per minute")], who, "y") is True
    batched.stopped = True


def test_batched_key_without_expiry_is_not_taken_for_a_new_window():
    """A window key with no expiry (nothing of ours writes one; a hand-made one, say) keeps its
    count: the batcher treats it as a whole window still running, so a count near the limit sends
    every hit to Flask-Limiter (fail closed) instead of counting on from zero."""
    import redis
    from limits import parse
    from limits.storage import RedisStorage

    from glyphoxa_htmx.core import ratelimits

    require_redis(REDIS_URL)
    storage = RedisStorage(REDIS_URL)
    batched = ratelimits.Batched(storage, flush_seconds=3600)
    item = parse("600 per minute")
    who = f"user:{uuid.uuid4()}"
    name = storage.prefixed_key(item.key_for(who, "campaigns.index"))
    client = redis.Redis.from_url(REDIS_URL)
    client.set(name, 590)  # no TTL
    try:
        assert batched.hit([item], who, "campaigns.index") is True  # nothing known yet
        batched.flush()
        assert int(client.get(name)) == 591
        assert batched.hit([item], who, "campaigns.index") is False
    finally:
        batched.stopped = True
        client.delete(name)


# Flask-Limiter's after-request and teardown hooks run only on requests that made its context
# (core/ratelimits.py _skip_unused_context): a limit that deducts after the response still counts.
HOOKS = """
import json, sys
from flask import request
from flask.globals import _cv_request
from tests.conftest import Browser, make_settings
from glyphoxa_htmx.app import create_app
from glyphoxa_htmx.extensions import limiter
db_url, user, tenant = sys.argv[1:4]
app = create_app(make_settings(db_url))
seen = {}

@app.route("/_deducts")
@limiter.limit("3 per minute", key_func=lambda: "deducts", deduct_when=lambda r: r.status_code == 200)
def deducts():
    return "ok" if request.args.get("ok") else ("no", 400)

@app.after_request
def note(response):
    seen[request.path] = hasattr(_cv_request.get(), "_limiter_request_context")
    return response

b = Browser(app).login(type("U", (), {"id": user, "tenant_id": tenant}))
fast = b.get("/campaigns").status_code
failed = [b.get("/_deducts").status_code for _ in range(4)]  # not 200: nothing deducted
counted = [b.get("/_deducts?ok=1").status_code for _ in range(4)]
print(json.dumps({"fast": fast, "seen": seen, "failed": failed, "counted": counted}))
"""


def test_flask_limiters_hooks_still_run_when_its_check_did(app, database_url, make_user):
    user = make_user(role="tenant_owner")
    result = _script(HOOKS, database_url, user.id, user.tenant_id)
    assert result["fast"] == 200 and result["seen"]["/campaigns"] is False  # no context made
    assert result["seen"]["/_deducts"] is True
    assert result["failed"] == [400] * 4  # failures don't count toward the limit...
    assert result["counted"] == [200, 200, 200, 429]  # ...successes do, after the response
