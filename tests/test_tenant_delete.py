"""The owner's danger zone (issue 12): deleting a table asks for its name, calls DeleteTenant on the
gateway (real gRPC to the simulator) and then removes every web row of the table in one
transaction, ending every member's sign-ins. When the gateway can't delete it, nothing of ours is
deleted and the owner is told."""

from __future__ import annotations

import psycopg
import pytest
from sqlalchemy import text

from glyphoxa_htmx.extensions import db
from tests.conftest import GATEWAY_SECRET, WEB_TABLES, Browser, make_settings, soup
from tests.test_adoption import gateway_ids, gateway_tenant

KEPT = {"web.audit_log", "web.billing_events"}  # the record of the deletion; Stripe's idempotency ledger


def web_rows(app, tenant_id: str) -> dict[str, int]:
    counts = {}
    with app.app_context():
        for table in WEB_TABLES:
            column = "id" if table == "web.tenants" else "tenant_id"
            if table == "web.login_sessions":
                continue
            if table == "web.support_replies":  # a reply belongs to its ticket, which has the tenant
                query = (
                    "SELECT count(*) FROM web.support_replies r JOIN web.support_tickets t ON t.id = r.ticket_id "
                    "WHERE t.tenant_id = :t"
                )
            else:
                query = f"SELECT count(*) FROM {table} WHERE {column} = :t"
            counts[table] = db.session.execute(text(query), {"t": tenant_id}).scalar_one()
    return counts


@pytest.fixture
def table(app, as_role, make_user):
    owner = as_role("tenant_owner")
    tid = owner.user.tenant_id
    gateway_tenant(app, tid)
    dm_user = make_user(role="dm", tenant_id=tid, name="Table DM")
    dm = Browser(app).login(dm_user)
    assert owner.post("/team/invitations", {"kind": "link", "role": "viewer"}).status_code == 200
    assert owner.post("/campaigns", {"name": "Doomed campaign"}).status_code in (200, 303)
    return owner, dm, tid


def test_delete_needs_the_typed_name_and_the_owner(app, table, as_role):
    owner, dm, tid = table
    before = web_rows(app, tid)
    resp = owner.post("/settings/delete", {"confirm_name": "wrong"}, htmx=True)
    assert resp.status_code == 422 and soup(resp).select_one("#confirm_name-error")
    assert dm.post("/settings/delete", {"confirm_name": "Test table"}).status_code == 403
    assert web_rows(app, tid) == before and tid in gateway_ids(app)


def test_delete_calls_the_gateway_then_leaves_no_web_rows_and_signs_everyone_out(app, table):
    owner, dm, tid = table
    assert web_rows(app, tid)["web.campaigns"] == 1
    page = soup(owner.get("/settings"))
    assert page.select_one("#danger form[action='/settings/delete'] input[name=confirm_name]")
    resp = owner.post("/settings/delete", {"confirm_name": "Test table"}, htmx=True)
    assert resp.status_code == 200 and resp.headers.get("HX-Redirect", "").startswith("/")
    assert tid not in gateway_ids(app)
    rows = web_rows(app, tid)
    assert {t: n for t, n in rows.items() if n and t not in KEPT} == {}
    assert rows["web.audit_log"] >= 1
    with app.app_context():
        entry = db.session.execute(
            text("SELECT details FROM web.audit_log WHERE action = 'tenant.delete' AND tenant_id = :t"), {"t": tid}
        ).scalar_one()
        assert entry["deleted"]["users"] == 2 and entry["deleted"]["sign_ins_revoked"] >= 2
    # Both open tabs are signed out at their next request.
    for b in (owner, dm):
        nxt = b.get("/campaigns")
        assert nxt.status_code in (302, 303) and "/auth" in nxt.headers["Location"]


def test_gateway_failure_deletes_nothing_of_ours(app, database_url, table):
    from glyphoxa_htmx.app import create_app

    owner, dm, tid = table
    broken = create_app(
        make_settings(database_url, gateway_grpc_addr="127.0.0.1:1", gateway_secret=GATEWAY_SECRET, gateway_timeout=1.0)
    )
    broken.config["TESTING"] = True
    with app.app_context():
        from glyphoxa_htmx.models import User

        owner_ns = db.session.get(User, owner.user.id)
        owner_ns = type("U", (), {"id": owner_ns.id, "tenant_id": tid})
    b = Browser(broken).login(owner_ns)
    before = web_rows(app, tid)
    resp = b.post("/settings/delete", {"confirm_name": "Test table"}, htmx=True)
    assert resp.status_code == 503
    assert "Nothing was deleted" in soup(resp).select_one(".notice-error").text
    assert web_rows(app, tid) == before
    assert tid in gateway_ids(app)
    assert dm.get("/campaigns").status_code == 200  # still signed in
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT 1 FROM public.tenants WHERE id = %s", (tid,)).fetchone()


def test_export_before_delete_is_a_zip_of_everything(app, demo_owner):
    import io
    import json
    import zipfile

    resp = demo_owner.get("/settings/export")
    assert resp.status_code == 200 and resp.mimetype == "application/zip"
    zf = zipfile.ZipFile(io.BytesIO(resp.get_data()))
    names = zf.namelist()
    assert {"table.json", "campaigns.json", "npcs.json", "knowledge.json"} <= set(names)
    npcs = json.loads(zf.read("npcs.json"))
    from glyphoxa_htmx.seed import DEMO_TENANT

    assert npcs and all(n["tenant_id"] == DEMO_TENANT for n in npcs)  # only this table's, every column
    assert all("personality" in n for n in npcs)
    assert any(name.startswith("transcripts/") and name.endswith(".md") for name in names)
    md = zf.read(next(n for n in names if n.startswith("transcripts/"))).decode()
    assert md.startswith("# Transcript:")
    assert json.loads(zf.read("knowledge.json"))["entities"]


@pytest.fixture
def demo_owner(app):
    from sqlalchemy import select

    from glyphoxa_htmx.models import User
    from glyphoxa_htmx.seed import DEMO_TENANT, seed_demo

    with app.app_context():
        seed_demo()
        owner = db.session.execute(
            select(User).where(User.tenant_id == DEMO_TENANT, User.role == "tenant_owner")
        ).scalar_one()
        ns = type("U", (), {"id": owner.id, "tenant_id": DEMO_TENANT})
    return Browser(app).login(ns)


def test_delete_removes_the_tables_voice_sample_files_too(app, table, tmp_path, monkeypatch):
    """Voice samples leave no object behind: the stored file goes first, then its row."""
    import io

    from tests.test_voice_samples import make_audio

    owner, _dm, tid = table
    store = tmp_path / "voice-samples"
    monkeypatch.delenv("S3_BUCKET", raising=False)
    monkeypatch.setenv("VOICE_SAMPLES_DIR", str(store))
    resp = owner.post(
        "/voice-library",
        {"name": "Doomed voice", "file": (io.BytesIO(make_audio(tmp_path, "doomed.wav")), "doomed.wav")},
        content_type="multipart/form-data",
    )
    assert resp.status_code == 303
    assert [p for p in store.rglob("*") if p.is_file()], "the upload stored a file"
    assert web_rows(app, tid)["web.voice_samples"] == 1
    resp = owner.post("/settings/delete", {"confirm_name": "Test table"}, htmx=True)
    assert resp.status_code == 200
    assert [p for p in store.rglob("*") if p.is_file()] == []
    assert web_rows(app, tid)["web.voice_samples"] == 0
