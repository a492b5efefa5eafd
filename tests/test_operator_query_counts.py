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
    with psycopg.connect(database_url, autocommit=True) as conn:
        for i in range(30):
            conn.execute("INSERT INTO web.campaigns (tenant_id, id, name) VALUES (%s, %s, %s)", (t, f"q{i}", f"Q {i}"))
            conn.execute(
                "INSERT INTO public.sessions (id, tenant_id, campaign_id, guild_id, channel_id, license_tier, state,"
                " error) VALUES (%s, %s, %s, '1', '1', 'shared', 'ended', %s)",
                (f"qc-{t}-{i}", t, f"q{i}", "boom" if i % 3 else None),
            )
    many = {
        url: _counted(app, b, url)
        for b, url in ((owner, "/audit"), (admin, f"/admin/tenants/{t}"), (admin, "/admin/"), (admin, "/admin/audit"))
    }
    assert few == many, (few, many)
    print("queries per page:", many)


def test_drilldown_list_blocks_read_only_their_list(app, database_url, as_role, make_user):
    """An htmx request for one list of the drill-down (search, next page) runs fewer queries than
    the page, and the same number with 2 rows or 40."""
    admin = as_role("super_admin")
    t = make_user(role="tenant_owner").tenant_id
    _audit_rows(database_url, t, 2)
    page = f"/admin/tenants/{t}"

    def counted(url, target=None) -> int:
        headers = {"HX-Request": "true", "HX-Target": target} if target else None
        admin.get(url, headers=headers)
        with count_queries(app) as seen:
            assert admin.get(url, headers=headers).status_code == 200
        return len(seen)

    whole = counted(page)
    lists = ("members", "campaigns", "sessions", "audit")
    few = {name: counted(page + "?q=a&campaigns_q=a&sessions_q=a&audit_q=a", name) for name in lists}
    _audit_rows(database_url, t, 40)
    many = {name: counted(page + "?q=a&campaigns_q=a&sessions_q=a&audit_q=a", name) for name in lists}
    assert few == many, (few, many)
    assert all(n < whole for n in many.values()), (many, whole)
