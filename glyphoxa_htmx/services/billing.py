"""Billing with Stripe: Checkout, the Billing Portal, the subscription page's data and the webhook.

Rules:

* ``GLYPHOXA_BILLING=disabled`` (the embedded default): nothing here calls Stripe; the pages
  explain self-hosted mode and ``plans.current`` serves every tenant unlimited.
* The webhook is verified with Stripe's own signature check (``Stripe-Signature``,
  ``t=…,v1=HMAC-SHA256``, 5-minute tolerance). Each event is processed exactly once: its id is
  inserted into ``billing_events`` in the same transaction as its effects, so a replay (or a
  concurrent duplicate, which waits on the primary key) is a no-op, and a failure rolls
  everything back and answers 5xx so Stripe retries.
* Out-of-order delivery converges: subscription events never trust the (possibly stale) object
  in the event; the subscription is fetched from Stripe and its *current* state is applied.
  Invoices only move forward (draft → open → paid/void/uncollectible).
* A tier change is pushed to the gateway (``plans.apply_tier``) only when the served tier differs
  from ``applied_tier``; past_due keeps the tier for 7 days (``sweep`` downgrades afterwards).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import stripe
from flask_babel import force_locale, format_decimal
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from stripe.params.checkout import SessionCreateParams

from glyphoxa_htmx.core import audit
from glyphoxa_htmx.core.authz import Actor, Perm, require
from glyphoxa_htmx.core.deps import settings
from glyphoxa_htmx.core.errors import Unavailable, ValidationError
from glyphoxa_htmx.core.i18n import _, lazy_gettext, valid_locale
from glyphoxa_htmx.core.metrics import SUBSCRIPTION_CHANGES
from glyphoxa_htmx.extensions import db
from glyphoxa_htmx.models import BillingEvent, Invoice, Subscription, Tenant, User
from glyphoxa_htmx.services import plans

log = logging.getLogger(__name__)

TOLERANCE_SECONDS = 300
HANDLED = {
    "checkout.session.completed",
    "invoice.paid",
    "invoice.payment_failed",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.created",
}
ENDED_STATUSES = {"canceled", "incomplete_expired"}  # a subscription that ended (churn counts these)
INVOICE_RANK = {"draft": 0, "open": 1, "uncollectible": 2, "paid": 3, "void": 3}
# What the billing page shows for Stripe's states (the stored values stay Stripe's own words).
SUBSCRIPTION_STATUSES = {
    "active": lazy_gettext("active"),
    "trialing": lazy_gettext("trialing"),
    "past_due": lazy_gettext("past due"),
    "canceled": lazy_gettext("canceled"),
    "incomplete": lazy_gettext("incomplete"),
    "incomplete_expired": lazy_gettext("incomplete expired"),
    "unpaid": lazy_gettext("unpaid"),
    "paused": lazy_gettext("paused"),
}
INVOICE_STATUSES = {
    "draft": lazy_gettext("draft"),
    "open": lazy_gettext("open"),
    "paid": lazy_gettext("paid"),
    "void": lazy_gettext("void"),
    "uncollectible": lazy_gettext("uncollectible"),
}


class BadSignature(Exception):
    """The payload isn't signed by our endpoint secret (or is outside the tolerance window)."""


def _client() -> stripe.StripeClient:
    cfg = settings()
    if cfg.billing != "stripe":  # fail closed: never reach Stripe in self-hosted mode
        raise RuntimeError("Stripe is disabled (GLYPHOXA_BILLING=disabled)")
    return stripe.StripeClient(
        cfg.stripe_secret_key,
        max_network_retries=1,
        base_addresses={"api": cfg.stripe_api_base} if cfg.stripe_api_base else None,
    )


def _ts(value: Any) -> datetime | None:
    if value in (None, "", 0):
        return None
    try:
        return datetime.fromtimestamp(int(value), tz=UTC)
    except (TypeError, ValueError, OverflowError):
        return None


