"""A local HTTP server following Stripe's API shapes for the calls Glyphoxa makes, plus helpers
that play Stripe's part in the flows (a customer completing Checkout, a renewal failing, a
cancellation) and build webhook events signed exactly as Stripe signs them.

Endpoints (form-encoded bodies with Stripe's bracket notation, ``Authorization: Bearer sk_…``):
``POST /v1/checkout/sessions``, ``POST /v1/billing_portal/sessions``,
``GET /v1/subscriptions/{id}``. Errors use Stripe's ``{"error": {"type", "code", "message"}}``.
Every request is recorded."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import threading
import time

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

WEBHOOK_SECRET = "whsec_test_" + "k" * 24
SECRET_KEY = "sk_test_fake_" + "s" * 20
PRICES = {
    "adventurer_month": "price_adv_m",
    "adventurer_year": "price_adv_y",
    "dungeon_master_month": "price_dm_m",
    "dungeon_master_year": "price_dm_y",
    "guild_month": "price_guild_m",
    "guild_year": "price_guild_y",
}
PRICES_SETTING = ",".join(f"{k}={v}" for k, v in PRICES.items())


def sign(payload: str, secret: str = WEBHOOK_SECRET, timestamp: int | None = None) -> str:
    """The Stripe-Signature header: t=<unix>,v1=hex(HMAC-SHA256(secret, "<t>.<payload>"))."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def _nested(form) -> dict:
    """Stripe's bracket notation (line_items[0][price]=…) back into nested dicts/lists."""
    out: dict = {}
    for key, value in form.items(multi=True):
        parts = key.replace("]", "").split("[")
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


