"""One error path: full error pages for normal requests, a toast (HX-Trigger) for htmx requests."""

from __future__ import annotations

import logging
import time

from flask import Flask, g, make_response, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.errors import DomainError
from glyphoxa_htmx.core.i18n import _, lazy_gettext

log = logging.getLogger(__name__)

TITLES = {
    400: (
        lazy_gettext("Something in that request was off"),
        lazy_gettext("Go back and try again. If it keeps happening, reload the page."),
    ),
    403: (
        lazy_gettext("You can't do that here"),
        lazy_gettext("Your role doesn't allow this. The owner of your table can change roles."),
    ),
    404: (lazy_gettext("Not found"), lazy_gettext("That page or item doesn't exist, or it isn't part of your table.")),
    405: (lazy_gettext("Not allowed"), lazy_gettext("That action isn't available here.")),
    409: (
        lazy_gettext("That changed in the meantime"),
        lazy_gettext("Reload to see the latest version, then try again."),
    ),
    413: (lazy_gettext("That file is too large"), lazy_gettext("Choose a smaller file.")),
    422: (lazy_gettext("Please check your input"), lazy_gettext("Some fields need fixing.")),
    429: (
        lazy_gettext("Slow down a little"),
        lazy_gettext("You've done that a lot in a short time. Wait a minute and try again."),
    ),
    500: (lazy_gettext("Something went wrong on our side"), lazy_gettext("We've logged it. Try again in a moment.")),
    503: (lazy_gettext("A service is unavailable"), lazy_gettext("Try again in a moment.")),
}


DATABASE_UNAVAILABLE = lazy_gettext(
    "The database didn't answer in time or the connection dropped. Try again in a moment."
)


def _as_signed_out() -> None:
    """Drop the failed transaction and treat the request as signed out (the signed-in header and the
    user's language both need the database that may just have failed)."""
    try:
        from glyphoxa_htmx.extensions import db

        db.session.rollback()
    except Exception:  # noqa: BLE001
        pass
    from glyphoxa_htmx.extensions import login_manager

    g._login_user = login_manager.anonymous_user()  # flask-login: render as signed out


def error_response(status: int, message: str | None = None):
    title, hint = TITLES.get(status, TITLES[500] if status >= 500 else TITLES[400])
    try:
        title_text, text = str(title), str(message or hint)  # in the user's language
    except Exception:  # noqa: BLE001 - choosing the language needed the signed-in user (the database)
        log.warning("error text in the browser's language: the signed-in user couldn't be loaded", exc_info=True)
        _as_signed_out()
        title_text, text = str(title), str(message or hint)
    if htmx.is_htmx():
        return htmx.error_response(status, text)
    try:
        body = render_template("errors/error.html", status=status, title=title_text, message=text)
    except Exception:  # noqa: BLE001 - e.g. the signed-in header needed the database that just failed
        log.warning("error page rendered without the signed-in header", exc_info=True)
        _as_signed_out()
        body = render_template("errors/error.html", status=status, title=title_text, message=text)
    return make_response(body, status)


def _retry_after() -> int:
    """Seconds until the breached rate limit's window resets (at least 1). Flask-Limiter's own
    response headers are off: reading the window's state for X-RateLimit-* on every response was
    two more Redis round trips per request (issue 18), so only a refusal asks, once."""
    from glyphoxa_htmx.extensions import limiter

    try:
        limit = limiter.current_limit
        return max(1, int(limit.reset_at - time.time())) if limit is not None else 60
    except Exception:  # noqa: BLE001 - storage unreachable: a safe default beats a 500 on a 429
        return 60


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        return error_response(exc.status, exc.message)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        return error_response(400, _("Your form expired. Reload the page and try again."))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if exc.code is None or exc.code < 400:
            return exc
        message = None
        if exc.code == 429:
            message = _("You've done that a lot in a short time. Wait a minute and try again.")
            response = error_response(exc.code, message)
            response.headers["Retry-After"] = str(_retry_after())
            return response
        return error_response(exc.code, message)

    @app.errorhandler(Exception)
    def _unhandled(exc: Exception):
        if isinstance(exc, HTTPException):
            return _http(exc)
        from psycopg.errors import UndefinedTable
        from sqlalchemy.exc import OperationalError

        from glyphoxa_htmx.services import transcripts

        database_down = isinstance(exc, OperationalError)
        # A tenant's memory table taken as present went away meanwhile (services/transcripts.py,
        # tenant removal): the next try asks the database again.
        table_gone = isinstance(getattr(exc, "orig", None), UndefinedTable)
        if table_gone:
            transcripts.forget_memory_tables()
            log.warning(
                "a table went away during the request", exc_info=True, extra={"request_id": g.get("request_id")}
            )
        else:
            # Bound parameters never reach this log: the engine hides them (hide_parameters).
            log.exception(
                "database unavailable" if database_down else "unhandled error",
                extra={"request_id": g.get("request_id")},
            )
        try:
            from glyphoxa_htmx.extensions import db

            db.session.rollback()
        except Exception:  # noqa: BLE001
            pass
        if database_down or table_gone:  # lost connection, statement timeout, unreachable; a table gone
            return error_response(503, DATABASE_UNAVAILABLE)
        return error_response(InternalServerError.code)