def _id(value: object) -> str | None:
    """An id field that Stripe sends as a string, or as the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if value else None


# --------------------------------------------------------------------------- page data


@dataclass
class Overview:
    enabled: bool
    tier: plans.Tier
    subscription: Subscription | None = None
    grace_days_left: int = 0
    invoices: list[Invoice] = field(default_factory=list)
    plans: list[plans.Tier] = field(default_factory=list)


def overview(actor: Actor, now: datetime | None = None) -> Overview:
    """The billing page: current tier, subscription, grace banner, invoices (two queries)."""
    require(actor, Perm.MANAGE_BILLING)
    if not plans.billing_enabled():
        return Overview(enabled=False, tier=plans.UNLIMITED)
    sub = db.session.execute(select(Subscription).where(Subscription.tenant_id == actor.tenant_id)).scalar_one_or_none()
    tier = plans.served_tier(sub.tier, sub.status, sub.past_due_since, now) if sub else plans.APPRENTICE
    invoices = list(
        db.session.execute(
            select(Invoice).where(Invoice.tenant_id == actor.tenant_id).order_by(Invoice.created.desc()).limit(24)
        ).scalars()
    )
    grace = plans.grace_days_left(sub.past_due_since, now) if sub and sub.status == "past_due" else 0
    return Overview(
        enabled=True,
        tier=tier,
        subscription=sub,
        grace_days_left=grace,
        invoices=invoices,
        plans=list(plans.TIERS.values()),
    )


def _require_enabled() -> None:
    if not plans.billing_enabled():
        raise ValidationError(
            {"": _("Billing is turned off on this server (self-hosted mode): every table is unlimited.")}
        )


def start_checkout(
    actor: Actor, tier_key: str, interval: str, *, success_url: str, cancel_url: str, email: str | None = None
) -> str:
    """A Stripe Checkout session (subscription mode) for a tier and interval; returns its URL."""
    require(actor, Perm.MANAGE_BILLING)
    _require_enabled()
    tier = plans.TIERS.get(tier_key or "")
    if tier is None or not tier.paid:
        raise ValidationError({"tier": _("Choose one of the paid plans.")})
    if interval not in plans.INTERVALS:
        raise ValidationError({"interval": _("Choose monthly or yearly billing.")})
    sub = db.session.execute(select(Subscription).where(Subscription.tenant_id == actor.tenant_id)).scalar_one_or_none()
    if sub is not None and sub.stripe_subscription_id and sub.status not in {"canceled", "incomplete_expired"}:
        raise ValidationError(
            {"": _("Your table already has a subscription. Change or cancel it in the billing portal.")}
        )
    price = settings().stripe_price_map()[f"{tier.key}_{interval}"]
    params: SessionCreateParams = {
        "mode": "subscription",
        "line_items": [{"price": price, "quantity": 1}],
        "success_url": success_url + "?session_id={CHECKOUT_SESSION_ID}",
        "cancel_url": cancel_url,
        "client_reference_id": actor.tenant_id,
        "metadata": {"tenant_id": actor.tenant_id, "tier": tier.key},
        "subscription_data": {"metadata": {"tenant_id": actor.tenant_id, "tier": tier.key}},
    }
    if sub is not None and sub.stripe_customer_id:
        params["customer"] = sub.stripe_customer_id
    elif email:
        params["customer_email"] = email
    try:
        session = _client().v1.checkout.sessions.create(params=params)
    except stripe.StripeError as exc:
        log.warning("checkout session failed: %s", exc.__class__.__name__)
        raise Unavailable(
            _("Stripe couldn't start the checkout right now. Nothing was charged; try again in a moment.")
        ) from exc
    audit.record(
        "billing.checkout_start",
        "subscription",
        actor.tenant_id,
        actor=actor,
        details={"tier": tier.key, "interval": interval, "checkout_session": session.id},
    )
    db.session.commit()
    assert session.url is not None  # a hosted Checkout Session always has its page's URL
    return session.url


def portal_url(actor: Actor, *, return_url: str) -> str:
    """A Billing Portal session for card changes, invoices and cancellation."""
    require(actor, Perm.MANAGE_BILLING)
    _require_enabled()
    sub = db.session.execute(select(Subscription).where(Subscription.tenant_id == actor.tenant_id)).scalar_one_or_none()
    if sub is None or not sub.stripe_customer_id:
        raise ValidationError({"": _("Your table has no Stripe customer yet. Choose a plan first.")})
    try:
        session = _client().v1.billing_portal.sessions.create(
            params={"customer": sub.stripe_customer_id, "return_url": return_url}
        )
    except stripe.StripeError as exc:
        log.warning("portal session failed: %s", exc.__class__.__name__)
        raise Unavailable(_("Stripe's billing portal is unavailable right now. Try again in a moment.")) from exc
    return session.url


# --------------------------------------------------------------------------- webhook


def verify(payload: bytes, signature: str | None) -> dict[str, Any]:
    """Stripe's signature check (the library's own), then the event as plain JSON."""
    secret = settings().stripe_webhook_secret
    try:
        stripe.WebhookSignature.verify_header(payload.decode("utf-8"), signature or "", secret, TOLERANCE_SECONDS)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        raise BadSignature(str(exc)) from exc
    try:
        event = json.loads(payload)
    except ValueError as exc:
        raise BadSignature("payload is not JSON") from exc
    if not isinstance(event, dict) or not event.get("id") or not event.get("type"):
        raise BadSignature("not a Stripe event")
    return event


@dataclass
class Outcome:
    status: str  # applied | replay | ignored
    changes: list[tuple[str, str]] = field(default_factory=list)


def handle_event(event: dict[str, Any], now: datetime | None = None) -> Outcome:
    """Apply one verified event in one transaction. Raises on any failure (rolled back)."""
    now = now or datetime.now(UTC)
    try:
        inserted = db.session.execute(
            pg_insert(BillingEvent)
            .values(id=str(event["id"]), type=str(event["type"]))
            .on_conflict_do_nothing(index_elements=["id"])
            .returning(BillingEvent.id)
        ).scalar_one_or_none()
        if inserted is None:
            db.session.rollback()
            return Outcome("replay")
        changes: list[tuple[str, str]] = []
        etype = event["type"]
        obj = (event.get("data") or {}).get("object") or {}
        tenant_id, status = None, "ignored"
        if etype in HANDLED and isinstance(obj, dict):
            tenant_id, status = _dispatch(etype, obj, now, changes)
        row = db.session.get_one(BillingEvent, str(event["id"]))  # inserted above
        row.tenant_id, row.outcome = tenant_id, status
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    for before, after in changes:
        SUBSCRIPTION_CHANGES.labels(before, after).inc()
    return Outcome(status, changes)


def _dispatch(etype: str, obj: dict[str, Any], now: datetime, changes: list[tuple[str, str]]) -> tuple[str | None, str]:
    if etype == "checkout.session.completed":
        if obj.get("mode") != "subscription" or not obj.get("subscription"):
            return None, "ignored"
        tenant_id = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("tenant_id")
        sub = _fetch_subscription(_id(obj["subscription"]))
        return _sync(sub, now, changes, tenant_hint=tenant_id)
    if etype.startswith("customer.subscription."):
        sub = _fetch_subscription(_id(obj.get("id")))
        return _sync(sub, now, changes)
    # invoice.paid / invoice.payment_failed
    sub_id = _id(obj.get("subscription")) or _id(
        (((obj.get("parent") or {}).get("subscription_details")) or {}).get("subscription")
    )
    if not sub_id:
        return None, "ignored"
    sub = _fetch_subscription(sub_id)
    tenant_id, status = _sync(sub, now, changes)
    if tenant_id is None:
        return None, status
    _upsert_invoice(tenant_id, sub_id, obj)
    if etype == "invoice.payment_failed":
        _mail_payment_failed(tenant_id, obj, now)
    return tenant_id, "applied"


def _fetch_subscription(sub_id: str | None) -> dict[str, Any]:
    if not sub_id:
        raise ValueError("event without a subscription id")
    sub = _client().v1.subscriptions.retrieve(sub_id)
    return sub.to_dict()


def _tier_of(sub: dict[str, Any]) -> tuple[str, str]:
    """(tier, interval) from the subscription's price (our configured ids), else its metadata."""
    prices = {v: k for k, v in settings().stripe_price_map().items()}
    items = ((sub.get("items") or {}).get("data")) or []
    for item in items:
        price = item.get("price") or {}
        key = prices.get(_id(price) or "")
        if key:
            tier, _, interval = key.rpartition("_")
            return tier, interval
    meta_tier = (sub.get("metadata") or {}).get("tier")
    if meta_tier in plans.TIERS:
        interval = ((items[0].get("price") or {}).get("recurring") or {}).get("interval", "month") if items else "month"
        return meta_tier, interval if interval in plans.INTERVALS else "month"
    raise ValueError(f"subscription {sub.get('id')} has no price we know (STRIPE_PRICES)")


