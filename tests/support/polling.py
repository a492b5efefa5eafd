"""Waiting for asynchronous things (a session going active, a line arriving) without timed
assertions: poll until true, fail with a description after a generous timeout."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest


def wait_for(predicate: Callable[[], Any], timeout: float = 20.0, interval: float = 0.05, what: str = "condition"):
    """Poll until ``predicate()`` is truthy and return its value; fail the test on timeout."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_healthy(base: str, proc, timeout: float = 60.0) -> None:
    """Wait until a served app answers ``/healthz`` with 200; fail with the server's output if its
    process died, or after ``timeout`` seconds."""
    import requests

    deadline = time.monotonic() + timeout
    while True:
        try:
            if requests.get(base + "/healthz", timeout=1).status_code == 200:
                return
        except requests.RequestException:
            pass
        assert proc.poll() is None, proc.stdout.read().decode()
        assert time.monotonic() < deadline, "the server did not come up"
        time.sleep(0.2)
