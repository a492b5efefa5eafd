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


def test_the_general_class_short_path_counts_under_flask_limiters_keys(app, database_url, make_user):
    user = make_user(role="tenant_owner")
    out = subprocess.run(
        [sys.executable, "-c", FAST_PATH, database_url, user.id, user.tenant_id],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
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