def _period(sub: dict[str, Any], key: str) -> datetime | None:
    value = sub.get(key)
    if value is None:  # newer API versions keep the period on the items
        items = ((sub.get("items") or {}).get("data")) or []
        value = items[0].get(key) if items else None
    return _ts(value)


def _sync(
    sub: dict[str, Any], now: datetime, changes: list[tuple[str, str]], tenant_hint: str | None = None
) -> tuple[str | None, str]:
    """Make our subscription row match Stripe's current subscription, then apply the served tier."""
    sub_id = str(sub["id"])
    customer = _id(sub.get("customer")) or ""
    row = db.session.execute(
        select(Subscription).where(Subscription.stripe_subscription_id == sub_id).with_for_update()
    ).scalar_one_or_none()
    tenant_id = row.tenant_id if row else (tenant_hint or (sub.get("metadata") or {}).get("tenant_id"))
    if not tenant_id or db.session.get(Tenant, tenant_id) is None:
        log.warning("stripe subscription %s names no known tenant", sub_id)
        return None, "ignored_unknown_tenant"
    if row is None:
        row = db.session.execute(
            select(Subscription).where(Subscription.tenant_id == tenant_id).with_for_update()
        ).scalar_one_or_none()
        if row is not None and row.stripe_subscription_id and row.stripe_subscription_id != sub_id:
            # The tenant has another subscription; a stale, ended one must not replace it.
            if sub.get("status") in {"canceled", "incomplete_expired"} and row.status not in {"canceled"}:
                return tenant_id, "ignored_stale_subscription"
        if row is None:
            row = Subscription(tenant_id=tenant_id, stripe_customer_id=customer, applied_tier="apprentice")
            db.session.add(row)
    tier, interval = _tier_of(sub)
    status = str(sub.get("status") or "active")
    before = {"tier": row.tier, "status": row.status, "stripe_subscription_id": row.stripe_subscription_id}
    row.stripe_subscription_id = sub_id
    row.stripe_customer_id = customer or row.stripe_customer_id
    row.tier, row.interval, row.status = tier, interval, status
    row.current_period_start = _period(sub, "current_period_start")
    row.current_period_end = _period(sub, "current_period_end")
    row.cancel_at = _ts(sub.get("cancel_at"))
    if status == "past_due":
        row.past_due_since = row.past_due_since or now
    else:
        row.past_due_since = None
    if status in ENDED_STATUSES:
        row.canceled_at = row.canceled_at or _ts(sub.get("ended_at")) or now
    else:
        row.canceled_at = None  # (re)subscribed: not churned
    row.updated_at = now
    after = {"tier": row.tier, "status": row.status, "stripe_subscription_id": sub_id}
    if after != before:
        audit.record(
            "billing.subscription_sync", "subscription", sub_id, tenant_id=tenant_id, before=before, after=after
        )
    db.session.flush()
    _apply_if_changed(row, now, changes, reason=f"subscription {status}")
    return tenant_id, "applied"


