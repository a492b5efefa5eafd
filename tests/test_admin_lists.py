"""The operator's tenant and user lists (/admin/tenants, /admin/users): search and keyset pages
through core/keyset.py. User ids minted elsewhere (any text: spaces, unicode, '/', URL syntax,
even empty) survive the round trip through the cursor and the "Next page" link; a cursor
that doesn't parse (edited by hand, the old raw-id format) starts from the first page."""

from __future__ import annotations

import base64

import psycopg
import pytest

from glyphoxa_htmx.core.authz import Actor, Role
from tests.conftest import soup

MARK = "Keysetmark"

# User ids nobody here minted: the table takes any text.
ODD_USER_IDS = [
    "a b c",
    "über-ß",
    "日本語",
    "a/b/c",
    "/leading",
    "x?y=1&z=2",
    "50% off",
    "hash#tag",
    "plus+sign",
    'quote"s',
    "back\\slash",
    "emoji 🎲",
    "dot.dot..",
    "tilde~",
    "",  # not even an empty string trips it
]


def _ordered(database_url, sql, params):
    """The query's first column, in the database's own order (its collation decides, as in the
    page's ORDER BY)."""
    with psycopg.connect(database_url) as conn:
        return [r[0] for r in conn.execute(sql, params).fetchall()]


def _walk(admin, url, htmx=False):
    """Every row's first cell, following the "Next page" links from ``url``; and the links."""
    seen, links = [], []
    while url:
        resp = admin.get(url, htmx=htmx)
        assert resp.status_code == 200, url
        if htmx:
            assert "<html" not in resp.get_data(as_text=True)
        d = soup(resp)
        seen += [r.select_one("td").get_text("|", strip=True) for r in d.select("tbody tr") if not r.select(".empty")]
        nxt = next((a for a in d.select(".pager a") if a.get_text() == "Next page"), None)
        url = nxt["href"] if nxt else None
        if url:
            links.append(url)
    return seen, links


