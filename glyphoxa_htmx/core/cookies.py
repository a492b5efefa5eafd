"""The signed flash cookie (``gx_flash``: Flask's session) and the CSRF token signed from it,
each worked out once per process and value instead of on every request (issue 18).

A browser sends the same flash cookie on every request until the session changes, and every page
with a form signs the same raw CSRF token again. Verifying the cookie (HMAC, base64, zlib, JSON)
and signing the token (the same, the other way) were ~8 % of a page without a query. Both results
depend only on the value and the keys, so each process remembers them, keyed by both:

* a cookie is verified once; a later request with the same value gets a fresh session decoded
  from the remembered JSON (nothing shared between requests), after the same age check
  itsdangerous makes (``PERMANENT_SESSION_LIFETIME``). A forged or tampered cookie is never
  remembered (it fails the signature, as before, and yields an empty session).
* the signed form of a raw CSRF token is reused while the token signs with no time limit
  (``WTF_CSRF_TIME_LIMIT = None``, app.py); Flask-WTF still validates every submitted token.

Bounded: at MAX_REMEMBERED entries a table starts over.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask, g, session
from flask.globals import _cv_app
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask.wrappers import Request
from flask_wtf.csrf import generate_csrf
from itsdangerous import BadSignature

from glyphoxa_htmx.core.memo import Memo

MAX_REMEMBERED = 20_000

_signed_tokens: Memo[tuple[Any, str], str] = Memo(MAX_REMEMBERED)


def _keys(app: Flask) -> tuple[Any, ...]:
    return (app.secret_key, *(app.config.get("SECRET_KEY_FALLBACKS") or ()))


class RememberingSessionInterface(SecureCookieSessionInterface):
    """Flask's signed-cookie session; a verified cookie value is remembered with its signing
    time and its JSON, so the next request with it skips the signature and decompression."""

    def __init__(self) -> None:
        self._opened: Memo[str, tuple[tuple[Any, ...], int, str]] = Memo(MAX_REMEMBERED)

    def open_session(self, app: Flask, request: Request) -> SecureCookieSession | None:
        val = request.cookies.get(self.get_cookie_name(app))
        if not val or not app.secret_key:
            return super().open_session(app, request)
        keys = _keys(app)
        max_age = int(app.permanent_session_lifetime.total_seconds())
        hit = self._opened.get(val)
        if hit is not None and hit[0] == keys and 0 <= int(time.time()) - hit[1] <= max_age:
            return self.session_class(self.serializer.loads(hit[2]))
        signer = self.get_signing_serializer(app)
        assert signer is not None  # a secret key is set (checked above)
        try:
            data, signed_at = signer.loads(val, max_age=max_age, return_timestamp=True)
        except BadSignature:  # tampered, expired or from other keys: an empty session, as Flask does
            return self.session_class()
        self._opened.keep(val, (keys, int(signed_at.timestamp()), self.serializer.dumps(data)))
        return self.session_class(data)


def csrf_token() -> str:
    """Flask-WTF's ``generate_csrf()``, with the signed form of each raw token remembered."""
    app_ctx = _cv_app.get()
    current: str | None = app_ctx.g.__dict__.get("csrf_token")  # this request's, as generate_csrf answers it
    if current is not None:  # (read from the context, not through the proxy: a page asks ~7 times)
        return current
    app = app_ctx.app
    config = app.config
    remember = (
        config.get("WTF_CSRF_TIME_LIMIT", 3600) is None
        and config.get("WTF_CSRF_FIELD_NAME", "csrf_token") == "csrf_token"
    )
    secret = config.get("WTF_CSRF_SECRET_KEY") or app.secret_key
    if remember:
        raw = session.get("csrf_token")
        signed = _signed_tokens.get((secret, raw)) if isinstance(raw, str) else None
        if signed is not None:
            g.csrf_token = signed
            return signed
    token: str = generate_csrf()  # signs session["csrf_token"] (made first if there is none) now
    raw = session.get("csrf_token")  # ... so this is the raw token it just signed
    if remember and isinstance(raw, str):
        _signed_tokens.keep((secret, raw), token)
    return token
