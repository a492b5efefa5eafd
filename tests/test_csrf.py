"""CSRF is enforced on every state-changing route: walk the URL map and try each without a token."""

from __future__ import annotations

import re

# Routes that legitimately skip CSRF, each with its reason. Nothing else may be listed.
EXEMPT: set[str] = {
    # Stripe's servers post it without a browser session; it is verified by the Stripe-Signature
    # HMAC instead (tests/test_billing.py: forged and stale signatures are refused).
    "billing.webhook",
}


def _fill(rule: str) -> str:
    return re.sub(r"<(?:[^:>]+:)?([^>]+)>", lambda m: "x1", rule)


def test_every_unsafe_route_requires_csrf(app, as_role):
    b = as_role("super_admin")
    checked = 0
    for rule in app.url_map.iter_rules():
        unsafe = (rule.methods or set()) & {"POST", "PUT", "PATCH", "DELETE"}
        if not unsafe or rule.endpoint in EXEMPT or rule.endpoint == "static":
            continue
        for method in unsafe:
            resp = b.request(method, _fill(rule.rule), csrf=False)
            assert resp.status_code == 400, f"{method} {rule.rule} answered {resp.status_code} without a CSRF token"
            checked += 1
    assert checked >= 5


def test_htmx_header_token_is_accepted(app, as_role):
    b = as_role("tenant_owner")
    assert b.post("/auth/refresh", htmx=True).status_code in (200, 204)


def test_csrf_failure_for_htmx_is_a_toast(app, as_role):
    b = as_role("tenant_owner")
    resp = b.post("/auth/refresh", htmx=True, csrf=False)
    assert resp.status_code == 400
    assert "expired" in resp.headers["HX-Trigger"]
