"""Operator pages send a constant number of SQL statements, whatever the amount of data: the
audit viewer, the tenant drill-down and the platform dashboard, measured with few rows and with
many."""

from __future__ import annotations

import psycopg

from tests.test_campaigns import count_queries


def _audit_rows(database_url, tenant_id, n):
    with psycopg.connect(database_url, autocommit=True) as conn:
        for i in range(n):
            conn.execute(
                "INSERT INTO web.audit_log (tenant_id, action, resource_type, resource_id, details)"
                ' VALUES (%s, \'npc.update\', \'npc\', %s, \'{"changes": {"name": {"after": "x"}}}\')',
                (tenant_id, f"n{i}"),
            )


def _counted(app, browser, url) -> int:
    browser.get(url)  # warm caches (sign-in cache, gateway tables check)
    with count_queries(app) as seen:
        assert browser.get(url).status_code == 200
    return len(seen)


def test_audit_drilldown_and_dashboard_queries_are_constant(app, database_url, as_role, make_user):
    owner = as_role("tenant_owner")
    admin = as_role("super_admin")
    t = owner.user.tenant_id
    _audit_rows(database_url, t, 2)
    few = {
        url: _counted(app, b, url)
        for b, url in ((owner, "/audit"), (admin, f"/admin/tenants/{t}"), (admin, "/admin/"), (admin, "/admin/audit"))
    }
    _audit_rows(database_url, t, 40)
    for _ in range(8):
        make_user(role="dm", tenant_id=t)
    many = {
        url: _counted(app, b, url)
        for b, url in ((owner, "/audit"), (admin, f"/admin/tenants/{t}"), (admin, "/admin/"), (admin, "/admin/audit"))
    }
    assert few == many, (few, many)
    print("queries per page:", many)
