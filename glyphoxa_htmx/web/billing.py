"""Billing pages (owner only) and the Stripe webhook receiver."""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify, request, url_for
from flask_login import current_user, login_required

from glyphoxa_htmx.core import htmx
from glyphoxa_htmx.core.authz import Perm, require
from glyphoxa_htmx.core.errors import ValidationError
from glyphoxa_htmx.extensions import csrf, limiter
from glyphoxa_htmx.services import billing, plans

log = logging.getLogger(__name__)

bp = Blueprint("billing", __name__)


def _page(errors=None, status: int = 200, template: str = "billing/index.html"):
    data = billing.overview(current_user)
    return htmx.render(
        template,
        "content",
        status=status,
        data=data,
        errors=errors or {},
        intervals=plans.INTERVALS,
        grace_days=plans.GRACE.days,
        subscription_statuses=billing.SUBSCRIPTION_STATUSES,
        invoice_statuses=billing.INVOICE_STATUSES,
    )


@bp.get("/billing")
@login_required
def index():
    return _page()


@bp.post("/billing/checkout")
@login_required
def checkout():
    try:
        url = billing.start_checkout(
            current_user,
            request.form.get("tier", ""),
            request.form.get("interval", "month"),
            success_url=url_for("billing.success", _external=True),
            cancel_url=url_for("billing.cancel", _external=True),
            email=getattr(current_user.user, "email", None),
        )
    except ValidationError as exc:
        return _page(exc.errors, 422)
    return htmx.redirect_to(url)


@bp.post("/billing/portal")
@login_required
def portal():
    try:
        url = billing.portal_url(current_user, return_url=url_for("billing.index", _external=True))
    except ValidationError as exc:
        return _page(exc.errors, 422)
    return htmx.redirect_to(url)


@bp.get("/billing/success")
@login_required
def success():
    require(current_user, Perm.MANAGE_BILLING)
    return _page(template="billing/success.html")


@bp.get("/billing/cancel")
@login_required
def cancel():
    require(current_user, Perm.MANAGE_BILLING)
    return _page(template="billing/cancel.html")


@bp.post("/api/v1/billing/webhook")
@csrf.exempt  # verified by Stripe's signature instead (tests/test_csrf.py lists it with that reason)
@limiter.limit("100 per minute")
def webhook():
    if not plans.billing_enabled():
        return jsonify(error="billing is disabled"), 404
    payload = request.get_data(cache=False)
    try:
        event = billing.verify(payload, request.headers.get("Stripe-Signature"))
    except billing.BadSignature as exc:
        log.warning("stripe webhook refused: %s", exc)
        return jsonify(error="invalid signature"), 400
    try:
        outcome = billing.handle_event(event)
    except Exception:  # noqa: BLE001 - rolled back; 5xx makes Stripe retry
        log.exception("stripe webhook %s (%s) failed", event.get("id"), event.get("type"))
        return jsonify(error="processing failed, retry"), 500
    return jsonify(received=True, outcome=outcome.status), 200
