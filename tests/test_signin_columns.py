"""The sign-in cache's miss path reads the sign-in as columns (services/signin_cache.py _resolve)
instead of loading ORM rows: it must answer exactly what ``auth.resolve`` answers, for rows as the
app writes them and as others may (a table id with no table row, guild lists with unknown keys
and numbers, suspended users and tables, an operator, expired and idle sessions), and keep the
rotation and reuse rules, which stay with ``auth.resolve``."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import LoginSession, User
from glyphoxa_htmx.services import auth, signin_cache


def _sql(database_url: str, statement: str, *params) -> None:
    with psycopg.connect(database_url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
        conn.execute(statement, params)


def _sign_in(app, user_id: str) -> str:
    with app.test_request_context():
        return auth.start_session(db.session.get(User, user_id), ip="127.0.0.1", user_agent="pytest")


def _reference(row: LoginSession) -> signin_cache.LoginSnapshot:
    """The snapshot as the ORM rows give it (the way the cache built it before the column read)."""
    user, tenant = row.user, row.user.tenant
    return signin_cache.LoginSnapshot(
        id=row.id,
        family_id=row.family_id,
        user_id=row.user_id,
        token_hash=row.token_hash,
        expires_at=row.expires_at,
        last_seen_at=row.last_seen_at,
        ip=row.ip,
        user_agent=row.user_agent,
        user=signin_cache.UserSnapshot(
            id=user.id,
            tenant_id=user.tenant_id,
            name=user.name,
            email=user.email,
            avatar_url=user.avatar_url,
            role=user.role,
            status=user.status,
            discord_id=user.discord_id,
            discord_guilds=tuple(user.discord_guilds or ()),
            locale=user.locale,
            tenant=signin_cache.TenantSnapshot(id=tenant.id, name=tenant.name, status=tenant.status)
            if tenant
            else None,
        ),
    )


def _both(app, token: str):
    """(the column path's snapshot, a snapshot of auth.resolve's answer), each in its own request."""
    with app.test_request_context():
        columns = signin_cache._resolve(token, "pytest")
    with app.test_request_context():
        row = auth.resolve(token, user_agent="pytest")
        orm = _reference(row) if row is not None else None
    return columns, orm


SHAPES = [
    ("plain", None),
    ("a table id with no table row", "UPDATE web.users SET tenant_id = 'gw_unknown_table' WHERE id = %s"),
    (
        "guilds shaped by others",
        """UPDATE web.users SET discord_guilds = '[{"id": 123, "name": "G", "owner": true, "extra": {"k": [1, 2]}}, 7]'::jsonb
           WHERE id = %s""",
    ),
    ("no email, avatar or locale", "UPDATE web.users SET email = NULL, avatar_url = NULL, locale = NULL WHERE id = %s"),
    ("a suspended user", "UPDATE web.users SET status = 'suspended' WHERE id = %s"),
    (
        "a suspended table",
        "UPDATE web.tenants SET status = 'suspended' WHERE id = (SELECT tenant_id FROM web.users WHERE id = %s)",
    ),
    (
        "an expired sign-in",
        "UPDATE web.login_sessions SET expires_at = now() - interval '1 second' WHERE user_id = %s",
    ),
    (
        "an idle sign-in",
        "UPDATE web.login_sessions SET last_seen_at = now() - interval '400 days' WHERE user_id = %s",
    ),
    ("a revoked sign-in", "UPDATE web.login_sessions SET revoked_at = now() WHERE user_id = %s"),
]


@pytest.mark.parametrize(("shape", "statement"), SHAPES, ids=[s for s, _ in SHAPES])
@pytest.mark.parametrize("role", ["tenant_owner", "super_admin"])
def test_the_column_read_answers_what_auth_resolve_answers(app, database_url, make_user, shape, statement, role):
    user = make_user(role=role)
    token = _sign_in(app, user.id)
    if statement:
        _sql(database_url, statement, user.id)
    columns, orm = _both(app, token)
    assert columns == orm, shape
    live = shape in ("plain", "a table id with no table row", "guilds shaped by others", "no email, avatar or locale")
    live = live or (shape == "a suspended table" and role == "super_admin")  # operators outlive their table
    assert (columns is not None) is live, shape
    if shape == "guilds shaped by others":
        assert columns.user.discord_guilds[1] == 7 and columns.user.discord_guilds[0]["extra"] == {"k": [1, 2]}


@pytest.mark.parametrize(("shape", "statement"), SHAPES, ids=[s for s, _ in SHAPES])
@pytest.mark.parametrize("role", ["tenant_owner", "super_admin"])
def test_the_read_touches_last_seen_exactly_when_the_sign_in_is_live(
    app, database_url, make_user, shape, statement, role
):
    """The touch rides in the sign-in's read (``auth.touch``: ``auth.live``'s rules in SQL). It must
    record a sign-in that ``auth.live`` accepts and nothing else: touching an idle sign-in would
    bring it back to life, touching a suspended user's would keep it fresh for the day the
    suspension is lifted. Every shape a minute and more since its last use."""
    user = make_user(role=role)
    token = _sign_in(app, user.id)
    _sql(
        database_url,
        "UPDATE web.login_sessions SET last_seen_at = now() - interval '5 minutes' WHERE user_id = %s",
        user.id,
    )
    if statement:
        _sql(database_url, statement, user.id)
    with app.test_request_context():
        before = db.session.execute(
            db.select(LoginSession.last_seen_at, LoginSession.expires_at).where(LoginSession.user_id == user.id)
        ).one()
        db.session.rollback()
    with app.test_request_context():
        columns = signin_cache._resolve(token, "pytest")
    with app.test_request_context():
        after = db.session.execute(
            db.select(LoginSession.last_seen_at).where(LoginSession.user_id == user.id)
        ).scalar_one()
        row = db.session.execute(db.select(LoginSession).where(LoginSession.user_id == user.id)).scalar_one()
        user_row = row.user
        tenant = user_row.tenant
        live = row.revoked_at is None and auth.live(
            before.expires_at,
            before.last_seen_at,
            user_row.status,
            tenant.status if tenant is not None else None,
            user_row.role,
        )
    assert (columns is not None) is live, shape
    assert (after != before.last_seen_at) is live, shape  # touched exactly when live
    if live:
        assert columns.last_seen_at == after and auth.now() - after < timedelta(seconds=30)


def test_a_rotated_token_keeps_the_grace_and_reuse_rules(app, make_user):
    user = make_user()
    token = _sign_in(app, user.id)
    with app.test_request_context():
        new_token = auth.rotate(token, ip="127.0.0.1", user_agent="pytest")
    assert new_token
    with app.test_request_context():
        within_grace = signin_cache._resolve(token, "pytest")  # same browser, just rotated: the new session
        assert within_grace is not None and within_grace.token_hash == auth.hash_token(new_token)
    with app.test_request_context():
        assert signin_cache._resolve(token, "another browser") is None  # reuse: refused, family revoked
    with app.test_request_context():
        assert signin_cache._resolve(new_token, "pytest") is None  # the whole family


def test_the_touch_is_once_a_minute_and_keeps_the_cache(app, database_url, make_user):
    user = make_user()
    token = _sign_in(app, user.id)
    _sql(
        database_url,
        "UPDATE web.login_sessions SET last_seen_at = now() - interval '5 minutes' WHERE user_id = %s",
        user.id,
    )
    generation = signin_cache._generation
    with app.test_request_context():
        first = signin_cache._resolve(token, "pytest")
    with app.test_request_context():
        seen = db.session.execute(
            db.select(LoginSession.last_seen_at).where(LoginSession.token_hash == auth.hash_token(token))
        ).scalar_one()
    assert first is not None and first.last_seen_at == seen
    assert auth.now() - seen < timedelta(seconds=30)  # touched now
    assert signin_cache._generation == generation  # a touch ends no sign-in: nobody's cache emptied
    with app.test_request_context():
        again = signin_cache._resolve(token, "pytest")
    assert again is not None and again.last_seen_at == seen  # within the minute: not touched again


def test_entries_made_together_expire_spread_over_the_last_part_of_the_lifetime(app, make_user):
    """A crowd signing in at once must not miss all at once a lifetime later: each entry is dated up
    to SPREAD of the lifetime earlier, never later (an entry never outlives the lifetime)."""
    users = [make_user() for _ in range(12)]
    tokens = [_sign_in(app, u.id) for u in users]
    signin_cache._entries.clear()
    with app.test_request_context():
        ttl = signin_cache.lifetime(app.extensions["glyphoxa.settings"].signin_cache_seconds)
        before = signin_cache.time.monotonic()
        for token in tokens:
            assert signin_cache.resolve(token, "pytest") is not None
        after = signin_cache.time.monotonic()
    dated = [entry[0] for entry in signin_cache._entries.values()]
    assert len(dated) == len(tokens)
    assert all(before - signin_cache.SPREAD * ttl <= t <= after for t in dated)
    assert len({round(t, 6) for t in dated}) > 1  # spread, not one instant
