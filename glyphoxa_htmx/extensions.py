"""Flask extensions, created unbound and attached in the app factory (init_app pattern)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import flask_login.utils
from flask.globals import _cv_app, _cv_request
from flask_htmx import HTMX
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager, current_user
from flask_migrate import Migrate
from flask_sock import Sock
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

WEB_SCHEMA = "web"


class Base(DeclarativeBase):
    """Web-owned tables: all in the `web` schema, migrated by Alembic."""

    metadata = MetaData(schema=WEB_SCHEMA, naming_convention=NAMING)


db = SQLAlchemy(model_class=Base, engine_options={"pool_pre_ping": True})
# The web models' base class: db.Model at run time (Base plus Flask-SQLAlchemy's bind and table-name mixins). A type
# checker cannot take an instance attribute as a base class, so it sees Base, which db.Model derives from.
if TYPE_CHECKING:
    Model = Base
else:
    Model = db.Model
migrate = Migrate()
csrf = CSRFProtect()
sock = Sock()
htmx_ext = HTMX()  # read through glyphoxa_htmx.core.htmx only (one place knows the HX-* names)

# Who is signed in: flask-login with a request loader over the server-side, hashed, rotating
# sign-in session (web/auth.py registers the loader and the unauthorized handler). No
# remember-me cookie and no session protection: the gx_session token is the whole sign-in.
login_manager = LoginManager()
login_manager.session_protection = None

_NO_USER = object()


def _get_user() -> Any:
    """flask-login's ``_get_user``, which ``current_user`` resolves through on every use (~26
    times a page), with the request and app contexts read directly instead of through three more
    of werkzeug's proxies (issue 18: ~4 % of a page). The same answers: None outside a request;
    else the request's user, loaded on first use: by the request loader itself when that is all the
    login manager's ``_load_user`` would do (``_request_loader_only``), else by ``_load_user``.
    Installed over flask-login's own below (``current_user`` looks the name up on each use;
    ``tests/test_auth.py`` checks it is in place and answers as the original does)."""
    req = _cv_request.get(None)
    if req is None:
        return None
    ctx = _cv_app.get()
    user = ctx.g.__dict__.get("_login_user", _NO_USER)
    if user is _NO_USER:
        manager = ctx.app.login_manager  # type: ignore[attr-defined]  # (flask-login sets it)
        if _request_loader_only(manager, ctx.app, req.request):
            found = manager._request_callback(req.request)
            ctx.g._login_user = found if found is not None else manager.anonymous_user()
        else:
            manager._load_user()
        user = ctx.g._login_user
    return user


def _request_loader_only(manager: LoginManager, app: Any, request: Any) -> bool:
    """Whether flask-login's ``_load_user`` would only call the request loader (issue 18: its
    other steps — a session-protection hash of the address and browser, the session's user id,
    two signals — cost ~20 µs a request and do nothing here): no user loader (nobody calls
    ``login_user``), no session protection, no remember-me cookie, no signal receivers. Anything
    else takes flask-login's own path."""
    return (
        manager._user_callback is None
        and manager._request_callback is not None
        and not app.config.get("SESSION_PROTECTION", manager.session_protection)
        and app.config.get("REMEMBER_COOKIE_NAME", flask_login.COOKIE_NAME) not in request.cookies
        and not flask_login.user_accessed.receivers
        and not flask_login.user_loaded_from_request.receivers
    )


flask_login_get_user = flask_login.utils._get_user  # flask-login's own (the tests compare)
flask_login.utils._get_user = _get_user


def _rate_key() -> str:
    if current_user.is_authenticated:
        return f"user:{current_user.user_id}"
    return f"ip:{get_remote_address()}"


limiter = Limiter(key_func=_rate_key, default_limits=[])  # headers: off, see app.py
user_or_ip = _rate_key
