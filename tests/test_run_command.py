"""`make run` end to end: `glyphoxa-web run` on the embedded defaults (its own PostgreSQL in a
temporary instance dir), stopped the way a terminal or a process manager stops it — a signal to
its process group — must leave no PostgreSQL behind (pg_ctl puts the postmaster in a session of
its own, so the signal never reaches it directly)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

CLI = Path(sys.executable).with_name("glyphoxa-web")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _postgres_pids(pgdata: Path) -> list[int]:
    """Processes running a postgres binary on this data directory (from /proc, any user)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if cmdline and cmdline[0].endswith(b"postgres") and str(pgdata).encode() in b" ".join(cmdline):
            found.append(int(entry.name))
    return found


def _wait_http(url: str, proc: subprocess.Popen, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"glyphoxa-web run exited early with {proc.returncode}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise AssertionError(f"{url} never answered")


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_to_the_process_group_stops_the_embedded_postgres(tmp_path, sig):
    port = _free_port()
    instance = tmp_path / "instance"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "GATEWAY_", "GLYPHOXA_"))}
    env.update(GLYPHOXA_INSTANCE_DIR=str(instance), PORT=str(port), HOST="127.0.0.1", DATABASE_URL="")
    log = (tmp_path / "run.log").open("wb")
    proc = subprocess.Popen(
        [str(CLI), "run"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
    )  # its own process group, like `make run` in a terminal
    pgdata = instance / "pgdata"
    try:
        _wait_http(f"http://127.0.0.1:{port}/", proc, timeout=120)
        assert _postgres_pids(pgdata), "the embedded PostgreSQL should be running"
        os.killpg(proc.pid, sig)
        proc.wait(timeout=60)
        deadline = time.monotonic() + 20
        while _postgres_pids(pgdata) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _postgres_pids(pgdata) == [], "the embedded PostgreSQL outlived `glyphoxa-web run`"
        output = (tmp_path / "run.log").read_text(errors="replace")
        # pgserver's INFO chatter (every initdb/pg_ctl command line and its output) stays off the console.
        assert '"logger": "pgserver"' not in output
        assert "Running commandline" not in output
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        for pid in _postgres_pids(pgdata):  # never leave a server behind, even when the test fails
            os.kill(pid, signal.SIGQUIT)