def _apply_if_changed(row: Subscription, now: datetime, changes: list[tuple[str, str]], *, reason: str) -> None:
    served = plans.served_tier(row.tier, row.status, row.past_due_since, now)
    if served.key == row.applied_tier:
        return
    plans.apply_tier(row.tenant_id, served, reason=reason)
    changes.append((row.applied_tier, served.key))
    row.applied_tier = served.key


def _upsert_invoice(tenant_id: str, sub_id: str, obj: dict[str, Any]) -> None:
    inv_id = _id(obj.get("id"))
    if not inv_id:
        return
    status = str(obj.get("status") or "open")
    values = {
        "tenant_id": tenant_id,
        "stripe_subscription_id": sub_id,
        "number": obj.get("number"),
        "status": status,
        "currency": str(obj.get("currency") or "usd"),
        "amount_due": int(obj.get("amount_due") or 0),
        "amount_paid": int(obj.get("amount_paid") or 0),
        "hosted_invoice_url": obj.get("hosted_invoice_url"),
        "period_start": _ts(obj.get("period_start")),
        "period_end": _ts(obj.get("period_end")),
        "created": _ts(obj.get("created")) or datetime.now(UTC),
    }
    row = db.session.get(Invoice, inv_id, with_for_update=True)
    if row is None:
        db.session.add(Invoice(id=inv_id, **values))
        return
    if row.tenant_id != tenant_id:
        return  # never move an invoice between tenants
    if INVOICE_RANK.get(status, 1) < INVOICE_RANK.get(row.status, 1):
        return  # an older state arriving late: keep the newer one
    for key, value in values.items():
        if value is not None:
            setattr(row, key, value)