def _pages(list_all, size, total):
    """Every row of ``list_all`` (q=MARK) read ``size`` at a time, following the cursors; fails if
    it takes more pages than it should (a cursor that doesn't advance would loop for ever)."""
    actor = Actor(user_id="operator", tenant_id="t_operator", role=Role.SUPER_ADMIN)
    seen: list = []
    after = None
    for _ in range(-(-total // size)):
        rows, after = list_all(actor, q=MARK.lower(), limit=size, after=after)
        assert len(rows) <= size
        seen += rows
        if after is None:
            return seen
    raise AssertionError(f"more than {-(-total // size)} pages of {size} for {total} rows")


@pytest.fixture
def odd_users(app, database_url, make_tenant):
    """53 users named MARK (more than a page of 50), 15 of them with odd ids."""
    tid = make_tenant(name="Odd ids")
    ids = ODD_USER_IDS + [f"user-{i:02d}" for i in range(53 - len(ODD_USER_IDS))]
    with psycopg.connect(database_url, autocommit=True) as conn:
        for i, uid in enumerate(ids):
            conn.execute(
                "INSERT INTO web.users (id, tenant_id, name, role) VALUES (%s, %s, %s, 'dm')",
                (uid, tid, f"{MARK} {i:02d}"),
            )
    return _ordered(database_url, "SELECT id FROM web.users WHERE name LIKE %s ORDER BY id", (f"{MARK}%",))


@pytest.fixture
def odd_user_names(database_url, odd_users):
    """The same users' names, in their ids' order (the list's first cell shows the name)."""
    return _ordered(database_url, "SELECT name FROM web.users WHERE name LIKE %s ORDER BY id", (f"{MARK}%",))


def test_user_service_pages_odd_ids_across_small_pages(app, odd_users):
    from glyphoxa_htmx.services import users

    with app.test_request_context():
        for size in (1, 2, 7):
            # Each once, in the database's order, and no page more than needed.
            assert [u.id for u in _pages(users.list_all, size, len(odd_users))] == odd_users, size


def test_user_list_pages_odd_ids_through_next_links(app, as_role, odd_user_names):
    admin = as_role("super_admin")
    for htmx in (False, True):
        seen, links = _walk(admin, "/admin/users?q=" + MARK.lower(), htmx=htmx)
        # Each once, in the ids' order (the database's collation), not the names'.
        assert [s.split("|")[0] for s in seen] == odd_user_names, htmx
        assert len(links) == 1  # 50 + 3
        assert f"q={MARK.lower()}" in links[0] and "after=" in links[0]


def _encoded(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# A hand-edited cursor, the old format (a raw id), a cursor of another list's shape, a huge one.
GARBAGE = [
    "garbage~~",
    "%%%",
    "user-10",
    "a%20b%20c",
    _encoded(b"not json"),
    _encoded(b'{"id": "x"}'),
    _encoded(b'["a", "b"]'),
    _encoded(b"[1]"),
    _encoded(b"[]"),
    "A" * 5000,
    "%F0%9F",
]


@pytest.mark.parametrize("cursor", GARBAGE)
def test_user_list_garbage_cursor_starts_from_the_first_page(app, as_role, odd_users, cursor):
    admin = as_role("super_admin")
    first = admin.get(f"/admin/users?q={MARK.lower()}")
    resp = admin.get(f"/admin/users?q={MARK.lower()}&after={cursor}")
    assert resp.status_code == 200
    cells = [r.select_one("td").get_text() for r in soup(resp).select("tbody tr")]
    assert cells == [r.select_one("td").get_text() for r in soup(first).select("tbody tr")]
    assert len(cells) == 50


# ---- tenants ---------------------------------------------------------------------------------
# Tenant ids are slugs (the gateway's rule, and a CHECK on web.tenants), so the odd ids here are
# the slugs whose order is least obvious: underscores, digits, prefixes of each other.
TENANT_IDS = ["k", "k_", "k0", "k_0", "k__", "ka", "k_a", "kz9", "k9z"] + [f"km_{i:03d}" for i in range(44)]


@pytest.fixture
def many_tenants(app, database_url, make_user):
    with psycopg.connect(database_url, autocommit=True) as conn:
        for i, tid in enumerate(TENANT_IDS):
            conn.execute("INSERT INTO web.tenants (id, name) VALUES (%s, %s)", (tid, f"{MARK} {i:02d}"))
    make_user("dm", tenant_id="k_a")
    make_user("viewer", tenant_id="k_a")
    return _ordered(database_url, "SELECT id FROM web.tenants WHERE name LIKE %s ORDER BY id", (f"{MARK}%",))


def test_tenant_service_pages_across_small_pages(app, many_tenants):
    from glyphoxa_htmx.services import tenants

    with app.test_request_context():
        for size in (1, 2, 7):
            seen = [(t.id, n) for t, n in _pages(tenants.list_all, size, len(many_tenants))]
            assert [tid for tid, _n in seen] == many_tenants, size
            assert dict(seen)["k_a"] == 2 and dict(seen)["k"] == 0  # the member counts


def test_tenant_list_pages_through_next_links(app, database_url, as_role, many_tenants):
    admin = as_role("super_admin")
    for htmx in (False, True):
        seen, links = _walk(admin, "/admin/tenants?q=" + MARK.lower(), htmx=htmx)
        assert seen == many_tenants, htmx  # the first cell is the id
        assert len(links) == 1  # 50 + 3
        assert f"q={MARK.lower()}" in links[0] and "after=" in links[0]
    # Without a search every tenant is listed (the operator's own too), still by id.
    everyone, _links = _walk(admin, "/admin/tenants")
    assert everyone == _ordered(database_url, "SELECT id FROM web.tenants ORDER BY id", ())
    assert len(everyone) == len(many_tenants) + 1


@pytest.mark.parametrize("cursor", [*GARBAGE, "k_a", "km_010"])
def test_tenant_list_garbage_cursor_starts_from_the_first_page(app, as_role, many_tenants, cursor):
    admin = as_role("super_admin")
    resp = admin.get(f"/admin/tenants?q={MARK.lower()}&after={cursor}")
    assert resp.status_code == 200
    assert [r.select_one("td").get_text() for r in soup(resp).select("tbody tr")] == many_tenants[:50]
