"""The one place that knows the HX-* headers: full page vs. named block, toasts, redirects."""

from __future__ import annotations

import json

from flask import Response, flash, g, make_response, redirect, render_template, request
from jinja2_fragments.flask import render_block


def is_htmx() -> bool:
    return request.headers.get("HX-Request") == "true"


def is_boosted() -> bool:
    return request.headers.get("HX-Boosted") == "true"


def wants_block() -> bool:
    """A non-boosted htmx request gets a block; everything else gets the whole page."""
    return is_htmx() and not is_boosted()


def hx_target() -> str | None:
    return request.headers.get("HX-Target")


def render(template: str, block: str | None = None, *, status: int = 200, **context) -> Response:
    """Render the full page, or just ``block`` of the same template for an htmx request."""
    if block and wants_block():
        body = render_block(template, block, **context)
    else:
        body = render_template(template, **context)
    return make_response(body, status)


def toast(message: str, level: str = "success") -> None:
    """Queue a message: an HX-Trigger `toast` event for htmx, a flashed message otherwise."""
    if is_htmx():
        g.setdefault("_toasts", []).append({"message": message, "level": level})
    else:
        flash(message, level)


def trigger(event: str, detail=None) -> None:
    """Raise a client-side event (HX-Trigger) for other parts of the page."""
    g.setdefault("_triggers", {})[event] = detail if detail is not None else True


def apply_headers(response: Response) -> Response:
    """after_request: Vary on HX-Request, and serialise queued events into HX-Trigger."""
    response.vary.add("HX-Request")
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


def redirect_to(url: str, status: int = 303) -> Response:
    """After a successful non-GET: 303 for plain forms, HX-Redirect for htmx (a real navigation,
    so the next page is whole and its URL is in the address bar)."""
    if is_htmx():
        resp = make_response("", 204)
        resp.headers["HX-Redirect"] = url
        return resp
    return redirect(url, status)


def client_redirect(url: str) -> Response:
    """Full navigation (e.g. to sign-in when the session expired during an htmx request)."""
    if is_htmx():
        resp = make_response("", 401 if url.startswith("/auth") else 200)
        resp.headers["HX-Redirect"] = url
        return resp
    return redirect(url, 303)
