"""Helpers for the session tests: the app on a real HTTP server thread (werkzeug, threaded, so
flask-sock WebSockets work), a real WebSocket client, gateway tenants and campaigns, and
polling without timed assertions."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
import websocket  # websocket-client
from werkzeug.serving import make_server

from tests.support.polling import wait_for  # noqa: F401 - re-exported for the tests


def snowflake() -> str:
    return str(100000000000000000 + uuid.uuid4().int % 10**17)


class LiveServer:
    def __init__(self, app) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.thread = threading.Thread(target=self.server.serve_forever, name="live-server", daemon=True)
        self.thread.start()
        self.host = f"127.0.0.1:{self.server.server_port}"
        self.url = f"http://{self.host}"

    def ws_url(self, path: str) -> str:
        return f"ws://{self.host}{path}"

    def connect(self, path: str, token: str | None, *, origin: str | None = "", timeout: float = 20.0):
        """A WebSocket client; ``origin=''`` means this server's own origin, None sends none."""
        kwargs: dict[str, Any] = {"timeout": timeout}
        if token:
            kwargs["cookie"] = f"gx_session={token}"
        if origin is None:
            kwargs["suppress_origin"] = True
        else:
            kwargs["origin"] = origin or self.url
        return websocket.create_connection(self.ws_url(path), **kwargs)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def handshake_status(server: LiveServer, path: str, token: str | None, **kw) -> int:
    """The HTTP status of a refused handshake (101 if it was accepted)."""
    try:
        ws = server.connect(path, token, **kw)
    except websocket.WebSocketBadStatusException as exc:
        return exc.status_code
    ws.close()
    return 101


class Reader:
    """Collects what a WebSocket client receives: transcript line ids in order, other frames,
    and the close code."""

    def __init__(self, ws) -> None:
        self.ws = ws
        self.frames: list[str] = []
        self.close_code: int | None = None

    def line_ids(self) -> list[int]:
        import re

        ids: list[int] = []
        for frame in self.frames:
            ids += [int(m) for m in re.findall(r'data-line-id="(\d+)"', frame)]
        return ids

    def read_until(self, predicate: Callable[[Reader], bool], timeout: float = 30.0, what: str = "frames") -> Reader:
        deadline = time.monotonic() + timeout
        while not predicate(self):
            if self.close_code is not None:
                pytest.fail(f"socket closed ({self.close_code}) before {what}")
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"timed out after {timeout}s waiting for {what}")
            self.ws.settimeout(remaining)
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                continue
            except websocket.WebSocketConnectionClosedException:
                self.close_code = self.close_code or 1006
                continue
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            elif opcode == websocket.ABNF.OPCODE_TEXT:
                self.frames.append(data.decode())
        return self

    def read_to_close(self, timeout: float = 30.0) -> Reader:
        deadline = time.monotonic() + timeout
        while self.close_code is None:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                pytest.fail(f"timed out after {timeout}s waiting for the socket to close")
            self.ws.settimeout(remaining)
            try:
                opcode, data = self.ws.recv_data(control_frame=True)
            except websocket.WebSocketTimeoutException:
                continue
            except websocket.WebSocketConnectionClosedException:
                self.close_code = 1006
                break
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                self.close_code = int.from_bytes(data[:2], "big") if len(data) >= 2 else 1005
            elif opcode == websocket.ABNF.OPCODE_TEXT:
                self.frames.append(data.decode())
        return self


# ---- gateway-side setup --------------------------------------------------------------------


def gateway_tenant(app, tenant_id: str, *, guilds: int = 1) -> list[str]:
    """Register the tenant with the (simulated) gateway; returns its guild ids."""
    guild_ids = [snowflake() for _ in range(guilds)]
    app.extensions["glyphoxa.gateway"].create_tenant(tenant_id, license_tier="shared", guild_ids=guild_ids)
    return guild_ids


def make_campaign(app, tenant_id: str, name: str = "The Salt Road") -> str:
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import Campaign

    campaign_id = "c_" + uuid.uuid4().hex[:10]
    with app.app_context():
        db.session.add(Campaign(id=campaign_id, tenant_id=tenant_id, name=name))
        db.session.commit()
    return campaign_id


def seed(database_url: str, tenant_id: str, campaign_id: str, sessions: int = 2) -> list[str]:
    """Past sessions with transcripts, graph and recaps; returns their ids (oldest first)."""
    from glyphoxa_htmx.simulator.seed import seed_history

    seed_history(
        database_url, tenant_id, campaign_id, [{"name": "Grimble Ashfoot"}, {"name": "Sister Vey"}], sessions=sessions
    )
    with psycopg.connect(database_url) as conn:
        return [
            r[0]
            for r in conn.execute(
                "SELECT id FROM public.sessions WHERE tenant_id = %s ORDER BY started_at", (tenant_id,)
            )
        ]


def sql(database_url: str, query: str, params: tuple = ()):
    with psycopg.connect(database_url, autocommit=True) as conn:
        cur = conn.execute(query, params)
        return cur.fetchall() if cur.description else None


def stop_live_sessions(app, database_url: str, tenant_id: str) -> None:
    client = app.extensions["glyphoxa.gateway"]
    for (sid,) in (
        sql(database_url, "SELECT id FROM public.sessions WHERE tenant_id = %s AND state <> 'ended'", (tenant_id,))
        or []
    ):
        try:
            client.stop_web_session(sid)
        except Exception:  # noqa: BLE001 - already gone
            pass
