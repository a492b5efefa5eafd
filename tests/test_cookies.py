"""The flash cookie and the CSRF token, remembered per process (core/cookies.py): a remembered
value never outlives what the signature itself would allow, never carries one request's session
into another's, and a remembered CSRF token is always the one the session's raw token signs to."""

from __future__ import annotations

import time
from datetime import timedelta

from flask import session

from glyphoxa_htmx.core import cookies
from tests.conftest import soup


def _remembered(app, as_role) -> str:
    """A signed-in browser's flash cookie after a page, opened once (so this process remembers it)."""
    browser = as_role("tenant_owner")
    browser.get("/dashboard")
    cookie = browser.client.get_cookie("gx_flash")
    assert cookie is not None
    assert _open(app, cookie.value)
    return cookie.value


def _open(app, value: str):
    with app.test_request_context("/", headers={"Cookie": f"gx_flash={value}"}) as ctx:
        return app.session_interface.open_session(app, ctx.request)


def test_a_remembered_cookie_opens_to_a_fresh_session_each_time(app, as_role):
    value = _remembered(app, as_role)
    first, second = _open(app, value), _open(app, value)
    assert dict(first) == dict(second) and "csrf_token" in first
    first["_flashes"] = [("info", "only mine")]
    first["csrf_token"] = "changed"
    assert "_flashes" not in second and second["csrf_token"] != "changed"
    assert "_flashes" not in _open(app, value)


def test_a_tampered_cookie_is_an_empty_session_even_next_to_a_remembered_one(app, as_role):
    value = _remembered(app, as_role)
    payload, _, signature = value.rpartition(".")
    forged = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    assert dict(_open(app, forged)) == {}
    assert forged not in app.session_interface._opened


def test_a_remembered_cookie_expires_like_its_signature(app, as_role):
    value = _remembered(app, as_role)
    before = app.permanent_session_lifetime
    app.permanent_session_lifetime = timedelta(seconds=1)
    try:
        time.sleep(2.1)
        assert dict(_open(app, value)) == {}
    finally:
        app.permanent_session_lifetime = before


def test_a_remembered_cookie_stops_opening_when_the_secret_key_changes(app, as_role):
    value = _remembered(app, as_role)
    before = app.secret_key
    app.secret_key = before + "-rotated"
    try:
        assert dict(_open(app, value)) == {}
    finally:
        app.secret_key = before
    assert _open(app, value)  # the old key is back: valid again, as its signature says


def _page_token(browser) -> str:
    return soup(browser.get("/account/sessions")).find("input", {"name": "csrf_token"})["value"]


def test_a_remembered_csrf_token_is_the_one_the_session_signs_and_still_works(app, as_role):
    browser = as_role("tenant_owner")
    first, second = _page_token(browser), _page_token(browser)
    assert first == second  # the same raw token: its signed form is remembered, not signed again
    with app.test_request_context():
        assert any(token == first for token in cookies._signed_tokens.values())
    browser._csrf = first
    assert browser.post("/me/locale", data={"locale": "en"}).status_code in (200, 204, 303)


def test_a_new_raw_token_gets_its_own_signature_and_the_old_one_is_refused(app, as_role, make_user):
    browser = as_role("tenant_owner")
    old = _page_token(browser)
    browser.login(make_user(role="tenant_owner"))  # another sign-in family: the raw token is renewed
    new = _page_token(browser)
    assert new != old
    assert browser.post("/me/locale", data={"locale": "en"}, headers={"X-CSRFToken": old}).status_code == 400
    assert browser.post("/me/locale", data={"locale": "en"}, headers={"X-CSRFToken": new}).status_code in (
        200,
        204,
        303,
    )


def test_the_token_is_remembered_only_under_its_own_secret(app):
    with app.test_request_context():
        session["csrf_token"] = "r" * 40
        token = cookies.csrf_token()
        assert cookies._signed_tokens[(app.secret_key, "r" * 40)] == token
        assert not any(key[1] == "r" * 40 and key[0] != app.secret_key for key in cookies._signed_tokens)
