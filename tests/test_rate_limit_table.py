"""The plan §7 rate-limit table, class by class: each limit is hit at its configured count,
counted across two processes that share Redis, and a 429 says when to come back (Retry-After)
as a full page, or as a toast for htmx."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.services import REDIS_URL, require_redis

ROOT = Path(__file__).resolve().parent.parent

# One process: runs each job (sign in as a user, make n requests to a url, plain or htmx) and
# prints, per job, the statuses and the last response's Retry-After, HX-Trigger and body.
SCRIPT = """
import json, sys
from tests.conftest import Browser, make_settings
from glyphoxa_htmx.app import create_app
db_url, redis_url, general, admin, jobs = sys.argv[1:6]
app = create_app(make_settings(db_url, redis_url=redis_url, rate_limit_general=general, rate_limit_admin=admin))
out = []
for job in json.loads(jobs):
    b = Browser(app).login(type("U", (), {"id": job["user"], "tenant_id": job["tenant"]}))
    codes, resp = [], None
    for _ in range(job["n"]):
        resp = b.get(job["url"], htmx=job.get("htmx", False))
        codes.append(resp.status_code)
    out.append({"codes": codes, "retry_after": resp.headers.get("Retry-After"),
                "trigger": resp.headers.get("HX-Trigger"), "body": resp.get_data(as_text=True)[:4000]})
print(json.dumps(out))
"""


@pytest.fixture
def shared_redis():
    return require_redis(REDIS_URL)


def _run(database_url, jobs, *, general="7 per minute", admin="5 per minute") -> list[dict]:
    spec = [
        {"user": u.id, "tenant": u.tenant_id, "url": url, "n": n, **extra}
        for u, url, n, *rest in jobs
        for extra in [rest[0] if rest else {}]
    ]
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, database_url, REDIS_URL, general, admin, json.dumps(spec)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


# (class, role, url, configured count in these runs)
CLASSES = [
    ("general", "tenant_owner", "/campaigns", 7),
    ("general", "dm", "/usage", 7),
    ("admin", "super_admin", "/admin/", 5),
    ("admin", "super_admin", "/admin/audit", 5),
]


def test_each_class_hits_its_limit_across_two_processes(shared_redis, app, database_url, make_user):
    users = [make_user(role=role) for _, role, _, _ in CLASSES]
    others = [make_user(role=role) for _, role, _, _ in CLASSES]
    first = _run(database_url, [(u, url, limit - 2) for u, (_, _, url, limit) in zip(users, CLASSES, strict=True)])
    second = _run(
        database_url,
        [(u, url, 4) for u, (_, _, url, _) in zip(users, CLASSES, strict=True)]
        + [(o, url, 1) for o, (_, _, url, _) in zip(others, CLASSES, strict=True)],
    )
    for i, (klass, _, url, limit) in enumerate(CLASSES):
        assert first[i]["codes"] == [200] * (limit - 2), (klass, url)
        assert second[i]["codes"] == [200] * 2 + [429] * 2, (klass, url)  # one budget, shared through Redis
        assert int(second[i]["retry_after"]) > 0, (klass, url)
        assert "Slow down" in second[i]["body"], (klass, url)  # the full error page
        assert second[len(CLASSES) + i]["codes"] == [200], (klass, url)  # another user: a budget of their own


def test_admin_class_replaces_the_general_one_and_htmx_gets_a_toast(shared_redis, app, database_url, make_user):
    """An operator page counts against the admin class only (a lower general class doesn't
    refuse the sixth request); an htmx request over its limit gets the toast and Retry-After."""
    operator, owner = make_user(role="super_admin"), make_user(role="tenant_owner")
    admin_run, htmx_run = _run(
        database_url,
        [(operator, "/admin/tenants", 6), (owner, "/campaigns", 4, {"htmx": True})],
        general="3 per minute",
        admin="5 per minute",
    )
    assert admin_run["codes"] == [200] * 5 + [429]
    assert htmx_run["codes"] == [200] * 3 + [429]
    assert int(htmx_run["retry_after"]) > 0
    assert "Wait a minute" in json.dumps(json.loads(htmx_run["trigger"]))


def test_a_malformed_class_refuses_to_start(database_url):
    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.config import ConfigError
    from tests.conftest import make_settings

    with pytest.raises(ConfigError, match="RATE_LIMIT_ADMIN"):
        create_app(make_settings(database_url, rate_limit_admin="lots"))
