"""Serving an installation that existed before us (issue 10's "Done when").

A database is built the way a long-running gateway leaves it, from ``tests/support/gateway_install.sql``
(written from the gateway contract, not from the simulator's DDL): two tenants that both use campaign
id ``c1``, campaigns present only as ids, NPC rows with JSON keys and value types the editor doesn't
know, a transcript line that arrived late. Then the simulator starts on it and our migrations run
(``pg_dump --schema-only`` of ``public`` and ``tenant_*`` identical before and after), a tenant is
adopted, its owner signs in through the local OAuth provider, and walks dashboard → campaigns → NPC
edit/save → sessions → transcript → search → knowledge: every existing row visible, and nothing of
the gateway's changed.
"""

from __future__ import annotations

import glob
import json
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
import requests
from sqlalchemy import select

from glyphoxa_htmx import embedded
from tests.conftest import GATEWAY_SECRET, TEST_DB, Browser, _server_url, make_settings, soup

SQL = Path(__file__).parent / "support" / "gateway_install.sql"
DB_NAME = TEST_DB + "_existing"
R1, R2, S1 = ("0b7c1a52-58a4-4c11-9d7e-3f1b5d2e0a0" + n for n in "123")
RABENHEIM_LINES = [
    "We need a blade forged by dawn.",
    "Dawn costs double, lass.",
    "Then double it is.",
    "Wait, what about the mithril?",
]
# Keys an unchanged NPC save may rewrite: none (issue 10 item 4: an unchanged save writes nothing,
# so the saved row must be identical in every key).
ROUND_TRIP_PENDING: tuple[str, ...] = ()
GATEWAY_TABLES = [
    "public.tenants",
    "public.sessions",
    "public.usage_records",
    "public.npc_definitions",
    "tenant_rabenheim.sessions",
    "tenant_rabenheim.session_entries",
    "tenant_rabenheim.entities",
    "tenant_rabenheim.relationships",
    "tenant_saltmere.sessions",
    "tenant_saltmere.session_entries",
    "tenant_saltmere.entities",
    "tenant_saltmere.relationships",
]


