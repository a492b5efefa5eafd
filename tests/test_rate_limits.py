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
