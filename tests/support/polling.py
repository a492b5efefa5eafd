"""Waiting for asynchronous things (a session going active, a line arriving) without timed
assertions: poll until true, fail with a description after a generous timeout."""

from __future__ import annotations

import time
from typing import Any, Callable

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
