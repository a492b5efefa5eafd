"""Sign-in answers cached per process (services/signin_cache.py), and revocation across processes:
a write that ends a sign-in is published on Redis and every other process forgets its answers at
once; without a live channel a process keeps an answer 3 s at most (fail closed)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from glyphoxa_htmx.embedded import libpq_url
from tests.support.polling import wait_for
from tests.support.services import REDIS_URL, redis_reachable, require_redis, require_redis_server

ROOT = Path(__file__).resolve().parent.parent

# Another process of the app: signs in as the given user, waits until it hears the channel, then
# answers each "get" on stdin with the status of GET /dashboard.
OTHER = """
import sys, time
from tests.conftest import Browser, make_settings
from glyphoxa_htmx.app import create_app
from glyphoxa_htmx.services import signin_cache
db_url, redis_url, user_id, tenant_id = sys.argv[1:5]
app = create_app(make_settings(db_url, redis_url=redis_url, signin_cache_seconds=300))
b = Browser(app).login(type("U", (), {"id": user_id, "tenant_id": tenant_id}))
deadline = time.monotonic() + 20
with app.app_context():
    while signin_cache.lifetime(300) != 300:
        assert time.monotonic() < deadline, "never heard the channel"
        time.sleep(0.05)
print("ready", flush=True)
for line in sys.stdin:
    print(b.get("/dashboard").status_code, flush=True)
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_change_made_in_one_process_ends_the_sign_in_cached_in_another(app, database_url, make_user):
    require_redis()
    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import User
    from glyphoxa_htmx.services import signin_cache
    from tests.conftest import make_settings

    user = make_user(role="dm")
    other = subprocess.Popen(
        [sys.executable, "-c", OTHER, database_url, REDIS_URL, user.id, user.tenant_id],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )

    def get() -> int:
        assert other.stdin is not None and other.stdout is not None
        other.stdin.write("get\n")
        other.stdin.flush()
        return int(other.stdout.readline())

    try:
        assert other.stdout is not None
        assert other.stdout.readline().strip() == "ready"
        assert get() == 200
        # Suspended behind the app's back (plain SQL, nobody publishes): the other process keeps
        # its answer past the 3 s it would keep one without the channel...
        with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
            conn.execute("UPDATE web.users SET status = 'suspended' WHERE id = %s", (user.id,))
        time.sleep(3.5)
        assert get() == 200
        # ...until a process of the app changes the sign-in and says so: then at once.
        here = create_app(make_settings(database_url, redis_url=REDIS_URL))
        with here.app_context():
            db.session.get(User, user.id).name = "Renamed elsewhere"
            db.session.commit()
        wait_for(lambda: get() == 303, timeout=2.0, what="the other process to drop the changed sign-in")
        signin_cache.init_app(here, "")
    finally:
        if other.stdin is not None:
            other.stdin.close()
        other.wait(timeout=10)


@pytest.fixture
def private_redis():
    """A Redis server of this test's own, to take away mid-test."""
    binary = require_redis_server()
    port = _free_port()
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"redis://127.0.0.1:{port}/0"
    wait_for(lambda: redis_reachable(url), timeout=10, what="the private redis-server")
    yield proc, url
    proc.kill()
    proc.wait(timeout=10)


def test_answers_are_kept_long_only_while_the_channel_answers(private_redis, database_url, make_user):
    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.services import signin_cache
    from tests.conftest import Browser, make_settings

    proc, url = private_redis
    apps = {
        "heard": create_app(make_settings(database_url, redis_url=url, signin_cache_seconds=300)),
        "nobody listens": create_app(
            make_settings(database_url, redis_url=f"redis://127.0.0.1:{_free_port()}/0", signin_cache_seconds=300)
        ),
        "no redis": create_app(make_settings(database_url, signin_cache_seconds=300)),
    }

    def lifetime(name: str) -> float:
        with apps[name].app_context():
            return signin_cache.lifetime(300)

    try:
        wait_for(lambda: lifetime("heard") == 300, timeout=5, what="the channel to be heard")
        assert lifetime("nobody listens") == signin_cache.UNHEARD_SECONDS
        assert lifetime("no redis") == signin_cache.UNHEARD_SECONDS
        b = Browser(apps["heard"]).login(make_user(role="dm"))
        assert b.get("/dashboard").status_code == 200
        assert signin_cache._entries  # the answer is cached
        proc.kill()  # the channel goes away: back to 3 s, and what was kept is forgotten
        wait_for(lambda: lifetime("heard") == signin_cache.UNHEARD_SECONDS, timeout=5, what="3 s lifetimes")
        wait_for(lambda: not signin_cache._entries, timeout=5, what="the cache to be emptied")
    finally:
        for application in apps.values():
            signin_cache.init_app(application, "")  # stops its listener thread