def _pg_dump() -> str:
    found = shutil.which("pg_dump") or next(iter(sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_dump"))), None)
    assert found, "pg_dump is needed (Debian: postgresql-client)"
    return found


def schema_dump(url: str) -> str:
    """The gateway-owned schemas as pg_dump sees them (minus pg_dump's per-run \\restrict key)."""
    for attempt in range(5):  # a shared test server can briefly run out of connection slots
        done = subprocess.run(
            [_pg_dump(), "--schema-only", "--no-owner", "-n", "public", "-n", "tenant_*", url],
            capture_output=True,
            text=True,
        )
        if done.returncode == 0 or "too many clients" not in done.stderr:
            break
        time.sleep(1 + attempt)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    return "\n".join(line for line in out.splitlines() if not line.startswith(("\\restrict", "\\unrestrict")))


def table_rows(url: str) -> dict[str, list[dict]]:
    """Every row of every gateway/worker table, as JSON (exact values and JSON types)."""
    with psycopg.connect(url) as conn:
        return {
            t: sorted((r[0] for r in conn.execute(f"SELECT to_jsonb(x) FROM {t} x")), key=json.dumps)
            for t in GATEWAY_TABLES
        }


@pytest.fixture(scope="module")
def install():
    server = _server_url()
    url = embedded.recreate_database(server, DB_NAME)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(SQL.read_text())
    yield url
    with psycopg.connect(embedded.libpq_url(server), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)')


def discord_sign_in(b: Browser, provider):
    resp = b.get("/auth/discord")
    assert resp.status_code == 302
    back = requests.get(resp.headers["Location"], allow_redirects=False, timeout=5).headers["Location"]
    cb = urlsplit(back)
    return b.get(cb.path + "?" + cb.query)


def form_fields(form) -> list[tuple[str, str]]:
    """What a browser would submit for this form, unchanged."""
    out = []
    for el in form.select("input[name], textarea[name], select[name]"):
        name = el["name"]
        if el.name == "textarea":
            out.append((name, el.text.removeprefix("\n")))
        elif el.name == "select":
            chosen = el.select_one("option[selected]") or el.select_one("option")
            if chosen is not None:
                out.append((name, chosen.get("value", chosen.text)))
        elif el.get("type") in ("checkbox", "radio"):
            if el.has_attr("checked"):
                out.append((name, el.get("value", "on")))
        elif el.get("type") not in ("submit", "button", "file"):
            out.append((name, el.get("value", "")))
    return out


def test_an_existing_installation_is_served_without_changing_it(install, provider, tmp_path):
    from glyphoxa_htmx.app import create_app
    from glyphoxa_htmx.bootstrap import check_gateway_tables, migrate_db
    from glyphoxa_htmx.extensions import db
    from glyphoxa_htmx.models import Campaign, User
    from glyphoxa_htmx.simulator.server import GatewaySimulator

    schema_before = schema_dump(install)
    rows_before = table_rows(install)
    assert "unique_active_campaign" in schema_before and "recaps" not in schema_before

    # The simulator plays the gateway on this database: it must find everything present and add nothing.
    sim = GatewaySimulator(
        install,
        secret=GATEWAY_SECRET,
        listen="127.0.0.1:0",
        activation_delay=0.2,
        line_interval=0.3,
        heartbeat_interval=0.5,
    )
    sim.start()
    try:
        app = create_app(
            make_settings(
                install,
                dev_login=False,
                discord_client_id=provider.client_id,
                discord_client_secret=provider.client_secret,
                discord_api_base=provider.base,
                gateway_grpc_addr=sim.address,
                gateway_secret=GATEWAY_SECRET,
                instance_dir=str(tmp_path),
            )
        )
        app.config["TESTING"] = True
        migrate_db(app)
        check_gateway_tables(app)
        assert schema_dump(install) == schema_before  # gateway-owned objects identical after migrations
        assert table_rows(install) == rows_before

        # An operator adopts rabenheim (owner by Discord id) and saltmere (by link).
        with app.app_context():
            admin = User(name="Operator", role="super_admin", discord_id="ops-1")
            db.session.add(admin)
            db.session.commit()
            admin_ns = type("U", (), {"id": admin.id, "tenant_id": None})
        ops = Browser(app).login(admin_ns)
        unmanaged = soup(ops.get("/admin/tenants/unmanaged"))
        listed = {tr.select_one("td.mono").text for tr in unmanaged.select("tbody tr")}
        assert listed == {"rabenheim", "saltmere", "quiet_keep"}
        assert (
            ops.post(
                "/admin/tenants/rabenheim/adopt", {"name": "Rabenheim Nights", "owner_discord_id": provider.user["id"]}
            ).status_code
            == 200
        )
        resp = ops.post("/admin/tenants/saltmere/adopt", {"name": "Saltmere Harbour", "link": "1"})
        saltmere_link = urlsplit(soup(resp).select_one("#invite-link")["value"]).path

        # Rabenheim's owner signs in with Discord and lands in their adopted table.
        owner = Browser(app)
        owner.csrf_token()  # fetched while anonymous (the sign-in page renders it)
        assert discord_sign_in(owner, provider).status_code == 303
        with app.app_context():
            user = db.session.execute(select(User).where(User.discord_id == provider.user["id"])).scalar_one()
            assert (user.tenant_id, user.role) == ("rabenheim", "tenant_owner")

        dashboard = owner.get("/dashboard")
        assert dashboard.status_code == 200 and "Rabenheim Nights" in dashboard.get_data(as_text=True)

        # Campaigns: every id in rabenheim's gateway data, found and shown; c1 is the gateway's active one.
        cards = {c.h2.text.strip(): c for c in soup(owner.get("/campaigns")).select(".campaign-card")}
        assert set(cards) == {"c1", "c2", "c3"}
        assert all("Found in Discord sessions" in c.text for c in cards.values())
        assert "Active" in cards["c1"].select_one(".badges").text
        assert "Active" not in cards["c2"].select_one(".badges").text
        casts = {cid: soup(owner.get(f"/campaigns/{cid}")) for cid in ("c1", "c2", "c3")}
        assert "Greta Ironbraid" in casts["c1"].text and "Saltmere Sal" not in casts["c1"].text
        assert "Old Tom" in casts["c2"].text and "The Lonely Ferryman" in casts["c3"].text

        # Saltmere's owner joins by link; saltmere's own c1 is a different campaign with the same id.
        provider.user = {
            **provider.user,
            "id": "80351110224678999",
            "global_name": "Harbour Hal",
            "email": "hal@example.com",
        }
        hal = Browser(app)
        assert hal.get(saltmere_link).status_code == 200
        assert discord_sign_in(hal, provider).status_code == 303
        sal_cast = soup(hal.get("/campaigns/c1"))
        assert "Saltmere Sal" in sal_cast.text and "Greta Ironbraid" not in sal_cast.text
        assert {c.h2.text.strip() for c in soup(hal.get("/campaigns")).select(".campaign-card")} == {"c1"}
        with app.app_context():
            keys = sorted((c.tenant_id, c.id) for c in db.session.execute(select(Campaign)).scalars())
            assert keys == [("rabenheim", "c1"), ("rabenheim", "c2"), ("rabenheim", "c3"), ("saltmere", "c1")]

        # NPC edit page: loads a row written by other tooling, saves unchanged.
        editor = soup(owner.get("/npcs/npc-greta"))
        form = editor.select_one("form#npc-form") or next(
            f for f in editor.select("form") if f.get("action") == "/npcs/npc-greta"
        )
        assert form.select_one("[name=name]")["value"] == "Greta Ironbraid"
        from werkzeug.datastructures import MultiDict

        saved = owner.post("/npcs/npc-greta", MultiDict(form_fields(form)))
        assert saved.status_code == 303, saved.get_data(as_text=True)[:2000]

        # Sessions, transcript (every line, the late one included), search, knowledge.
        sessions_page = owner.get("/sessions").get_data(as_text=True)
        assert R1 in sessions_page and R2 in sessions_page and S1 not in sessions_page
        transcript = soup(owner.get(f"/sessions/{R1}/transcript")).text
        assert all(line in transcript for line in RABENHEIM_LINES)
        assert "The river remembers every toll." in soup(owner.get(f"/sessions/{R2}/transcript")).text
        found = soup(owner.get("/sessions/search?q=mithril")).text
        assert "mithril" in found and "Harbour fees" not in soup(owner.get("/sessions/search?q=harbour")).text
        knowledge = soup(owner.get("/knowledge")).text
        assert "c1" in knowledge and "c2" in knowledge
        graph = soup(owner.get("/knowledge/c1")).text
        assert "Greta Ironbraid" in graph and "The Ember Forge" in graph
        assert owner.get("/knowledge/c1/entities/npc-greta").status_code == 200

        # Nothing of the gateway's changed: schema, and every row except what the NPC save touched.
        assert schema_dump(install) == schema_before
        rows_after = table_rows(install)
        for table in GATEWAY_TABLES:
            if table != "public.npc_definitions":
                assert rows_after[table] == rows_before[table], table
        npcs_before = {r["id"]: r for r in rows_before["public.npc_definitions"]}
        npcs_after = {r["id"]: r for r in rows_after["public.npc_definitions"]}
        assert set(npcs_after) == set(npcs_before)
        for npc_id in npcs_before.keys() - {"npc-greta"}:
            assert npcs_after[npc_id] == npcs_before[npc_id], npc_id
        greta_before, greta_after = npcs_before["npc-greta"], npcs_after["npc-greta"]
        # The saved-unchanged row, compared key by key.
        assert set(greta_after) == set(greta_before)
        for key in greta_before.keys() - set(ROUND_TRIP_PENDING):
            assert greta_after[key] == greta_before[key], key
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    finally:
        sim.stop()
