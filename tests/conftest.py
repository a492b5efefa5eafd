"""Shared fixtures. Every test talks to a real PostgreSQL: the system server when reachable
(TEST_DATABASE_URL or 127.0.0.1:5432), else the embedded pgserver one under instance/."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from glyphoxa_htmx import embedded

ROOT = Path(__file__).resolve().parent.parent
TEST_DB = "glyphoxa_test"


def _server_url() -> str:
    explicit = os.environ.get("TEST_DATABASE_URL")
    if explicit:
        return explicit
    if embedded.reachable(embedded.SYSTEM_URL):
        return embedded.SYSTEM_URL
    return embedded.embedded_server_url(ROOT / "instance" / "pgtest")


@pytest.fixture(scope="session")
def database_url() -> str:
    """libpq URL (postgresql://...) of a database created empty for this test run."""
    return embedded.recreate_database(_server_url(), TEST_DB)
