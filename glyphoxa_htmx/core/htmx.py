"""The one place that knows htmx: full page vs. named block, toasts, redirects.

The HX-* request headers are read by flask-htmx (``extensions.htmx_ext``) and only here; the
response headers are written by flask-htmx's ``make_response`` and ``apply_headers`` below."""

from __future__ import annotations

import json
from typing import Any

from flask import Response, flash, g, make_response, redirect, render_template, request
from flask_htmx import make_response as hx_response
from jinja2_fragments.flask import render_block
from werkzeug.wrappers import Response as BaseResponse

from glyphoxa_htmx.extensions import htmx_ext


def is_htmx() -> bool:
    return bool(htmx_ext)


def is_boosted() -> bool:
    return bool(htmx_ext.boosted)


def is_history_restore() -> bool:
    """htmx re-requests a pushed URL (with HX-Request) when Back finds no cached page."""
    return bool(htmx_ext.history_restore_request)


def wants_block() -> bool:
    """A non-boosted htmx request gets a block; everything else (including a history restore,
    which replaces the whole body) gets the whole page."""
    return is_htmx() and not is_boosted() and not is_history_restore()


def hx_target() -> str | None:
    target: str | None = htmx_ext.target  # flask-htmx is untyped: the HX-Target header or None
    return target


def current_url() -> str:
    """The page the htmx request came from ('' for a normal request)."""
    return htmx_ext.current_url or ""


def render(template: str, block: str | None = None, *, status: int = 200, **context: Any) -> Response:
    """Render the full page, or just ``block`` of the same template for an htmx request."""
    if block and wants_block():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    return make_response(body, status)


def toast(message: str, level: str = "success") -> None:
    """Queue a message: an HX-Trigger `toast` event for htmx, a flashed message otherwise."""
    message = str(message)  # a lazy translation becomes text in the request's language (JSON, flash)
    if is_htmx():
        g.setdefault("_toasts", []).append({"message": message, "level": level})
    else:
        flash(message, level)


def trigger(event: str, detail: object = None) -> None:
    """Raise a client-side event (HX-Trigger) for other parts of the page."""
    g.setdefault("_triggers", {})[event] = detail if detail is not None else True


def apply_headers(response: Response) -> Response:
    """after_request: Vary on HX-Request, and serialise queued events into HX-Trigger."""
    if "Vary" in response.headers:
        response.vary.add("HX-Request")
    else:  # (the usual case: werkzeug's parsed ``vary`` set costs ~6 µs to build for one value)
        response.headers["Vary"] = "HX-Request"
    events = dict(g.get("_triggers", {}))
    toasts = g.get("_toasts")
    if toasts:
        events["toast"] = toasts[-1] if len(toasts) == 1 else {"messages": toasts}
    if events:
        existing = response.headers.get("HX-Trigger")
        if existing:
            try:
                events = {**json.loads(existing), **events}
            except ValueError:
                pass
        response.headers["HX-Trigger"] = json.dumps(events)
    return response


def _hx_response(status: int, **headers: Any) -> Response:
    """An empty response with HX-* headers (flask-htmx's make_response, which is untyped, builds it)."""
    response: Response = hx_response("", status, **headers)
    return response


def redirect_to(url: str, status: int = 303) -> BaseResponse:
    """After a successful non-GET: 303 for plain forms, HX-Redirect for htmx (a real navigation,
    so the next page is whole and its URL is in the address bar). Queued toasts become flashed
    messages, because the navigation would wipe an HX-Trigger toast before anyone read it."""
    if is_htmx():
        for item in g.pop("_toasts", []):
            flash(item["message"], item["level"])
        return _hx_response(204, redirect=url)
    return redirect(url, status)


def error_response(status: int, message: str) -> Response:
    """An error for an htmx request: no swap, a toast instead."""
    return _hx_response(status, trigger={"toast": {"message": str(message), "level": "error"}}, reswap="none")


def confirmed() -> bool:
    """A destructive POST may go ahead: htmx only sends it after hx-confirm was accepted, and
    the no-JavaScript confirmation page posts ``confirmed=1``."""
    return is_htmx() or request.form.get("confirmed") == "1"


def confirm_page(
    question: str, *, detail: str = "", submit_label: str, cancel_url: str, danger: bool = True
) -> Response:
    """The no-JavaScript confirmation step: the same form again, with ``confirmed=1``."""
    fields = [(k, v) for k, v in request.form.items(multi=True) if k not in {"csrf_token", "confirmed"}]
    return make_response(
        render_template(
            "confirm.html",
            question=question,
            detail=detail,
            submit_label=submit_label,
            cancel_url=cancel_url,
            danger=danger,
            action=request.path,
            fields=fields,
        )
    )


def client_redirect(url: str) -> BaseResponse:
    """Full navigation (e.g. to sign-in when the session expired during an htmx request)."""
    if is_htmx():
        return _hx_response(401 if url.startswith("/auth") else 200, redirect=url)
    return redirect(url, 303)