class FakeStripe:
    def __init__(self) -> None:
        self.requests: list[dict] = []
        self.sessions: dict[str, dict] = {}
        self.subscriptions: dict[str, dict] = {}
        self.customers: set[str] = set()
        self.fail_next = 0  # answer the next N API calls with 500
        self.app = self._build()
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.base = f"http://127.0.0.1:{self._server.server_port}"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def start(self) -> FakeStripe:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()

    # ---- API ----------------------------------------------------------------------------------

    @staticmethod
    def _error(status: int, message: str, code: str = "parameter_missing", type_: str = "invalid_request_error"):
        return jsonify(error={"type": type_, "code": code, "message": message}), status

    def _build(self) -> Flask:
        app = Flask("fake_stripe")

        @app.before_request
        def _auth():
            self.requests.append({"method": request.method, "path": request.path, "form": _nested(request.form)})
            if request.headers.get("Authorization") != f"Bearer {SECRET_KEY}":
                return self._error(401, "Invalid API Key provided", "invalid_api_key", "invalid_request_error")
            if self.fail_next:
                self.fail_next -= 1
                return self._error(500, "An unknown error occurred", "api_error", "api_error")
            return None

        @app.post("/v1/checkout/sessions")
        def create_checkout():
            p = _nested(request.form)
            for name in ("mode", "success_url", "cancel_url"):
                if not p.get(name):
                    return self._error(400, f"Missing required param: {name}.")
            if p["mode"] != "subscription":
                return self._error(400, "This fake only supports mode=subscription.", "parameter_invalid")
            price = ((p.get("line_items") or {}).get("0") or {}).get("price")
            if price not in PRICES.values():
                return self._error(400, f"No such price: '{price}'", "resource_missing")
            sid = "cs_test_" + secrets.token_hex(12)
            session = {
                "id": sid,
                "object": "checkout.session",
                "mode": "subscription",
                "status": "open",
                "url": f"https://checkout.stripe.com/c/pay/{sid}",
                "success_url": p["success_url"],
                "cancel_url": p["cancel_url"],
                "client_reference_id": p.get("client_reference_id"),
                "customer": p.get("customer"),
                "customer_email": p.get("customer_email"),
                "metadata": p.get("metadata") or {},
                "subscription": None,
                "livemode": False,
                "_price": price,
                "_subscription_metadata": (p.get("subscription_data") or {}).get("metadata") or {},
            }
            self.sessions[sid] = session
            return jsonify({k: v for k, v in session.items() if not k.startswith("_")})

        @app.post("/v1/billing_portal/sessions")
        def create_portal():
            p = _nested(request.form)
            if not p.get("customer"):
                return self._error(400, "Missing required param: customer.")
            if p["customer"] not in self.customers:
                return self._error(400, f"No such customer: '{p['customer']}'", "resource_missing")
            bid = "bps_" + secrets.token_hex(12)
            return jsonify(
                {
                    "id": bid,
                    "object": "billing_portal.session",
                    "customer": p["customer"],
                    "return_url": p.get("return_url"),
                    "url": f"https://billing.stripe.com/p/session/{bid}",
                    "livemode": False,
                }
            )

        @app.get("/v1/subscriptions/<sub_id>")
        def get_subscription(sub_id):
            sub = self.subscriptions.get(sub_id)
            if sub is None:
                return self._error(404, f"No such subscription: '{sub_id}'", "resource_missing")
            return jsonify(sub)

        return app

    # ---- playing Stripe's part ----------------------------------------------------------------

    def complete_checkout(self, session_id: str, status: str = "active") -> dict:
        """The customer paid: a customer and a subscription exist; returns the completed session."""
        session = self.sessions[session_id]
        customer = session["customer"] or "cus_" + secrets.token_hex(8)
        self.customers.add(customer)
        now = int(time.time())
        price = session["_price"]
        interval = "year" if price.endswith("_y") else "month"
        sub_id = "sub_" + secrets.token_hex(10)
        self.subscriptions[sub_id] = {
            "id": sub_id,
            "object": "subscription",
            "customer": customer,
            "status": status,
            "cancel_at": None,
            "cancel_at_period_end": False,
            "canceled_at": None,
            "created": now,
            "current_period_start": now,
            "current_period_end": now + (365 if interval == "year" else 30) * 86400,
            "metadata": dict(session["_subscription_metadata"]),
            "livemode": False,
            "items": {
                "object": "list",
                "data": [
                    {
                        "id": "si_" + secrets.token_hex(8),
                        "object": "subscription_item",
                        "quantity": 1,
                        "price": {
                            "id": price,
                            "object": "price",
                            "recurring": {"interval": interval},
                            "unit_amount": 900,
                        },
                    }
                ],
            },
        }
        session.update(status="complete", customer=customer, subscription=sub_id)
        return {k: v for k, v in session.items() if not k.startswith("_")}

    def update_subscription(self, sub_id: str, **changes) -> dict:
        sub = self.subscriptions[sub_id]
        price = changes.pop("price", None)
        if price:
            sub["items"]["data"][0]["price"]["id"] = price
        sub.update(changes)
        return json.loads(json.dumps(sub))

    def invoice(self, sub_id: str, status: str, amount: int = 900, **extra) -> dict:
        sub = self.subscriptions[sub_id]
        iid = extra.pop("id", None) or "in_" + secrets.token_hex(10)
        inv = {
            "id": iid,
            "object": "invoice",
            "customer": sub["customer"],
            "subscription": sub_id,
            "status": status,
            "number": "GX-" + iid[-6:].upper(),
            "currency": "usd",
            "amount_due": amount,
            "amount_paid": amount if status == "paid" else 0,
            "created": int(time.time()),
            "hosted_invoice_url": f"https://invoice.stripe.com/i/{iid}",
            "period_start": sub["current_period_start"],
            "period_end": sub["current_period_end"],
        }
        inv.update(extra)
        return inv

    @staticmethod
    def event(type_: str, obj: dict, *, created: int | None = None, event_id: str | None = None) -> str:
        """A webhook event body as Stripe sends it (unknown keys included)."""
        return json.dumps(
            {
                "id": event_id or "evt_" + secrets.token_hex(12),
                "object": "event",
                "api_version": "2024-06-20",
                "created": created or int(time.time()),
                "type": type_,
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": None, "idempotency_key": None},
                "data": {"object": obj},
            }
        )
