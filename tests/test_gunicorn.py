"""The production entry point under gunicorn with several workers: it serves, and /metrics
aggregates every worker (Prometheus multiprocess mode)."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_gunicorn_workers_share_metrics(app, database_url, tmp_path):
    port = _free_port()
    env = {
        **os.environ,
        "GLYPHOXA_ENV": "development",
        "DATABASE_URL": database_url,
        "SECRET_KEY": "g" * 40,
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "WEB_CONCURRENCY": "2",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "LOG_LEVEL": "WARNING",
    }
    gunicorn = Path(sys.executable).with_name("gunicorn")
    proc = subprocess.Popen([str(gunicorn), "-c", "deploy/gunicorn.conf.py", "wsgi:app"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(base + "/healthz", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert proc.poll() is None, proc.stdout.read().decode()
            assert time.monotonic() < deadline, "gunicorn did not come up"
            time.sleep(0.2)
        for _ in range(40):  # the landing page: /auth/* allows only 10 a minute per address
            assert requests.get(base + "/", timeout=5).status_code == 200
        body = requests.get(base + "/metrics", timeout=5).text
        counts = re.findall(
            r'http_server_duration_seconds_count\{method="GET",route="/",status_code="200"\} (\S+)', body)
        assert counts and float(counts[0]) == 40.0
        assert any(name.startswith("histogram_") for name in os.listdir(tmp_path / "prom"))
    finally:
        proc.terminate()
        proc.wait(timeout=20)