def payment_failed_mail(amount_cents: int, currency: str, link: str) -> tuple[str, str]:
    """(subject, body) of the failed-payment mail in the current language (the caller forces the
    recipient's language around it)."""
    amount = f"{format_decimal(amount_cents / 100, '#,##0.00')} {currency}"
    if link:
        body = _(
            "Hello,\n\nthe payment of %(amount)s for your Glyphoxa table failed.\n"
            "Your plan stays active for %(days)s days while you update your card:\n%(link)s\n\n"
            "After that your table moves to the free %(plan)s plan.\n\n— Glyphoxa\n",
            amount=amount,
            days=plans.GRACE.days,
            link=link,
            plan=str(plans.APPRENTICE.name),
        )
    else:
        body = _(
            "Hello,\n\nthe payment of %(amount)s for your Glyphoxa table failed.\n"
            "Your plan stays active for %(days)s days while you update your card in the billing portal.\n\n"
            "After that your table moves to the free %(plan)s plan.\n\n— Glyphoxa\n",
            amount=amount,
            days=plans.GRACE.days,
            plan=str(plans.APPRENTICE.name),
        )
    return _("Your Glyphoxa payment failed"), body


def _mail_payment_failed(tenant_id: str, invoice: dict[str, Any], now: datetime) -> None:
    from glyphoxa_htmx.adapters import mail

    owners = db.session.execute(
        select(User.email, User.locale).where(
            User.tenant_id == tenant_id, User.role == "tenant_owner", User.email.is_not(None)
        )
    ).all()
    amount = int(invoice.get("amount_due") or 0)
    currency = str(invoice.get("currency") or "usd").upper()
    link = invoice.get("hosted_invoice_url") or ""
    for address, locale in owners:
        # The recipient's language when they chose one, else English (a webhook has no browser).
        with force_locale(valid_locale(locale) or "en"):
            subject, body = payment_failed_mail(amount, currency, link)
        mail.send(address, subject, body)
    audit.record(
        "billing.payment_failed_mail",
        "tenant",
        tenant_id,
        tenant_id=tenant_id,
        details={"recipients": len(owners), "invoice": _id(invoice.get("id"))},
    )


# --------------------------------------------------------------------------- grace expiry


def sweep(now: datetime | None = None) -> list[tuple[str, str, str]]:
    """Apply every subscription whose served tier changed with time (the 7-day grace ended).
    Run it periodically (``glyphoxa-web billing-sweep``); returns (tenant, from, to)."""
    now = now or datetime.now(UTC)
    if not plans.billing_enabled():
        return []
    done = []
    rows = (
        db.session.execute(
            select(Subscription).where(Subscription.status == "past_due").with_for_update(skip_locked=True)
        )
        .scalars()
        .all()
    )
    changes: list[tuple[str, str]] = []
    try:
        for row in rows:
            before = row.applied_tier
            _apply_if_changed(row, now, changes, reason="grace period ended")
            if row.applied_tier != before:
                done.append((row.tenant_id, before, row.applied_tier))
        db.session.commit()
    except BaseException:
        db.session.rollback()
        raise
    for before, after in changes:
        SUBSCRIPTION_CHANGES.labels(before, after).inc()
    return done