def test_the_last_seen_touch_reads_nothing_again(database_url, make_user):
    """About once a minute a miss records last_seen_at: in the sign-in's read itself (a
    data-modifying CTE, one round trip), committed; nothing is read again after it."""
    from sqlalchemy import event

    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.services.auth import hash_token
    from tests.conftest import Browser, make_settings

    app = create_app(make_settings(database_url, signin_cache_seconds=0))  # resolve on every request
    b = Browser(app).login(make_user(role="dm"))
    assert b.get("/dashboard").status_code == 200
    with psycopg.connect(libpq_url(database_url), autocommit=True) as conn:
        conn.execute(
            "UPDATE web.login_sessions SET last_seen_at = now() - interval '5 minutes' WHERE token_hash = %s",
            (hash_token(b.token),),
        )
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_rest) -> None:
        seen.append(" ".join(statement.split()))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        assert b.get("/dashboard").status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    touch = [i for i, s in enumerate(seen) if "UPDATE web.login_sessions SET last_seen_at" in s]
    assert touch == [0], seen  # the sign-in's read touches: one statement, the request's first
    assert not any("web.login_sessions" in s for s in seen[1:]), seen  # no reload after it
    assert len(seen) == 2, seen  # and the dashboard's own statement
    with psycopg.connect(libpq_url(database_url)) as conn:
        (age,) = conn.execute(
            "SELECT now() - last_seen_at FROM web.login_sessions WHERE token_hash = %s",
            (hash_token(b.token),),
        ).fetchone()
    assert age.total_seconds() < 60


def test_a_message_empties_the_caches_its_topic_names_and_anything_else_empties_all():
    """The channel carries topics: a campaign change empties the campaign directories and keeps the
    sign-ins; a sign-in change the reverse; a message in any other shape (a process of an older
    release sends its bare pid) or of an unknown topic empties every cache (fail closed)."""
    from glyphoxa_htmx.services import campaigns, signin_cache

    def generations() -> tuple[int, int]:
        return signin_cache._generation, campaigns.directory_generation()

    before = generations()
    signin_cache._forget(b"campaigns 4242")
    assert generations() == (before[0], before[1] + 1)
    signin_cache._forget(b"signin 4242")
    assert generations() == (before[0] + 1, before[1] + 1)
    for message in (b"4242", b"npcs 4242", b"", None, "\udcff".encode("utf-8", "surrogateescape")):
        now = generations()
        signin_cache._forget(message)
        assert generations() == (now[0] + 1, now[1] + 1), message


def test_a_campaign_renamed_in_one_process_empties_the_directories_of_the_others(database_url, make_user):
    """Over real Redis: a campaign written through the app publishes the campaigns topic after its
    commit (and nothing when the write rolls back); a campaigns message from another process empties
    this one's directories within moments and leaves its sign-ins alone."""
    import redis

    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.core.authz import Actor, Role
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.services import campaigns, signin_cache
    from tests.conftest import make_settings

    url = require_redis()
    app = create_app(make_settings(database_url, redis_url=url, signin_cache_seconds=300))
    user = make_user(role="dm")
    actor = Actor(user_id=user.id, tenant_id=user.tenant_id, role=Role.DM)
    listener = redis.Redis.from_url(url).pubsub()
    try:
        listener.subscribe(signin_cache.CHANNEL)
        wait_for(lambda: (m := listener.get_message(timeout=0.2)) and m["type"] == "subscribe", what="subscribed")

        def messages() -> list[str]:
            out = []
            while (m := listener.get_message(timeout=0.5)) is not None:
                if m["type"] == "message":
                    out.append(m["data"].decode())
            return out

        with app.test_request_context():
            cid = campaigns.create(actor, {"name": "Harbour Lights"}).id
            db.session.commit()
        assert [m.split()[0] for m in messages()] == ["campaigns"]
        with app.test_request_context():
            db.session.get(campaigns.Campaign, (user.tenant_id, cid)).name = "Never Saved"
            db.session.flush()
            db.session.rollback()
        assert messages() == []
        with app.app_context():
            wait_for(lambda: signin_cache.lifetime(300) == 300, timeout=10, what="this process hearing the channel")
        with app.test_request_context("/sessions/search"):
            from flask import g

            g.gx_read_only = True
            campaigns.keep_directory(user.tenant_id, campaigns.directory_generation(), [(cid, "Harbour Lights")])
        with app.app_context():
            assert campaigns.cached_directory(user.tenant_id) is not None
            signins = signin_cache._generation
            redis.Redis.from_url(url).publish(signin_cache.CHANNEL, "campaigns 1")
            wait_for(lambda: campaigns.cached_directory(user.tenant_id) is None, timeout=5, what="the directory gone")
            assert signin_cache._generation == signins
    finally:
        listener.close()
        signin_cache.init_app(app, "")  # stops its listener thread
