"""One error path: full error pages for normal requests, a toast (HX-Trigger) for htmx requests."""

from __future__ import annotations

import logging

from flask import Flask, g, make_response, render_template
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.errors import DomainError
from glyphoxa_htmx.extensions import login_manager

log = logging.getLogger(__name__)

TITLES = {
    400: ("Something in that request was off", "Go back and try again. If it keeps happening, reload the page."),
    403: ("You can't do that here", "Your role doesn't allow this. The owner of your table can change roles."),
    404: ("Not found", "That page or item doesn't exist, or it isn't part of your table."),
    405: ("Not allowed", "That action isn't available here."),
    409: ("That changed in the meantime", "Reload to see the latest version, then try again."),
    413: ("That file is too large", "Choose a smaller file."),
    422: ("Please check your input", "Some fields need fixing."),
    429: ("Slow down a little", "You've done that a lot in a short time. Wait a minute and try again."),
    500: ("Something went wrong on our side", "We've logged it. Try again in a moment."),
    503: ("A service is unavailable", "Try again in a moment."),
}


DATABASE_UNAVAILABLE = "The database didn't answer in time or the connection dropped. Try again in a moment."


def error_response(status: int, message: str | None = None):
    title, hint = TITLES.get(status, TITLES[500] if status >= 500 else TITLES[400])
    text = message or hint
    if htmx.is_htmx():
        return htmx.error_response(status, text)
    try:
        body = render_template("errors/error.html", status=status, title=title, message=text)
    except Exception:  # noqa: BLE001 - e.g. the signed-in header needed the database that just failed
        log.warning("error page rendered without the signed-in header", exc_info=True)
        try:
            from glyphoxa_htmx.extensions import db

            db.session.rollback()
        except Exception:  # noqa: BLE001
            pass

        g._login_user = login_manager.anonymous_user()  # flask-login: render as signed out
        body = render_template("errors/error.html", status=status, title=title, message=text)
    return make_response(body, status)


def init_app(app: Flask) -> None:
    @app.errorhandler(DomainError)
    def _domain(exc: DomainError):
        return error_response(exc.status, exc.message)

    @app.errorhandler(CSRFError)
    def _csrf(exc: CSRFError):
        return error_response(400, "Your form expired. Reload the page and try again.")

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        if exc.code is None or exc.code < 400:
            return exc
        message = None
        if exc.code == 429:
            message = "You've done that a lot in a short time. Wait a minute and try again."
        return error_response(exc.code, message)

    @app.errorhandler(Exception)
    def _unhandled(exc: Exception):
        if isinstance(exc, HTTPException):
            return _http(exc)
        from sqlalchemy.exc import OperationalError

        database_down = isinstance(exc, OperationalError)
        # Bound parameters never reach this log: the engine hides them (hide_parameters).
        log.exception(
            "database unavailable" if database_down else "unhandled error", extra={"request_id": g.get("request_id")}
        )
        try:
            from glyphoxa_htmx.extensions import db

            db.session.rollback()
        except Exception:  # noqa: BLE001
            pass
        if database_down:  # lost connection, statement timeout, database unreachable
            return error_response(503, DATABASE_UNAVAILABLE)
        return error_response(InternalServerError.code)
