"""The audit log viewer: an owner reads their table's log, a super admin every table's; another
table's owner sees none of it. Filters, keyset pages, before/after diffs, the streamed CSV export,
and secrets that never appear (scrubbed when written, and again when read)."""

from __future__ import annotations

import csv
import io
import json

import psycopg

from tests.conftest import soup

SECRET = "sk-live-DO-NOT-SHOW-0123456789"


def _insert(
    database_url, tenant_id, action, resource_type, resource_id, details=None, user_id=None, created_at="now()"
):
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO web.audit_log (tenant_id, user_id, action, resource_type, resource_id, details, created_at)"
            f" VALUES (%s, %s, %s, %s, %s, %s, {created_at})",
            (tenant_id, user_id, action, resource_type, resource_id, json.dumps(details) if details else None),
        )


def test_owner_sees_own_table_with_diff_admin_sees_all_stranger_sees_nothing(app, database_url, as_role):
    owner = as_role("tenant_owner")
    # A real change through the page: the rename is audited with before/after.
    assert owner.post("/settings/name", {"name": "Renamed Table Alpha"}).status_code in (200, 303)
    # A row written elsewhere (older code / another service) carrying secrets under keys the
    # writer would have redacted: the viewer must scrub them too.
    _insert(
        database_url,
        owner.user.tenant_id,
        "provider.update",
        "provider_config",
        "cfg-1",
        {
            "changes": {"api_key": {"before": None, "after": SECRET}, "model": {"before": "a", "after": "b"}},
            "webhook_secret": SECRET,
            "nested": {"refresh_token": SECRET},
        },
        user_id=owner.user.id,
    )

    page = owner.get("/audit")
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert SECRET not in html
    doc = soup(page)
    rows = doc.select("#audit-entries tbody tr")
    assert len(rows) == 2
    rename = next(r for r in rows if "tenant.update" in r.get_text())
    assert rename.select_one("dt").get_text() == "name"
    assert rename.select_one("ins.diff-after").get_text() == "Renamed Table Alpha"
    assert rename.select_one("del.diff-before").get_text()  # the old name is shown
    assert "tenant_owner user" in rename.get_text()  # the actor, by name
    provider = next(r for r in rows if "provider.update" in r.get_text())
    assert "[redacted]" in provider.get_text() and "b" == provider.select("ins.diff-after")[1].get_text()

    # Another table's owner: their own (empty) log, none of ours; the admin page is refused.
    stranger = as_role("tenant_owner")
    body = stranger.get("/audit").get_data(as_text=True)
    assert "Renamed Table Alpha" not in body and "provider_config" not in body and owner.user.tenant_id not in body
    assert "Renamed Table Alpha" not in stranger.get("/audit/export").get_data(as_text=True)
    assert stranger.get("/admin/audit").status_code == 403
    assert stranger.get("/admin/audit/export").status_code == 403
    # A DM of the same table can't read the log at all.
    dm = as_role("dm", tenant_id=owner.user.tenant_id)
    assert dm.get("/audit").status_code == 403

    # The super admin sees every table's entries, and can narrow to one table.
    admin = as_role("super_admin")
    everything = admin.get("/admin/audit").get_data(as_text=True)
    assert "Renamed Table Alpha" in everything and SECRET not in everything
    one = soup(admin.get(f"/admin/audit?tenant={owner.user.tenant_id}"))
    assert {td.get_text(strip=True) for td in one.select("#audit-entries td[data-label=Table]")} == {
        owner.user.tenant_id
    }
    # ... while their own /audit is only their own table's.
    assert "Renamed Table Alpha" not in admin.get("/audit").get_data(as_text=True)


def test_filters_pages_and_export(app, database_url, as_role, monkeypatch):
    from glyphoxa_htmx.services import audit_log

    owner = as_role("tenant_owner")
    t = owner.user.tenant_id
    for i in range(7):
        _insert(
            database_url,
            t,
            "npc.update" if i % 2 else "campaign.create",
            "npc" if i % 2 else "campaign",
            f"res-{i}",
            {"changes": {"name": {"before": f"old{i}", "after": f"=new{i}"}}},
            user_id=owner.user.id,
            created_at=f"timestamptz '2026-01-0{i + 1} 12:00Z'",
        )
    _insert(
        database_url,
        t,
        "session.start",
        "session",
        "s-x",
        {"token": SECRET},
        created_at="timestamptz '2026-01-09 12:00Z'",
    )

    # Filters: action, resource type:id, actor, date range.
    rows = soup(owner.get("/audit?action=npc.update")).select("#audit-entries tbody tr")
    assert len(rows) == 3 and all("npc.update" in r.get_text() for r in rows)
    rows = soup(owner.get("/audit?resource=campaign:res-2")).select("#audit-entries tbody tr")
    assert len(rows) == 1 and "res-2" in rows[0].get_text()
    rows = soup(owner.get("/audit?actor=tenant_owner")).select("#audit-entries tbody tr")
    assert len(rows) == 7  # the system entry has no actor
    rows = soup(owner.get("/audit?from=2026-01-03&to=2026-01-05")).select("#audit-entries tbody tr")
    assert [r["id"] for r in rows] and {
        r.select_one("td[data-label=Resource]").get_text().split()[-1] for r in rows
    } == {"res-2", "res-3", "res-4"}
    # A malformed date: 422 with the field named, nothing else shown.
    bad = owner.get("/audit?from=yesterday", htmx=True)
    assert bad.status_code == 422 and "Use a date like" in bad.get_data(as_text=True)

    # Keyset pages: newest first, no entry twice, none lost.
    monkeypatch.setattr(audit_log, "PAGE_SIZE", 3)
    seen, url = [], "/audit"
    while url:
        doc = soup(owner.get(url))
        seen += [r["id"] for r in doc.select("#audit-entries tbody tr")]
        more = doc.select_one(".pager a")
        url = more["href"] if more else None
    assert len(seen) == 8 and len(set(seen)) == 8
    assert seen == sorted(seen, key=lambda s: -int(s.split("-")[1]))  # inserted in time order

    # CSV export: streamed, every filtered row, formulas defused, secrets redacted.
    monkeypatch.setattr(audit_log, "EXPORT_BATCH", 2)
    resp = owner.get("/audit/export?action=npc")
    assert resp.status_code == 200 and resp.is_streamed and resp.mimetype == "text/csv"
    table = list(csv.DictReader(io.StringIO(resp.get_data(as_text=True))))
    assert [r["resource_id"] for r in table] == ["res-5", "res-3", "res-1"]
    assert json.loads(table[0]["changes"])["name"]["after"] == "=new5"  # inside JSON, not a formula cell
    full = owner.get("/audit/export").get_data(as_text=True)
    assert SECRET not in full and "[redacted]" in full and len(list(csv.DictReader(io.StringIO(full)))) == 8
